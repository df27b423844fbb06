// Command vm-bench measures what the launcher's QEMU driver adds to a VM
// boot: the time from START to the guest's serial marker through the
// driver (overlay, config drive, QMP, pidfile) against a bare
// qemu-system-x86_64 with the same kernel and initramfs. It prints one
// line with both medians and their ratio (goal: at most 1.1).
//
// Usage: scripts/build-vm-image.sh && go run ./ciao-launcher/cmd/vm-bench [-image build/vm] [-n 5]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	qemudrv "github.com/ciao-project/ciao/ciao-launcher/internal/driver/qemu"
	qemulib "github.com/ciao-project/ciao/qemu"
)

const (
	marker   = "CIAO-VM-BOOTED"
	instance = "6b0c0a11-0000-4000-8000-00000000be01"
	image    = "6b0c0a11-0000-4000-8000-00000000be02"
)

func main() {
	img := flag.String("image", "build/vm", "output of scripts/build-vm-image.sh")
	n := flag.Int("n", 5, "boots of each kind")
	mem := flag.Int("m", 256, "guest memory in MB")
	flag.Parse()
	if err := run(*img, *n, *mem); err != nil {
		fmt.Fprintln(os.Stderr, "vm-bench:", err)
		os.Exit(1)
	}
}

func run(img string, n, mem int) error {
	img, _ = filepath.Abs(img)
	tmp, err := os.MkdirTemp("", "vm-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	images := filepath.Join(tmp, "images", image)
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	for name, target := range map[string]string{"kernel": "vmlinuz", "initrd": "initrd.img", "disk.qcow2": "disk.qcow2", "cmdline": "cmdline"} {
		if err := os.Symlink(filepath.Join(img, target), filepath.Join(images, name)); err != nil {
			return err
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(img, "cmdline"))
	if err != nil {
		return fmt.Errorf("no image in %s (run scripts/build-vm-image.sh): %w", img, err)
	}
	cfg := qemudrv.DefaultConfig()
	cfg.ImageDir = filepath.Dir(images)
	cfg.Accel = qemulib.AccelTCG
	cfg.StopGrace = 0
	d := qemudrv.New(cfg)
	ctx := context.Background()

	var bare, drv []time.Duration
	for i := 0; i < n; i++ {
		// Bare qemu: the same kernel, initramfs, memory and console.
		dir := filepath.Join(tmp, "bare"+strconv.Itoa(i))
		_ = os.Mkdir(dir, 0o755)
		console, pidfile := filepath.Join(dir, "console.log"), filepath.Join(dir, "pid")
		start := time.Now()
		out, err := exec.Command("qemu-system-x86_64", "-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", "cpus=1",
			"-display", "none", "-vga", "none", "-nodefaults", "-no-user-config",
			"-kernel", filepath.Join(img, "vmlinuz"), "-initrd", filepath.Join(img, "initrd.img"),
			"-append", strings.TrimSpace(string(cmdline)), "-uuid", instance,
			"-device", "isa-serial,chardev=c0", "-chardev", "file,path="+console+",id=c0",
			"-daemonize", "-pidfile", pidfile).CombinedOutput()
		if err != nil {
			return fmt.Errorf("bare qemu: %v: %s", err, out)
		}
		if err := waitMarker(console); err != nil {
			return err
		}
		bare = append(bare, time.Since(start))
		killPidfile(pidfile)

		// Through the driver: START to marker.
		dir = filepath.Join(tmp, "drv"+strconv.Itoa(i))
		_ = os.Mkdir(dir, 0o755)
		spec := driver.Spec{InstanceUUID: instance, Dir: dir, VCPUs: 1, MemMB: mem, Image: image}
		start = time.Now()
		h, err := d.Start(ctx, spec)
		if err != nil {
			return err
		}
		if err := waitMarker(filepath.Join(dir, "console.log")); err != nil {
			_ = syscall.Kill(h.PID, syscall.SIGKILL)
			return err
		}
		drv = append(drv, time.Since(start))
		_ = syscall.Kill(h.PID, syscall.SIGKILL)
		_ = d.Delete(ctx, h)
	}
	b, v := median(bare), median(drv)
	fmt.Printf("vm-bench: TCG boot to serial marker, median of %d: bare qemu %v, ciao qemu driver START %v, ratio %.2f (goal <= 1.10)\n",
		n, b.Round(time.Millisecond), v.Round(time.Millisecond), float64(v)/float64(b))
	return nil
}

func waitMarker(console string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(console); strings.Contains(string(b), marker) {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling qemu's console file
	}
	return fmt.Errorf("no %s in %s", marker, console)
}

func killPidfile(p string) {
	b, _ := os.ReadFile(p)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
