package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	qemulib "github.com/ciao-project/ciao/qemu"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

const (
	testInstance = "0a1b2c3d-0000-4000-8000-0000000000a1"
	testImage    = "0a1b2c3d-0000-4000-8000-0000000000b2"
)

func TestVMConfig(t *testing.T) {
	d := New(Config{Firmware: "/nonexistent/OVMF.fd"})
	spec := driver.Spec{InstanceUUID: testInstance, Dir: "/i/1", VCPUs: 2, MemMB: 256, Image: testImage}
	for _, tc := range []struct {
		name  string
		img   bootImage
		accel qemulib.Accel
		want  string
	}{
		{"disk, kvm", bootImage{Disk: "/img/x", DiskFormat: "qcow2"}, qemulib.AccelKVM,
			"-name ciao-" + testInstance + " -uuid " + testInstance +
				" -drive file=/i/1/image.qcow2,if=virtio,aio=threads,format=qcow2 -drive file=/i/1/seed.iso,if=virtio,media=cdrom" +
				" -net nic,model=virtio -net user -enable-kvm -cpu host -daemonize -pidfile /i/1/qemu.pid -qmp unix:/i/1/socket,server,nowait" +
				" -m 256 -smp cpus=2 -display none -vga none -device isa-serial,chardev=gnc0 -chardev file,path=/i/1/console.log,id=gnc0" +
				" -no-user-config -nodefaults"},
		{"kernel only, tcg", bootImage{Kernel: "/img/k", Initrd: "/img/i", Cmdline: "console=ttyS0"}, qemulib.AccelTCG,
			"-name ciao-" + testInstance + " -uuid " + testInstance +
				" -drive file=/i/1/seed.iso,if=virtio,media=cdrom" +
				" -net nic,model=virtio -net user -accel tcg -daemonize -pidfile /i/1/qemu.pid -qmp unix:/i/1/socket,server,nowait" +
				" -m 256 -smp cpus=2 -display none -vga none -device isa-serial,chardev=gnc0 -chardev file,path=/i/1/console.log,id=gnc0" +
				" -kernel /img/k -initrd /img/i -append console=ttyS0 -no-user-config -nodefaults"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := d.vmConfig(spec, tc.img, tc.accel)
			args, _, err := c.Args()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(args, " "); got != tc.want {
				t.Errorf("args\n got %s\nwant %s", got, tc.want)
			}
		})
	}

	// EFI firmware is used for disk boots when present, never for a
	// kernel boot or a legacy instance.
	fw := filepath.Join(t.TempDir(), "OVMF.fd")
	if err := os.WriteFile(fw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d = New(Config{Firmware: fw})
	if c := d.vmConfig(spec, bootImage{Disk: "/x"}, qemulib.AccelTCG); c.Firmware != fw {
		t.Errorf("EFI disk boot firmware %q", c.Firmware)
	}
	legacy := spec
	legacy.Legacy = true
	if c := d.vmConfig(legacy, bootImage{Disk: "/x"}, qemulib.AccelTCG); c.Firmware != "" {
		t.Errorf("legacy firmware %q", c.Firmware)
	}
	if c := d.vmConfig(spec, bootImage{Kernel: "/k"}, qemulib.AccelTCG); c.Firmware != "" {
		t.Errorf("kernel boot firmware %q", c.Firmware)
	}
}

func TestMetaData(t *testing.T) {
	got := string(metaData(driver.Spec{InstanceUUID: "u1"}))
	if want := "{\n  \"hostname\": \"u1\",\n  \"uuid\": \"u1\"\n}\n"; got != want {
		t.Errorf("default meta data %q, want %q", got, want)
	}
	if got := string(metaData(driver.Spec{InstanceUUID: "u1", MetaData: []byte(`{"uuid":"x"}`)})); got != `{"uuid":"x"}` {
		t.Errorf("START meta data replaced: %q", got)
	}
}

func TestResolveImage(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const flat, kdir, empty = "0a1b2c3d-0000-4000-8000-000000000001", "0a1b2c3d-0000-4000-8000-000000000002", "0a1b2c3d-0000-4000-8000-000000000003"
	write(filepath.Join(dir, flat), []byte("QFI\xfbrest"))
	write(filepath.Join(dir, kdir, "kernel"), []byte("k"))
	write(filepath.Join(dir, kdir, "initrd"), []byte("i"))
	write(filepath.Join(dir, kdir, "disk.raw"), []byte("raw"))
	write(filepath.Join(dir, kdir, "cmdline"), []byte("console=ttyS0\n"))
	if err := os.Mkdir(filepath.Join(dir, empty), 0o755); err != nil {
		t.Fatal(err)
	}

	img, err := resolveImage(dir, flat)
	if err != nil || img.Disk != filepath.Join(dir, flat) || img.DiskFormat != "qcow2" || img.Kernel != "" {
		t.Errorf("flat image: %+v, %v", img, err)
	}
	img, err = resolveImage(dir, kdir)
	if err != nil || img.DiskFormat != "raw" || img.Kernel == "" || img.Initrd == "" || img.Cmdline != "console=ttyS0" {
		t.Errorf("directory image: %+v, %v", img, err)
	}
	for _, bad := range []string{"0a1b2c3d-0000-4000-8000-00000000dead", empty, "../etc", ""} {
		if _, err := resolveImage(dir, bad); !errors.Is(err, driver.ErrImage) {
			t.Errorf("image %q: %v, want ErrImage", bad, err)
		}
	}
}

