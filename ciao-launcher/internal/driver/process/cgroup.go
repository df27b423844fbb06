package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang/glog"
)

// cgroupParent is the directory under the cgroup v2 root (or under each v1
// controller's mount) that holds one directory per process instance.
const cgroupParent = "ciao"

// cpuPeriod is the CFS period, in µs, both hierarchies' CPU limits use.
const cpuPeriod = 100000

// cgroupV2Usable reports whether root is a cgroup v2 mount offering the
// memory and cpu controllers. On a hybrid host root is a tmpfs holding the
// v1 mounts and has no cgroup.controllers; a v2 root whose controllers are
// bound to v1 hierarchies elsewhere lists neither.
func cgroupV2Usable(root string) error {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("no cgroup v2 hierarchy at %s: %w", root, err)
	}
	have := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		have[c] = true
	}
	if !have["memory"] || !have["cpu"] {
		return fmt.Errorf("cgroup v2 at %s lacks the memory or cpu controller (has %q)", root, strings.TrimSpace(string(b)))
	}
	return nil
}

// cgroupCreate makes <root>/ciao/<id> with the instance's limits:
// memory.max = memMB MiB and cpu.max = vcpus whole CPUs. It returns the
// directory, or an error if cgroup v2 is not usable there, in which case
// the caller tries cgroup v1 (cgroupCreateV1).
func cgroupCreate(root, id string, vcpus, memMB int) (string, error) {
	if root == "" {
		return "", errors.New("cgroups disabled")
	}
	if err := cgroupV2Usable(root); err != nil {
		return "", err
	}
	parent := filepath.Join(root, cgroupParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	// Delegate the controllers down to the instance groups. Failing here
	// means the limits below cannot be set; that is reported there.
	for _, d := range []string{root, parent} {
		if err := writeFile(filepath.Join(d, "cgroup.subtree_control"), "+cpu +memory"); err != nil {
			glog.V(2).Infof("process: enabling cpu and memory controllers in %s: %v", d, err)
		}
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if memMB > 0 {
		if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(int64(memMB)<<20, 10)); err != nil {
			glog.Warningf("process: %s: no memory limit: %v", id, err)
		}
	}
	if vcpus > 0 {
		if err := writeFile(filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", vcpus*cpuPeriod, cpuPeriod)); err != nil {
			glog.Warningf("process: %s: no CPU limit: %v", id, err)
		}
	}
	return dir, nil
}

// cgroupAddProc moves pid into the cgroup dir.
func cgroupAddProc(dir string, pid int) error {
	return writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
}

// cgroupKill kills every process in the cgroup (cgroup.kill, Linux 5.14).
func cgroupKill(dir string) error {
	return writeFile(filepath.Join(dir, "cgroup.kill"), "1")
}

// cgroupRemove removes the cgroup directory, retrying briefly while the
// kernel finishes tearing down its last processes.
func cgroupRemove(dir string) error {
	if dir == "" {
		return nil
	}
	var err error
	for i := 0; i < 50; i++ {
		err = os.Remove(dir)
		switch {
		case err == nil || errors.Is(err, os.ErrNotExist):
			return nil
		case errors.Is(err, syscall.EBUSY):
			// Processes are still being torn down; the kernel gives no
			// event to wait on.
			time.Sleep(20 * time.Millisecond)
		default:
			// A plain directory (a test hierarchy) keeps its files.
			if rerr := os.RemoveAll(dir); rerr == nil {
				return nil
			}
			return err
		}
	}
	return err
}

// cgroupMemMB reads memory.current in MiB.
func cgroupMemMB(dir string) (int, error) {
	v, err := readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return -1, err
	}
	return int(v >> 20), nil
}

// cgroupCPU reads usage_usec from cpu.stat.
func cgroupCPU(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return -1, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "usage_usec" {
			us, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1, err
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return -1, fmt.Errorf("no usage_usec in %s/cpu.stat", dir)
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
