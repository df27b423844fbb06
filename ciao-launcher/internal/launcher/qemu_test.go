package launcher

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	qemulib "github.com/ciao-project/ciao/qemu"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

const (
	vmInstance  = "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9e01"
	vmInstance2 = "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9e02"
	vmImage     = "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9f01"
)

// vmConfig is testConfig with the test VM image cached and TCG forced
// (nested KVM hangs on the CI machines).
func vmConfig(t *testing.T, srv *testutil.FakeServer) Config {
	t.Helper()
	img := testutil.BuildVMImage(t)
	dir := t.TempDir()
	cfg := testConfig(t, srv, dir)
	cfg.ImageDir = filepath.Join(dir, "images")
	testutil.InstallVMImage(t, img, cfg.ImageDir, vmImage)
	cfg.Accel = qemulib.AccelTCG
	cfg.Network = false
	cfg.StopGrace = 500 * time.Millisecond
	killAll(t, cfg.StateDir)
	t.Cleanup(func() { killVMs(cfg.StateDir) })
	return cfg
}

// killVMs kills the qemu of every instance directory, by pid.
func killVMs(stateDir string) {
	found, _, _ := scanInstances(stateDir)
	for _, f := range found {
		if pid := f.state.Handle.PID; pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func vmStart(t *testing.T, id, image string) []byte {
	return startPayload(t, id, "---\n#cloud-config\n...\n", func(c *payloads.StartCmd) { c.ImageUUID = image }, testutil.StartMemMB(256))
}

func waitMarker(t *testing.T, cfg Config, id string) {
	t.Helper()
	console := filepath.Join(cfg.StateDir, id, "console.log")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(console); strings.Contains(string(b), testutil.VMBootedMarker+" "+id) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a file qemu writes, with a deadline
	}
	b, _ := os.ReadFile(console)
	t.Fatalf("instance %s never booted; console:\n%s", id, b)
}

// TestVMLifecycle drives a real TCG VM through the launcher: START, STATS,
// STOP, RESTART, re-adoption by a restarted launcher, DELETE, an unknown
// image, and a hard reset.
func TestVMLifecycle(t *testing.T) {
	srv := newTestServer(t)
	cfg := vmConfig(t, srv)
	l := startLauncher(t, srv, cfg)

	srv.SendCommand(t, l.id, ssntp.START, vmStart(t, vmInstance2, "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9fff"))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartImageFailure || f.InstanceUUID != vmInstance2 {
		t.Errorf("START with an unknown image: %+v", f)
	}

	srv.SendCommand(t, l.id, ssntp.START, vmStart(t, vmInstance, vmImage))
	waitStats(t, srv, "VM active", stateIs(vmInstance, payloads.InstanceActive))
	waitMarker(t, cfg, vmInstance)
	// The guest read its config drive (a virtio CD-ROM): meta_data.json
	// names the instance. User-mode networking gave it an address.
	waitConsole(t, cfg, vmInstance, `"uuid":"`+vmInstance+`"`)
	waitConsole(t, cfg, vmInstance, testutil.VMNetMarker+" eth0 10.0.2.15/24")
	waitStats(t, srv, "VM memory sample", func(s payloads.Stat) bool {
		i, ok := instanceIn(s, vmInstance)
		return ok && i.State == payloads.InstanceActive && i.MemoryUsageMB > 0 && i.CPUUsage >= 0
	})
	h := handleOf(t, cfg.StateDir, vmInstance)
	if _, err := os.Stat(filepath.Join(cfg.StateDir, vmInstance, "seed.iso")); err != nil {
		t.Errorf("no config drive: %v", err)
	}

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(vmInstance, l.id.String()))
	waitStats(t, srv, "VM exited", stateIs(vmInstance, payloads.InstanceExited))
	waitFor(t, "qemu gone", func() bool { return !alive(h.PID) })

	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(vmInstance, l.id.String()))
	waitStats(t, srv, "VM active again", stateIs(vmInstance, payloads.InstanceActive))
	waitMarker(t, cfg, vmInstance)
	h = handleOf(t, cfg.StateDir, vmInstance)

	// The VM outlives the launcher and the next one adopts it.
	l.stop(t)
	srv.NextDisconnect(t)
	if !alive(h.PID) {
		t.Fatal("stopping the launcher killed the VM")
	}
	l = startLauncher(t, srv, cfg)
	waitStats(t, srv, "adopted VM active", stateIs(vmInstance, payloads.InstanceActive))

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(vmInstance, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != vmInstance {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	waitFor(t, "qemu gone", func() bool { return !alive(h.PID) })
	if _, err := os.Stat(filepath.Join(cfg.StateDir, vmInstance)); !os.IsNotExist(err) {
		t.Errorf("instance directory left behind: %v", err)
	}

	// A hard reset leaves no VM behind.
	srv.SendCommand(t, l.id, ssntp.START, vmStart(t, vmInstance2, vmImage))
	waitStats(t, srv, "second VM active", stateIs(vmInstance2, payloads.InstanceActive))
	h2 := handleOf(t, cfg.StateDir, vmInstance2)
	l.stop(t)
	if err := HardReset(context.Background(), cfg); err != nil {
		t.Fatalf("HardReset: %v", err)
	}
	if alive(h2.PID) {
		t.Error("a VM survived the hard reset")
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, vmInstance2)); !os.IsNotExist(err) {
		t.Errorf("instance directory left after hard reset: %v", err)
	}
}
