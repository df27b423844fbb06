package launcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

// newTestServer is a fake scheduler whose cluster configuration enforces
// the memory limit but not the disk limit.
func newTestServer(t *testing.T) *testutil.FakeServer {
	t.Helper()
	c := testutil.ConfigureCmd()
	c.Configure.Launcher.MemoryLimit = true
	c.Configure.Launcher.DiskLimit = false
	cfg := testutil.Marshal(t, c)
	return testutil.NewFakeServer(t, testutil.WithConfig(func(sc *ssntp.Config) { sc.ClusterConfig = cfg }))
}

// testConfig is a launcher configuration for srv with short intervals and
// everything under dir.
func testConfig(t *testing.T, srv *testutil.FakeServer, dir string) Config {
	t.Helper()
	ca, cert := testutil.TestCerts(t).WriteFiles(t, dir, ssntp.AGENT)
	cfg := DefaultConfig()
	cfg.CACert, cfg.Cert = ca, cert
	cfg.Server, cfg.Port = "localhost", srv.Port()
	cfg.StateDir = filepath.Join(dir, "instances")
	cfg.UUIDDir = filepath.Join(dir, "uuid")
	cfg.LockFile = filepath.Join(dir, "lock")
	cfg.MaintenanceFile = filepath.Join(dir, "maintenance")
	cfg.CgroupRoot = ""
	cfg.StatsInterval = 150 * time.Millisecond
	cfg.ResourceInterval = 100 * time.Millisecond
	cfg.PollInterval = 20 * time.Millisecond
	cfg.StopGrace = 2 * time.Second
	cfg.MemHighWaterMB, cfg.MemLowWaterMB = 0, 0
	cfg.DiskHighWaterMB, cfg.DiskLowWaterMB = 0, 0
	cfg.DialTimeout = 10 * time.Second
	return cfg
}

// testLauncher is a launcher running in the test process.
type testLauncher struct {
	cancel context.CancelFunc
	done   chan error
	id     uuid.UUID
}

// startLauncher runs a launcher with cfg until stop or the end of the test,
// and waits for it to connect to srv.
func startLauncher(t *testing.T, srv *testutil.FakeServer, cfg Config) *testLauncher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &testLauncher{cancel: cancel, done: make(chan error, 1)}
	go func() { tl.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { tl.stop(t) })
	rec := srv.NextConnect(t)
	tl.id = rec.Peer
	if rec.Role != ssntp.AGENT {
		t.Fatalf("launcher connected as %s", rec.Role)
	}
	return tl
}

// stop stops the launcher (not its instances) and waits for Run to return.
func (tl *testLauncher) stop(t *testing.T) {
	t.Helper()
	if tl.done == nil {
		return
	}
	tl.cancel()
	select {
	case err := <-tl.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("launcher did not stop")
	}
	tl.done = nil
}

// waitStats waits for a STATS satisfying ok.
func waitStats(t *testing.T, srv *testutil.FakeServer, what string, ok func(payloads.Stat) bool) payloads.Stat {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last payloads.Stat
	for time.Now().Before(deadline) {
		last = srv.NextStats(t)
		if ok(last) {
			return last
		}
	}
	t.Fatalf("no STATS with %s; last: %+v", what, last)
	return last
}

// instanceIn finds an instance in a STATS.
func instanceIn(s payloads.Stat, id string) (payloads.InstanceStat, bool) {
	for _, i := range s.Instances {
		if i.InstanceUUID == id {
			return i, true
		}
	}
	return payloads.InstanceStat{}, false
}

func stateIs(id, state string) func(payloads.Stat) bool {
	return func(s payloads.Stat) bool {
		i, ok := instanceIn(s, id)
		return ok && i.State == state
	}
}

func absent(id string) func(payloads.Stat) bool {
	return func(s payloads.Stat) bool { _, ok := instanceIn(s, id); return !ok }
}

// processUserData is a process workload running argv.
func processUserData(argv ...string) string {
	s := "---\n#cloud-config\n#ciao-process\nruncmd:\n  - ["
	for i, a := range argv {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", a)
	}
	return s + "]\n...\n"
}

// startPayload is a START for instance id with the given user data.
func startPayload(t *testing.T, id, userData string, opts ...testutil.StartOption) []byte {
	t.Helper()
	opts = append([]testutil.StartOption{testutil.StartInstance(id), testutil.StartMemMB(64), testutil.StartVCPUs(1)}, opts...)
	cmd := testutil.StartCmd(opts...)
	b, err := payloads.ComposeStart(&payloads.Start{Start: cmd}, userData, payloads.StartMetadata{UUID: id, Hostname: id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handleOf reads the driver handle from an instance's state file.
func handleOf(t *testing.T, stateDir, id string) driver.Handle {
	t.Helper()
	st, err := loadState(filepath.Join(stateDir, id))
	if err != nil {
		t.Fatalf("state of %s: %v", id, err)
	}
	return st.Handle
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := parseStatState(b)
	return err == nil && st != 'Z' && st != 'X'
}

func parseStatState(b []byte) (byte, error) {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2], nil
		}
	}
	return 0, fmt.Errorf("bad stat")
}

// killAll kills the process groups of every instance under stateDir, so a
// failing test leaves nothing behind.
func killAll(t *testing.T, stateDir string) {
	t.Helper()
	t.Cleanup(func() {
		found, _, _ := scanInstances(stateDir)
		for _, f := range found {
			if pid := f.state.Handle.PID; pid > 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
			}
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an OS state with a deadline
	}
}
