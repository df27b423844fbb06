package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOwnCPUGroup(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"9:name=systemd:/\n1:cpu:/\n0::/\n", "/"},
		{"4:cpu,cpuacct:/docker/abc\n2:cpuset:/\n", "/docker/abc"},
		{"3:cpuacct,cpu:/x\n", "/x"},
	} {
		p := filepath.Join(dir, "cgroup")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ownCPUGroup(p); err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	p := filepath.Join(dir, "v2")
	if err := os.WriteFile(p, []byte("0::/user.slice\n2:cpuset:/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ownCPUGroup(p); err == nil || !strings.Contains(err.Error(), "no cgroup v1 cpu group") {
		t.Errorf("v2-only host: %v", err)
	}
}

// TestCPUGroupBadInput: out-of-range shares and a host without the v1
// cpu controller are refused with an error naming the flag.
func TestCPUGroupBadInput(t *testing.T) {
	for _, shares := range []int{-1, 1, 262145} {
		if _, err := newCPUGroup(cgroupV1CPU, shares); err == nil || !strings.Contains(err.Error(), "-launcher-cpu-shares") {
			t.Errorf("shares %d: %v", shares, err)
		}
	}
	_, err := newCPUGroup(t.TempDir(), 10)
	if err == nil || !strings.Contains(err.Error(), "cgroup v1 cpu controller") {
		t.Errorf("no controller: %v", err)
	}
}

// TestCPUGroup creates a group on the host's cgroup v1 cpu controller,
// moves a process into it and removes it with the process still running.
// Hosts without a writable v1 cpu controller (cgroup v2 only, not root)
// skip it.
func TestCPUGroup(t *testing.T) {
	if _, err := os.Stat(filepath.Join(cgroupV1CPU, "cpu.shares")); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and the cgroup v1 cpu controller at " + cgroupV1CPU)
	}
	g, err := newCPUGroup(cgroupV1CPU, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.remove() })
	if b, err := os.ReadFile(filepath.Join(g.dir, "cpu.shares")); err != nil || strings.TrimSpace(string(b)) != "7" {
		t.Errorf("cpu.shares %q, %v", b, err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := g.add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	if strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("cgroup.procs %q, want pid %d", b, cmd.Process.Pid)
	}
	if err := g.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.dir); !os.IsNotExist(err) {
		t.Errorf("group still there: %v", err)
	}
	if err := g.add(cmd.Process.Pid); err == nil {
		t.Error("add after remove succeeded")
	}
}

func TestProcCPU(t *testing.T) {
	// This process has used some CPU by now; a pid that cannot exist has
	// none.
	deadline := time.Now().Add(10 * time.Second)
	for procCPU(os.Getpid()) == 0 && time.Now().Before(deadline) {
		for i := 0; i < 1e7; i++ {
			_ = strconv.Itoa(i)
		}
	}
	if procCPU(os.Getpid()) <= 0 {
		t.Error("no CPU time for the test process")
	}
	if procCPU(1<<30) != 0 {
		t.Error("CPU time for a missing process")
	}
}
