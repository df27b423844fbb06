package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 123456 1000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.CPUTicks != 12 || st.StartTicks != 123456 || st.RSSPages != 250 {
		t.Errorf("parsed %+v", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) SS 1"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		ud   string
		want []string
	}{
		{"---\n#cloud-config\n#ciao-process\nruncmd:\n  - [ /bin/sleep, 10 ]\n  - [ ignored ]\n...\n", []string{"/bin/sleep", "10"}},
		{"#ciao-process\nruncmd:\n  - echo hi\n", []string{"/bin/sh", "-c", "echo hi"}},
	} {
		got, err := Command([]byte(tc.ud))
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Command(%q) = %q, %v; want %q", tc.ud, got, err, tc.want)
		}
		if !IsWorkload([]byte(tc.ud)) {
			t.Errorf("%q is not a workload", tc.ud)
		}
	}
	for _, bad := range []string{"", "runcmd: []\n", "runcmd: [ {a: b} ]\n", "runcmd: [ [] ]\n", "runcmd: [\n"} {
		if _, err := Command([]byte(bad)); !errors.Is(err, driver.ErrBadSpec) {
			t.Errorf("Command(%q): %v", bad, err)
		}
	}
	if IsWorkload([]byte("#cloud-config\nruncmd: [ [ls] ]\n")) {
		t.Error("plain cloud-config taken for a process workload")
	}
}

func testDriver(t *testing.T, cgroupRoot string) *Driver {
	cfg := DefaultConfig()
	cfg.CgroupRoot = cgroupRoot
	cfg.StopGrace = time.Second
	cfg.Poll = 5 * time.Millisecond
	return New(cfg)
}

func startSleep(t *testing.T, d *Driver, ud string) (driver.Handle, driver.Spec) {
	t.Helper()
	spec := driver.Spec{InstanceUUID: "0a1b2c3d-0000-4000-8000-00000000000a", Dir: t.TempDir(), VCPUs: 2, MemMB: 64, UserData: []byte(ud)}
	h, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-h.PID, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(h.PID, &ws, 0, nil)
	})
	return h, spec
}

// TestStopIgnoringSIGTERM: a workload that ignores SIGTERM is killed after
// the grace period, with its whole process group.
func TestStopIgnoringSIGTERM(t *testing.T) {
	d := testDriver(t, "")
	h, spec := startSleep(t, d, "#ciao-process\nruncmd:\n  - trap '' TERM; sleep 300 & touch ready; wait\n")
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(filepath.Join(spec.Dir, "ready")); err != nil; _, err = os.Stat(filepath.Join(spec.Dir, "ready")) {
		if time.Now().After(deadline) {
			t.Fatal("workload never got ready")
		}
		time.Sleep(5 * time.Millisecond) // polling a file with a deadline
	}
	if ok, err := d.Running(ctx, h); !ok || err != nil {
		t.Fatalf("Running = %v, %v", ok, err)
	}
	if ok, err := d.Adopt(ctx, h, spec); !ok || err != nil {
		t.Fatalf("Adopt = %v, %v", ok, err)
	}
	recycled := h
	recycled.StartTicks++
	if ok, _ := d.Running(ctx, recycled); ok {
		t.Error("a different start time was taken for the same process")
	}
	if err := d.Stop(ctx, recycled); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("Stop of a recycled pid: %v", err)
	}
	s, err := d.Stats(ctx, h)
	if err != nil || s.MemMB < 0 || s.CPUTime < 0 {
		t.Errorf("Stats = %+v, %v", s, err)
	}
	start := time.Now()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < time.Second {
		t.Error("SIGTERM-ignoring workload stopped before the grace period")
	}
	if ok, _ := d.Running(ctx, h); ok {
		t.Error("still running after Stop")
	}
	// Stop has sent the group SIGKILL; on a loaded machine a member can
	// take a moment to die, so poll (with a deadline) for none alive.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := liveGroupMembers(t, h.PID)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d members of the process group survive", n)
			break
		}
	}
	if err := d.Stop(ctx, h); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := d.Start(ctx, driver.Spec{Dir: spec.Dir, UserData: []byte("#ciao-process\nruncmd: [ [ /nonexistent/binary ] ]\n")}); !errors.Is(err, driver.ErrLaunch) {
		t.Errorf("Start of a missing binary: %v", err)
	}
}

// TestCgroupLimits runs against a fake cgroup v2 hierarchy (a directory with
// cgroup.controllers): the limits and the pid are written where the kernel
// would read them, and Delete removes the group.
func TestCgroupLimits(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := testDriver(t, root)
	h, spec := startSleep(t, d, "#ciao-process\nruncmd: [ [ sleep, 300 ] ]\n")
	dir := filepath.Join(root, "ciao", spec.InstanceUUID)
	for file, want := range map[string]string{
		"memory.max":   "67108864",
		"cpu.max":      "200000 100000",
		"cgroup.procs": strconv.Itoa(h.PID),
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if err := d.Delete(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup left behind: %v", err)
	}
}

func TestNoCgroupV2(t *testing.T) {
	if _, err := cgroupCreate(t.TempDir(), "x", 1, 1); err == nil {
		t.Error("a directory without cgroup.controllers was taken for cgroup v2")
	}
}

// liveGroupMembers counts the non-zombie processes of process group pgid
// (zombies may linger if the container's init does not reap them).
func liveGroupMembers(t *testing.T, pgid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			n++
		}
	}
	return n
}
