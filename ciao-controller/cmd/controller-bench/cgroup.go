package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupV1CPU is where the cgroup v1 cpu controller is mounted.
const cgroupV1CPU = "/sys/fs/cgroup/cpu"

// cpuGroup is a cgroup v1 cpu group the bench creates for the launcher
// processes (-launcher-cpu-shares): a child of the bench's own cpu group,
// so that the launchers, together, weigh its cpu.shares against each of
// the controller's and scheduler's threads (1024 at nice 0) instead of
// 100 × 1024. That stands for launchers on other machines: they get the
// CPU the servers leave idle, and hardly take any they want.
type cpuGroup struct {
	dir string
}

// newCPUGroup creates the group with the given cpu.shares (2..262144).
func newCPUGroup(mount string, shares int) (*cpuGroup, error) {
	if shares < 2 || shares > 262144 {
		return nil, fmt.Errorf("-launcher-cpu-shares %d: want 2..262144 (0 = off)", shares)
	}
	if _, err := os.Stat(filepath.Join(mount, "cpu.shares")); err != nil {
		return nil, fmt.Errorf("-launcher-cpu-shares needs the cgroup v1 cpu controller mounted at %s: %w", mount, err)
	}
	own, err := ownCPUGroup("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("-launcher-cpu-shares: %w", err)
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("controller-bench-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("-launcher-cpu-shares: creating the cgroup (root needed): %w", err)
	}
	g := &cpuGroup{dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.Itoa(shares)), 0o644); err != nil {
		_ = g.remove()
		return nil, fmt.Errorf("-launcher-cpu-shares: %w", err)
	}
	return g, nil
}

// ownCPUGroup is the calling process's cgroup v1 cpu group, from
// /proc/self/cgroup ("1:cpu:/" or "4:cpu,cpuacct:/some/group").
func ownCPUGroup(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				return parts[2], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s names no cgroup v1 cpu group (a cgroup v2 only host?)", path)
}

// add moves a process, all its threads, into the group.
func (g *cpuGroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("moving pid %d into %s: %w", pid, g.dir, err)
	}
	return nil
}

// remove moves what still runs in the group to its parent and removes it.
// The launchers have normally exited by then.
func (g *cpuGroup) remove() error {
	parent := filepath.Join(filepath.Dir(g.dir), "cgroup.procs")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		for _, pid := range strings.Fields(string(b)) {
			_ = os.WriteFile(parent, []byte(pid), 0o644)
		}
		err := os.Remove(g.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: %w", g.dir, err)
		}
		time.Sleep(50 * time.Millisecond) // exiting processes leave the group shortly
	}
}