func TestStartErrors(t *testing.T) {
	d := New(Config{ImageDir: t.TempDir(), Accel: qemulib.AccelTCG})
	spec := driver.Spec{InstanceUUID: testInstance, Dir: t.TempDir()}
	if _, err := d.Start(context.Background(), spec); !errors.Is(err, driver.ErrBadSpec) {
		t.Errorf("no image: %v", err)
	}
	spec.Image = testImage
	if _, err := d.Start(context.Background(), spec); !errors.Is(err, driver.ErrImage) {
		t.Errorf("missing image: %v", err)
	}
	if r := driver.StartFailureReason(func() error { _, err := d.Start(context.Background(), spec); return err }()); r != "image_failure" {
		t.Errorf("reason %s", r)
	}
}

func TestParseProc(t *testing.T) {
	st, err := parseProcStat([]byte("77 (qemu (x) y) S 1 77 77 0 -1 4194560 100 0 0 0 30 12 0 0 20 0 3 0 98765 1000 250 0\n"))
	if err != nil || st.State != 'S' || st.CPUTicks != 42 || st.StartTicks != 98765 {
		t.Errorf("parsed %+v, %v", st, err)
	}
	if _, err := parseProcStat([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat parsed")
	}
	if mb, err := parseKB("  204800 kB"); err != nil || mb != 200 {
		t.Errorf("VmRSS %d, %v", mb, err)
	}
}

// fakeClock advances by exactly what After is asked to wait, so a progress
// watch runs instantly and deterministically.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestAccelPolicy(t *testing.T) {
	yes := func() bool { return true }
	no := func() bool { return false }
	for _, tc := range []struct {
		name   string
		mode   qemulib.Accel
		usable func() bool
		want   qemulib.Accel
		watch  bool
	}{
		{"auto with kvm", qemulib.AccelAuto, yes, qemulib.AccelKVM, true},
		{"auto without kvm", qemulib.AccelAuto, no, qemulib.AccelTCG, false},
		{"forced kvm", qemulib.AccelKVM, no, qemulib.AccelKVM, false},
		{"forced tcg", qemulib.AccelTCG, yes, qemulib.AccelTCG, false},
	} {
		a, w := newAccelPolicy(tc.mode, tc.usable, "").choose()
		if a != tc.want || w != tc.watch {
			t.Errorf("%s: %s watch=%v, want %s watch=%v", tc.name, a, w, tc.want, tc.watch)
		}
	}

	// The verdict is remembered, also by a new policy reading the file.
	file := filepath.Join(t.TempDir(), "accel")
	p := newAccelPolicy(qemulib.AccelAuto, yes, file)
	p.record(kvmHangs)
	if a, w := p.choose(); a != qemulib.AccelTCG || w {
		t.Errorf("after a hang: %s watch=%v", a, w)
	}
	if a, _ := newAccelPolicy(qemulib.AccelAuto, yes, file).choose(); a != qemulib.AccelTCG {
		t.Errorf("restarted policy forgot the hang: %s", a)
	}
	p.record(kvmWorks)
	if a, w := newAccelPolicy(qemulib.AccelAuto, yes, file).choose(); a != qemulib.AccelKVM || w {
		t.Errorf("proven KVM: %s watch=%v", a, w)
	}
}

func TestWatchProgress(t *testing.T) {
	console := filepath.Join(t.TempDir(), "console.log")
	alive := true
	look := consoleProgress(console, func() bool { return alive })
	ctx := context.Background()

	// A silent guest is stuck after exactly the timeout.
	clk := &fakeClock{now: time.Unix(1000, 0)}
	out, err := watchProgress(ctx, clk, 20*time.Second, 100*time.Millisecond, look)
	if out != guestStuck || err != nil || clk.now.Sub(time.Unix(1000, 0)) != 20*time.Second {
		t.Errorf("silent guest: %v, %v after %v", out, err, clk.now.Sub(time.Unix(1000, 0)))
	}

	// Output in the console counts as progress.
	n := 0
	clk = &fakeClock{now: time.Unix(1000, 0)}
	out, _ = watchProgress(ctx, clk, 20*time.Second, time.Second, func() (bool, bool) {
		if n++; n == 5 {
			_ = os.WriteFile(console, []byte("Linux version"), 0o644)
		}
		return look()
	})
	if out != guestProgressed || clk.now.Sub(time.Unix(1000, 0)) != 4*time.Second {
		t.Errorf("talking guest: %v after %v", out, clk.now.Sub(time.Unix(1000, 0)))
	}

	_ = os.Remove(console)
	alive = false
	if out, _ := watchProgress(ctx, &fakeClock{}, time.Second, time.Millisecond, look); out != guestDied {
		t.Errorf("dead guest: %v", out)
	}
	alive = true
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := watchProgress(cctx, realClock{}, time.Hour, time.Hour, look); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled watch: %v", err)
	}
}

// TestVMConfigTenantVnic: a VM with a tenant VNIC is attached to its tap
// with the START's MAC instead of user-mode networking.
func TestVMConfigTenantVnic(t *testing.T) {
	d := New(Config{Firmware: "/nonexistent/OVMF.fd"})
	spec := driver.Spec{InstanceUUID: testInstance, Dir: "/i/1", Image: testImage, Network: true,
		Vnic: "svn_1a2b", VnicMAC: "02:00:ac:10:00:02"}
	c := d.vmConfig(spec, bootImage{Kernel: "/img/k"}, qemulib.AccelTCG)
	args, _, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	vhost := ""
	if vhostNet() {
		vhost = ",vhost=on"
	}
	want := "-netdev type=tap,ifname=svn_1a2b,script=no,downscript=no,id=svn_1a2b" + vhost +
		" -device driver=virtio-net-pci,netdev=svn_1a2b,mac=02:00:ac:10:00:02"
	if !strings.Contains(got, want) || strings.Contains(got, "-net user") {
		t.Errorf("args %s\nwant them to contain %s and no user networking", got, want)
	}
}
