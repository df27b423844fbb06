package main

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// TestCNCIIdleRealLaunchers: as TestCNCILifecycle's first part, with the
// real ciao-launcher (simulation backend, its own process) as the compute
// node and as the network node: the network node's launcher reports the
// CNCI in its STATS, deletes it on the controller's DELETE once its tenant
// has been idle for -cnci-idle, and confirms with InstanceDeleted, which
// removes the CNCI's record; the tenant's next create gets a new CNCI.
func TestCNCIIdleRealLaunchers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler and ciao-launcher")
	}
	k := startLifeCluster(t, true, func(c *config) { c.CNCITimeout, c.CNCIIdle = 10*time.Second, 300*time.Millisecond })
	dir, port := k.sched.dir, k.port
	launcher := filepath.Join(dir, "ciao-launcher")
	if out, err := exec.Command("go", "build", "-o", launcher, "../ciao-launcher").CombinedOutput(); err != nil {
		t.Fatalf("building ciao-launcher: %v\n%s", err, out)
	}
	for _, node := range []struct {
		name string
		role ssntp.Role
	}{{"compute", ssntp.AGENT}, {"network", ssntp.NETAGENT}} {
		d := filepath.Join(dir, node.name)
		testutil.StartCommand(t, dir, "launcher-"+node.name, launcher, "-simulation", "-osprepare=false", "-cacert", k.sched.ca, "-cert", k.sched.cert(t, node.role),
			"-server", "127.0.0.1", "-port", strconv.Itoa(port), "-state-dir", filepath.Join(d, "instances"), "-uuid-dir", filepath.Join(d, "uuid"),
			"-lock-file", "", "-maintenance-file", filepath.Join(d, "maintenance"), "-cgroup-root", "", "-network=false",
			"-stats-interval", "100ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
			"-mem-low-water", "0", "-mem-high-water", "0", "-disk-low-water", "0", "-disk-high-water", "0", "-logtostderr")
	}
	k.waitNodes(t, 2)

	const t1 = "5a1e0b1c-0000-4000-8000-0000000000b1"
	// createUp creates a server of t1 while bringing up the agent of the
	// CNCI the network node's launcher started; it returns both ids.
	createUp := func(notCNCI string) (string, string) {
		t.Helper()
		done := k.createAsync(t1)
		var cnci string
		k.poll(t, "a new CNCI record of "+t1, func() bool { cnci = k.cncis(t)[t1]; return cnci != "" && cnci != notCNCI })
		agent := testutil.NewFakeCNCIAgent(t, port, testutil.WithUUID(uuid.MustParse(cnci)), testutil.WithTenant(t1))
		t.Cleanup(agent.Close)
		r := <-done
		if r.code != http.StatusAccepted || len(r.ids) != 1 {
			t.Fatalf("create for %s: %d %s", t1, r.code, r.body)
		}
		return r.ids[0], cnci
	}
	srv, cnci1 := createUp("")
	k.deleteServer(t, t1, srv)
	k.poll(t, "idle CNCI deleted by its launcher", func() bool {
		_, listed := k.cncis(t)[t1]
		return !listed && k.hasEvents("CNCI Delete "+cnci1, "CNCI Deleted "+cnci1+": deleted by its node")
	})
	srv, cnci2 := createUp(cnci1)
	k.poll(t, "server on the new CNCI active", func() bool { return k.state(t1, srv) == "active" })
	if got := k.cncis(t)[t1]; got != cnci2 {
		t.Fatalf("listed CNCI of %s: %q, want %s", t1, got, cnci2)
	}
}
