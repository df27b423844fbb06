package launcher

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

const procInstance = "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9d01"

// TestProcessLifecycle drives a real process instance through START, STOP,
// RESTART and DELETE.
func TestProcessLifecycle(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)

	srv.NextReady(t)
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, procInstance, processUserData("/bin/sleep", "300")))
	s := waitStats(t, srv, "instance active", stateIs(procInstance, payloads.InstanceActive))
	if s.NodeUUID != l.id.String() {
		t.Errorf("STATS node_uuid %q, want %s", s.NodeUUID, l.id)
	}
	h := handleOf(t, cfg.StateDir, procInstance)
	if !alive(h.PID) {
		t.Fatalf("pid %d not running", h.PID)
	}
	waitStats(t, srv, "memory sample", func(s payloads.Stat) bool {
		i, ok := instanceIn(s, procInstance)
		return ok && i.MemoryUsageMB >= 0 && i.CPUUsage >= 0 && i.DiskUsageMB >= 0
	})
	if _, err := os.Stat(filepath.Join(cfg.StateDir, procInstance, "stdout.log")); err != nil {
		t.Errorf("no stdout log: %v", err)
	}

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(procInstance, l.id.String()))
	waitStats(t, srv, "instance exited", stateIs(procInstance, payloads.InstanceExited))
	waitFor(t, "process gone", func() bool { return !alive(h.PID) })

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(procInstance, l.id.String()))
	if f := srv.NextStopFailure(t); f.Reason != payloads.StopAlreadyStopped || f.InstanceUUID != procInstance {
		t.Errorf("second STOP: %+v", f)
	}

	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(procInstance, l.id.String()))
	waitStats(t, srv, "instance active again", stateIs(procInstance, payloads.InstanceActive))
	h2 := handleOf(t, cfg.StateDir, procInstance)
	if !alive(h2.PID) || h2.PID == h.PID {
		t.Fatalf("restarted pid %d (was %d) not running", h2.PID, h.PID)
	}
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(procInstance, l.id.String()))
	if f := srv.NextRestartFailure(t); f.Reason != payloads.RestartAlreadyRunning {
		t.Errorf("RESTART of a running instance: %+v", f)
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(procInstance, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != procInstance {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, procInstance)); !os.IsNotExist(err) {
		t.Errorf("instance directory left behind: %v", err)
	}
	waitFor(t, "process gone", func() bool { return !alive(h2.PID) })
	waitStats(t, srv, "instance gone", absent(procInstance))

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(procInstance, l.id.String()))
	if f := srv.NextDeleteFailure(t); f.Reason != payloads.DeleteNoInstance {
		t.Errorf("second DELETE: %+v", f)
	}
}

// TestProcessExitsByItself: a workload that ends is reported exited.
func TestProcessExitsByItself(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, procInstance, processUserData("/bin/sh", "-c", "echo hello; exit 3")))
	waitStats(t, srv, "instance exited", stateIs(procInstance, payloads.InstanceExited))
	waitFor(t, "output logged", func() bool {
		b, _ := os.ReadFile(filepath.Join(cfg.StateDir, procInstance, "stdout.log"))
		return string(b) == "hello\n"
	})
}

// TestReadoptAfterLauncherStop: instances outlive the launcher, the next one
// adopts them, and a hard reset removes them.
func TestReadoptAfterLauncherStop(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, procInstance, processUserData("/bin/sleep", "300")))
	waitStats(t, srv, "instance active", stateIs(procInstance, payloads.InstanceActive))
	h := handleOf(t, cfg.StateDir, procInstance)
	first := l.id

	// Stopping the launcher abandons the instance exactly as SIGKILL would:
	// nothing is sent to it.
	l.stop(t)
	srv.NextDisconnect(t)
	if !alive(h.PID) {
		t.Fatal("stopping the launcher killed the instance")
	}

	l = startLauncher(t, srv, cfg)
	if l.id != first {
		t.Errorf("launcher came back as %s, was %s", l.id, first)
	}
	waitStats(t, srv, "adopted instance active", stateIs(procInstance, payloads.InstanceActive))
	if h2 := handleOf(t, cfg.StateDir, procInstance); h2.PID != h.PID || h2.StartTicks != h.StartTicks {
		t.Errorf("adoption changed the handle: %+v → %+v", h, h2)
	}
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, procInstance, processUserData("/bin/sleep", "300")))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartAlreadyRunning {
		t.Errorf("START of an adopted instance: %+v", f)
	}
	l.stop(t)

	if err := HardReset(context.Background(), cfg); err != nil {
		t.Fatalf("HardReset: %v", err)
	}
	waitFor(t, "process gone", func() bool { return !alive(h.PID) })
	if _, err := os.Stat(filepath.Join(cfg.StateDir, procInstance)); !os.IsNotExist(err) {
		t.Errorf("instance directory left after hard reset: %v", err)
	}
}

// TestReadoptRecycledPID: a handle whose pid now names another process (a
// different start time) is adopted as exited, and the process is not touched.
func TestReadoptRecycledPID(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, procInstance, processUserData("/bin/sleep", "300")))
	waitStats(t, srv, "instance active", stateIs(procInstance, payloads.InstanceActive))
	l.stop(t)
	srv.NextDisconnect(t)

	dir := filepath.Join(cfg.StateDir, procInstance)
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	real := st.Handle
	st.Handle.StartTicks++ // as if the pid had been recycled
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
	l = startLauncher(t, srv, cfg)
	waitStats(t, srv, "instance exited", stateIs(procInstance, payloads.InstanceExited))
	if !alive(real.PID) {
		t.Error("the unrelated process was killed")
	}
	// Restore the real handle so that cleanup finds it.
	st.Handle = real
	l.stop(t)
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
}
