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

// cgroupV1 names an instance's groups on a cgroup v1 (or hybrid) host,
// where every controller is a hierarchy of its own mounted under the
// cgroup root: <root>/memory, <root>/cpu, <root>/cpuacct. cpu and cpuacct
// are often co-mounted (<root>/cpu,cpuacct, with cpu and cpuacct symlinks
// to it); then CPU and CPUAcct are the same directory. It is kept in the
// handle so that a restarted launcher reads stats from, kills through and
// removes the same groups. An empty field is a controller the host lacks.
type cgroupV1 struct {
	Memory  string `json:"memory,omitempty"`
	CPU     string `json:"cpu,omitempty"`
	CPUAcct string `json:"cpuacct,omitempty"`
}

// v1Mount finds the hierarchy under root that carries a controller, the one
// whose root group has file. Candidates are tried in order; a co-mounted
// hierarchy may only be reachable by its combined name.
func v1Mount(root, file string, names ...string) string {
	for _, n := range names {
		d := filepath.Join(root, n)
		if _, err := os.Stat(filepath.Join(d, file)); err == nil {
			if r, err := filepath.EvalSymlinks(d); err == nil {
				return r
			}
			return d
		}
	}
	return ""
}

// cgroupCreateV1 makes <mount>/ciao/<id> in the memory, cpu and cpuacct
// hierarchies with memory.limit_in_bytes = memMB MiB and a CFS quota of
// vcpus whole CPUs. A missing controller or limit is logged and skipped;
// it fails only if root has neither a memory nor a cpu hierarchy.
func cgroupCreateV1(root, id string, vcpus, memMB int) (*cgroupV1, error) {
	if root == "" {
		return nil, errors.New("cgroups disabled")
	}
	mem := v1Mount(root, "memory.limit_in_bytes", "memory")
	cpu := v1Mount(root, "cpu.cfs_quota_us", "cpu", "cpu,cpuacct", "cpuacct,cpu")
	acct := v1Mount(root, "cpuacct.usage", "cpuacct", "cpu,cpuacct", "cpuacct,cpu")
	if mem == "" && cpu == "" {
		return nil, fmt.Errorf("no cgroup v1 memory or cpu hierarchy under %s", root)
	}
	cg := &cgroupV1{}
	mk := func(mount string) (string, error) {
		if mount == "" {
			return "", nil
		}
		dir := filepath.Join(mount, cgroupParent, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("creating %s: %w", dir, err)
		}
		return dir, nil
	}
	var err error
	if cg.Memory, err = mk(mem); err != nil {
		return nil, err
	}
	if cg.CPU, err = mk(cpu); err != nil {
		_ = cg.remove()
		return nil, err
	}
	if cg.CPUAcct, err = mk(acct); err != nil {
		_ = cg.remove()
		return nil, err
	}
	switch {
	case cg.Memory == "":
		glog.Warningf("process: %s: no memory limit: no cgroup v1 memory hierarchy under %s", id, root)
	case memMB > 0:
		limit := strconv.FormatInt(int64(memMB)<<20, 10)
		if err := writeFile(filepath.Join(cg.Memory, "memory.limit_in_bytes"), limit); err != nil {
			glog.Warningf("process: %s: no memory limit: %v", id, err)
		}
		// Without swap accounting (or swap) there is no memsw file; where
		// there is, the same limit keeps swap from stretching the limit.
		if _, err := os.Stat(filepath.Join(cg.Memory, "memory.memsw.limit_in_bytes")); err == nil {
			if err := writeFile(filepath.Join(cg.Memory, "memory.memsw.limit_in_bytes"), limit); err != nil {
				glog.V(2).Infof("process: %s: memory+swap limit: %v", id, err)
			}
		}
	}
	switch {
	case cg.CPU == "":
		glog.Warningf("process: %s: no CPU limit: no cgroup v1 cpu hierarchy under %s", id, root)
	case vcpus > 0:
		// The period first: the quota is checked against it.
		err := writeFile(filepath.Join(cg.CPU, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod))
		if err == nil {
			err = writeFile(filepath.Join(cg.CPU, "cpu.cfs_quota_us"), strconv.Itoa(vcpus*cpuPeriod))
		}
		if err != nil {
			glog.Warningf("process: %s: no CPU limit: %v", id, err)
		}
	}
	return cg, nil
}

// dirs lists the distinct group directories.
func (c *cgroupV1) dirs() []string {
	var ds []string
	for _, d := range []string{c.Memory, c.CPU, c.CPUAcct} {
		if d == "" {
			continue
		}
		dup := false
		for _, e := range ds {
			dup = dup || e == d
		}
		if !dup {
			ds = append(ds, d)
		}
	}
	return ds
}

// addProc moves pid into every group. v1 has no way to start a process
// inside a group, so the caller holds the process back (see Start) until
// this has run.
func (c *cgroupV1) addProc(pid int) error {
	var errs []error
	for _, d := range c.dirs() {
		errs = append(errs, cgroupAddProc(d, pid))
	}
	return errors.Join(errs...)
}

// procs lists the pids in the groups.
func (c *cgroupV1) procs() []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range c.dirs() {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// kill SIGKILLs every process in the groups. v1 has no cgroup.kill, so it
// reads cgroup.procs and kills what it lists, a few rounds to catch
// processes forked meanwhile (a fork bomb can outrun it; the process group
// kill and the memory limit are the other lines of defence).
func (c *cgroupV1) kill() {
	for round := 0; round < 3; round++ {
		pids := c.procs()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// remove removes the group directories; the kernel refuses (EBUSY) while
// processes remain, so the caller kills them first.
func (c *cgroupV1) remove() error {
	var errs []error
	for _, d := range c.dirs() {
		errs = append(errs, cgroupRemove(d))
	}
	return errors.Join(errs...)
}

// memMB reads memory.usage_in_bytes in MiB.
func (c *cgroupV1) memMB() (int, error) {
	if c.Memory == "" {
		return -1, errors.New("no memory cgroup")
	}
	v, err := readUint(filepath.Join(c.Memory, "memory.usage_in_bytes"))
	if err != nil {
		return -1, err
	}
	return int(v >> 20), nil
}

// cpu reads cpuacct.usage, the group's CPU time in ns.
func (c *cgroupV1) cpu() (time.Duration, error) {
	if c.CPUAcct == "" {
		return -1, errors.New("no cpuacct cgroup")
	}
	v, err := readUint(filepath.Join(c.CPUAcct, "cpuacct.usage"))
	if err != nil {
		return -1, err
	}
	return time.Duration(v), nil
}
