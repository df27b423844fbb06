package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	qemulib "github.com/ciao-project/ciao/qemu"
	"github.com/ciao-project/ciao/testutil"
)

// testVM is a driver over the test image with a fresh instance directory.
func testVM(t *testing.T, mod func(*Config)) (*Driver, driver.Spec) {
	t.Helper()
	img := testutil.BuildVMImage(t)
	images := t.TempDir()
	testutil.InstallVMImage(t, img, images, testImage)
	cfg := DefaultConfig()
	cfg.ImageDir = images
	cfg.Accel = qemulib.AccelTCG
	cfg.StopGrace = 500 * time.Millisecond
	cfg.Poll = 20 * time.Millisecond
	cfg.AccelFile = filepath.Join(t.TempDir(), "accel")
	if mod != nil {
		mod(&cfg)
	}
	spec := driver.Spec{
		InstanceUUID: testInstance, Dir: t.TempDir(), VCPUs: 1, MemMB: 256, Image: testImage,
		UserData: []byte("#cloud-config\n"),
	}
	t.Cleanup(func() { killVM(spec.Dir) })
	return New(cfg), spec
}

// killVM kills whatever qemu the instance directory's pid file names.
func killVM(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
	if err != nil {
		return
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitConsole waits for the boot marker naming the instance.
func waitConsole(t *testing.T, dir, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		if strings.Contains(string(b), want) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a file qemu writes, with a deadline
	}
	b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	t.Fatalf("no %q on the console; it holds:\n%s", want, b)
}

func TestVMLifecycle(t *testing.T) {
	d, spec := testVM(t, nil)
	ctx := context.Background()
	h, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitConsole(t, spec.Dir, testutil.VMBootedMarker+" "+testInstance)
	if ok, err := d.Running(ctx, h); !ok || err != nil {
		t.Fatalf("Running: %v, %v", ok, err)
	}
	s, err := d.Stats(ctx, h)
	if err != nil || s.MemMB <= 0 || s.CPUTime <= 0 || s.DiskMB < 0 {
		t.Errorf("Stats %+v, %v", s, err)
	}
	b, _ := os.ReadFile(filepath.Join(spec.Dir, "console.log"))
	t.Logf("console:\n%s", b)

	// Re-adoption by a new driver, as after a launcher restart.
	if ok, err := New(d.cfg).Adopt(ctx, h, spec); !ok || err != nil {
		t.Errorf("Adopt: %v, %v", ok, err)
	}
	recycled := h
	recycled.StartTicks++
	if ok, _ := d.Adopt(ctx, recycled, spec); ok {
		t.Error("a recycled pid was adopted")
	}

	start := time.Now()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %v", time.Since(start))
	if ok, _ := d.Running(ctx, h); ok {
		t.Error("running after Stop")
	}
	if err := d.Stop(ctx, h); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("second Stop: %v", err)
	}

	// RESTART keeps the overlay and boots again.
	h2, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitConsole(t, spec.Dir, testutil.VMBootedMarker)
	if err := d.Delete(ctx, h2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.alive(h2); ok {
		t.Error("qemu survived Delete")
	}
	if ents, _ := os.ReadDir(spec.Dir); len(ents) != 0 {
		t.Errorf("Delete left %v", ents)
	}
}

// TestAutoFallsBackToTCG runs the real fallback: a wrapper binary turns
// "-enable-kvm -cpu host" into a TCG guest paused with -S, which prints
// nothing, just like a guest hanging under nested KVM.
func TestAutoFallsBackToTCG(t *testing.T) {
	testFallback(t, `-enable-kvm) set -- "$@" -accel tcg -S ;;`)
}

// TestAutoFallsBackWhenKVMRefused: qemu that exits at once under KVM (nested
// KVM here says "failed to set MSR 0x10a") must not fail the START.
func TestAutoFallsBackWhenKVMRefused(t *testing.T) {
	testFallback(t, `-enable-kvm) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0" >&2; exit 1 ;;`)
}

// testFallback starts a VM under -accel auto through a wrapper whose
// handling of -enable-kvm is kvmCase (a shell case arm), and expects the
// guest to boot under TCG and the node to keep TCG.
func testFallback(t *testing.T, kvmCase string) {
	wrapper := filepath.Join(t.TempDir(), "qemu-bad-kvm")
	script := `#!/bin/sh
prev=
for a in "$@"; do
	shift
	case "$a" in
	` + kvmCase + `
	host) if [ "$prev" = -cpu ]; then set -- "$@" max; else set -- "$@" "$a"; fi ;;
	*) set -- "$@" "$a" ;;
	esac
	prev=$a
done
exec qemu-system-x86_64 "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d, spec := testVM(t, func(c *Config) {
		c.Accel = qemulib.AccelAuto
		c.KVMUsable = func() bool { return true }
		c.Binary = wrapper
		c.ProgressTimeout = 2 * time.Second
	})
	h, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if hd := decodeData(h); hd.Accel != "tcg" {
		t.Errorf("accelerator after fallback: %q", hd.Accel)
	}
	waitConsole(t, spec.Dir, testutil.VMBootedMarker)
	if a, watch := d.accel.choose(); a != qemulib.AccelTCG || watch {
		t.Errorf("node verdict not kept: %s watch=%v", a, watch)
	}
	if err := d.Delete(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}
