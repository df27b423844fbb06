package qemu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests run the real binaries, which `make deps` installs. Without
// them the tests skip on a bare laptop, but fail under CI (CI set), where
// a skip would hide a missing install step.

func needBinary(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "%s not installed (run make deps): %v", n, err)
		}
	}
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// connectWithRetry polls until QEMU has created its QMP socket.
func connectWithRetry(ctx context.Context, t *testing.T, path string) *QMP {
	t.Helper()
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		q, err := Connect(attempt, path, WithLogger(testLogger{t}))
		cancel()
		if err == nil {
			return q
		}
		select {
		case <-ctx.Done():
			t.Fatalf("QMP never came up at %s: %v", path, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// testVM is a small diskless TCG guest: enough for QEMU to run SeaBIOS
// and serve QMP, no image needed.
func testVM(dir string) Config {
	return Config{
		Name:         "ciao-test",
		UUID:         "6f1f3c1e-9a4e-4b8b-9f3e-2d7f8a0b1c2d",
		Accel:        AccelTCG,
		MemoryMB:     64,
		CPUs:         1,
		NetDevs:      []NetDev{{Kind: NetUser}},
		Serial:       &Serial{Kind: SerialFile, Path: filepath.Join(dir, "console.log")},
		QMPSocket:    filepath.Join(dir, "qmp"),
		Headless:     true,
		NoUserConfig: true,
		NoDefaults:   true,
	}
}

func TestIntegrationQMP(t *testing.T) {
	needBinary(t, DefaultBinary)
	dir := filepath.Dir(shortSocketPath(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cfg := testVM(dir)
	args, _, err := cfg.Args()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(DefaultBinary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	t.Logf("qemu %s", strings.Join(args, " "))

	q := connectWithRetry(ctx, t, cfg.QMPSocket)
	defer q.Close()
	t.Logf("connected to qemu %s", q.Version)

	if st, err := q.Status(ctx); err != nil || st.Status != "running" || !st.Running {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, q, "STOP")
	if st, err := q.Status(ctx); err != nil || st.Status != "paused" || st.Running {
		t.Fatalf("Status after stop = %+v, %v", st, err)
	}
	if err := q.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, q, "RESUME")
	// No OS answers the ACPI button, but QEMU reports the request.
	if err := q.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, q, "POWERDOWN")
	if err := q.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, q, "SHUTDOWN")
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("qemu exit: %v\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("qemu did not exit after quit\n%s", stderr.String())
	}
	select {
	case <-q.Done():
	case <-ctx.Done():
		t.Fatal("QMP session did not end with the process")
	}
	if _, err := os.Stat(cfg.Serial.Path); err != nil {
		t.Errorf("serial console file: %v", err)
	}
}

func TestIntegrationLaunchDaemonize(t *testing.T) {
	needBinary(t, DefaultBinary)
	dir := filepath.Dir(shortSocketPath(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cfg := testVM(dir)
	cfg.Daemonize = true
	cfg.PIDFile = filepath.Join(dir, "pid")
	if _, err := LaunchConfig(ctx, cfg, testLogger{t}); err != nil {
		t.Fatalf("LaunchConfig: %v", err)
	}
	b, err := os.ReadFile(cfg.PIDFile)
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pidfile %q: %v", b, err)
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil && processAlive(pid) {
			_ = p.Kill()
		}
	})

	q := connectWithRetry(ctx, t, cfg.QMPSocket)
	defer q.Close()
	if err := q.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	for processAlive(pid) {
		if ctx.Err() != nil {
			t.Fatalf("daemonised qemu %d still alive after quit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive treats a zombie as dead: the daemonised QEMU is not our
// child, and whoever inherits it may reap it late.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func TestIntegrationLaunchFailureReturnsStderr(t *testing.T) {
	needBinary(t, DefaultBinary)
	stderr, err := Launch(context.Background(), "", []string{"-no-such-option"}, nil, testLogger{t})
	if err == nil {
		t.Fatal("Launch with a bad option succeeded")
	}
	if !strings.Contains(stderr, "no-such-option") {
		t.Fatalf("stderr = %q", stderr)
	}
}

func TestIntegrationOverlay(t *testing.T) {
	needBinary(t, "qemu-img")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("base image: %v: %s", err, out)
	}
	overlay := filepath.Join(dir, "image.qcow2")
	if err := CreateOverlay(ctx, base, overlay, OverlayOptions{SizeMB: 32}, testLogger{t}); err != nil {
		t.Fatal(err)
	}
	size, err := ImageVirtualSize(ctx, overlay)
	if err != nil || size != 32<<20 {
		t.Fatalf("overlay size = %d, %v", size, err)
	}
	info, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", overlay).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(info, []byte(`"backing-filename": "`+base+`"`)) ||
		!bytes.Contains(info, []byte(`"backing-filename-format": "qcow2"`)) {
		t.Fatalf("overlay does not name its backing file and format:\n%s", info)
	}
	if err := CreateOverlay(ctx, filepath.Join(dir, "absent"), overlay+"2", OverlayOptions{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing base: %v", err)
	}
	// A wrong backing format is qemu-img's to reject; the error carries
	// its explanation.
	err = CreateOverlay(ctx, base, overlay+"3", OverlayOptions{BackingFormat: "vmdk"}, nil)
	if err == nil || !strings.Contains(err.Error(), "qemu-img") {
		t.Fatalf("bad backing format: %v", err)
	}
}

func TestIntegrationConfigDrive(t *testing.T) {
	if _, _, err := isoTool(exec.LookPath); err != nil {
		skipOrFail(t, "%v (run make deps)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	meta := []byte(`{"uuid": "u1", "hostname": "u1"}` + "\n")
	user := []byte("#cloud-config\nruncmd: [true]\n")
	if err := CreateConfigDrive(ctx, iso, meta, user, testLogger{t}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	// ISO 9660: the primary volume descriptor is sector 16 (2048-byte
	// sectors); its volume identifier is 32 bytes at offset 40.
	const pvd = 16 * 2048
	if len(b) < pvd+72 {
		t.Fatalf("iso too small: %d bytes", len(b))
	}
	if label := strings.TrimRight(string(b[pvd+40:pvd+72]), " "); label != ConfigDriveLabel {
		t.Fatalf("volume label %q, want %q", label, ConfigDriveLabel)
	}
	for _, want := range [][]byte{meta, user} {
		if !bytes.Contains(b, want) {
			t.Errorf("iso lacks %q", want)
		}
	}
	if _, err := exec.LookPath("isoinfo"); err == nil {
		out, err := exec.CommandContext(ctx, "isoinfo", "-R", "-f", "-i", iso).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/openstack/latest/meta_data.json", "/openstack/latest/user_data"} {
			if !strings.Contains(string(out), p+"\n") {
				t.Errorf("iso listing lacks %s:\n%s", p, out)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("staging tree left behind: %v", entries)
	}
}
