package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
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
	dir := t.TempDir()
	sched := buildScheduler(t, dir)
	launcher := filepath.Join(dir, "ciao-launcher")
	if out, err := exec.Command("go", "build", "-o", launcher, "../ciao-launcher").CombinedOutput(); err != nil {
		t.Fatalf("building ciao-launcher: %v\n%s", err, out)
	}
	certs := testutil.TestCerts(t)
	ca, schedCert := certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, ctlCert := certs.WriteFiles(t, dir, ssntp.Controller)
	_, cnCert := certs.WriteFiles(t, dir, ssntp.AGENT)
	_, nnCert := certs.WriteFiles(t, dir, ssntp.NETAGENT)
	conf := filepath.Join(dir, "configuration.yaml")
	if err := os.WriteFile(conf, testutil.Marshal(t, testutil.ConfigureCmd()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	testutil.StartCommand(t, dir, "scheduler", sched, "-cert", schedCert, "-cacert", ca,
		"-listen", "127.0.0.1:"+strconv.Itoa(port), "-configuration-uri", "file://"+conf, "-logtostderr")

	cfg := newConfig()
	cfg.CACert, cfg.Cert, cfg.Server, cfg.Port = ca, ctlCert, "127.0.0.1", port
	cfg.PlainHTTP, cfg.ComputeHost, cfg.ComputePort = true, "127.0.0.1", 0
	cfg.Database = filepath.Join(dir, "controller.db")
	cfg.Network, cfg.CNCITimeout, cfg.CNCIIdle = true, 10*time.Second, 300*time.Millisecond
	cfg.tokens = api.StaticTokens{lifeAdminTok: {TenantID: tenant, ProjectName: "admin", Roles: []string{"admin"}}}
	cfg.ssntpMod = func(c *ssntp.Config) { c.BackoffUnit = 20 * time.Millisecond; c.Log = testutil.Logger(t) }
	addr := make(chan net.Addr, 1)
	cfg.onListen = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", err)
		}
	})
	k := &lifeCluster{port: port, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(k.hc.CloseIdleConnections)
	select {
	case a := <-addr:
		k.root = "http://" + a.String() + "/v2.1"
	case err := <-ran:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not come up")
	}
	for _, node := range []struct{ name, cert string }{{"compute", cnCert}, {"network", nnCert}} {
		d := filepath.Join(dir, node.name)
		testutil.StartCommand(t, dir, "launcher-"+node.name, launcher, "-simulation", "-osprepare=false", "-cacert", ca, "-cert", node.cert,
			"-server", "127.0.0.1", "-port", strconv.Itoa(port), "-state-dir", filepath.Join(d, "instances"), "-uuid-dir", filepath.Join(d, "uuid"),
			"-lock-file", "", "-maintenance-file", filepath.Join(d, "maintenance"), "-cgroup-root", "", "-network=false",
			"-stats-interval", "100ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
			"-mem-low-water", "0", "-mem-high-water", "0", "-disk-low-water", "0", "-disk-high-water", "0", "-logtostderr")
	}
	k.poll(t, "both launchers listed", func() bool {
		var nodes struct {
			Nodes []struct{ ID string } `json:"nodes"`
		}
		b, code := k.call(http.MethodGet, "/nodes", "")
		return code == http.StatusOK && json.Unmarshal([]byte(b), &nodes) == nil && len(nodes.Nodes) >= 2
	})

	const t1 = "5a1e0b1c-0000-4000-8000-0000000000b1"
	// createUp creates a server of t1 while bringing up the agent of the
	// CNCI the network node's launcher started; it returns both ids.
	createUp := func(notCNCI string) (string, string) {
		t.Helper()
		type result struct {
			code int
			ids  []string
			body string
		}
		done := make(chan result, 1)
		go func() { code, ids, b := k.create(t1, 1); done <- result{code, ids, b} }()
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
