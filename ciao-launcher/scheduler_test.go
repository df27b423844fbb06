package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestWithRealScheduler runs the launcher binary against the real
// ciao-scheduler binary, with a fake controller: the controller's START
// is placed on the launcher, the process runs and is reported active in
// STATS relayed by the scheduler, and DELETE removes it.
func TestWithRealScheduler(t *testing.T) {
	launcher := launcherBinary(t)
	dir := t.TempDir()
	sched := filepath.Join(binDir, "ciao-scheduler")
	if out, err := exec.Command("go", "build", "-o", sched, "../ciao-scheduler").CombinedOutput(); err != nil {
		t.Fatalf("building ciao-scheduler: %v\n%s", err, out)
	}
	certs := testutil.TestCerts(t)
	ca, schedCert := certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, agentCert := certs.WriteFiles(t, dir, ssntp.AGENT)
	c := testutil.ConfigureCmd()
	c.Configure.Launcher.DiskLimit, c.Configure.Launcher.MemoryLimit = false, true
	conf := filepath.Join(dir, "configuration.yaml")
	if err := os.WriteFile(conf, testutil.Marshal(t, c), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	testutil.StartCommand(t, dir, "scheduler", sched, "-cert", schedCert, "-cacert", ca, "-listen", "127.0.0.1:"+strconv.Itoa(port),
		"-configuration-uri", "file://"+conf, "-logtostderr")

	// The controller connects first so it hears of the node.
	var ctl *testutil.FakeController
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ctl = tryController(t, port); ctl != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("scheduler never accepted the controller")
		}
		time.Sleep(50 * time.Millisecond) // the scheduler process is starting
	}

	stateDir := filepath.Join(dir, "instances")
	testutil.StartCommand(t, dir, "launcher", launcher, "-osprepare=false", "-cacert", ca, "-cert", agentCert, "-server", "127.0.0.1",
		"-port", strconv.Itoa(port), "-state-dir", stateDir, "-uuid-dir", filepath.Join(dir, "uuid"),
		"-lock-file", filepath.Join(dir, "lock"), "-maintenance-file", filepath.Join(dir, "maintenance"),
		"-cgroup-root", "", "-network=false", "-stats-interval", "200ms", "-poll-interval", "50ms",
		"-resource-interval", "100ms", "-mem-low-water", "0", "-mem-high-water", "0", "-logtostderr")
	t.Cleanup(func() {
		_ = exec.Command(launcher, "-hard-reset", "-state-dir", stateDir, "-cgroup-root", "", "-logtostderr").Run()
	})
	node := ctl.NextNodeConnected(t)
	if node.NodeType != payloads.ComputeNode {
		t.Fatalf("node connected as %q", node.NodeType)
	}

	// The launcher sends READY and then STATS on the same connection: once
	// its STATS is relayed, the scheduler knows the node is ready.
	for st := ctl.NextStats(t); st.NodeUUID != node.NodeUUID; st = ctl.NextStats(t) {
	}

	const id = "5c4ed01e-0000-4000-8000-000000000001"
	ud := "---\n#cloud-config\n#ciao-process\nruncmd:\n  - [ sleep, \"300\" ]\n...\n"
	ctl.SendCommand(t, ssntp.START, startPayload(t, id, ud, testutil.StartMemMB(32)))
	waitStats(t, ctl, node.NodeUUID, id, payloads.InstanceActive)

	ctl.SendCommand(t, ssntp.DELETE, testutil.DeletePayload(id, node.NodeUUID))
	if got := ctl.NextInstanceDeleted(t); got.InstanceUUID != id {
		t.Fatalf("deleted %q", got.InstanceUUID)
	}
	if _, err := os.Stat(filepath.Join(stateDir, id)); !os.IsNotExist(err) {
		t.Fatalf("instance directory left after DELETE: %v", err)
	}
}

// tryController connects a fake controller, or returns nil if the
// scheduler is not listening yet.
func tryController(t *testing.T, port int) (ctl *testutil.FakeController) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return testutil.NewFakeController(t, port)
}

// waitStats waits for a STATS from node reporting instance id in state.
func waitStats(t *testing.T, ctl *testutil.FakeController, node, id, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := ctl.NextStats(t)
		if st.NodeUUID != node {
			continue
		}
		for _, in := range st.Instances {
			if in.InstanceUUID == id && in.State == state {
				return
			}
		}
	}
	t.Fatalf("no STATS with %s %s within 30s", id, state)
}
