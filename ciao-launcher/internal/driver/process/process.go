// Package process is ciao-launcher's bare-metal backend: an instance is a
// host process started from the workload's command (see Marker), in its own
// process group and in its own cgroups with the memory and CPU limits of
// the START: on cgroup v2 (preferred) <root>/ciao/<instance> with
// memory.max and cpu.max, else on a v1 or hybrid host
// <root>/{memory,cpu,cpuacct}/ciao/<instance> with memory.limit_in_bytes
// and a CFS quota. Without either it runs unlimited, with a warning. Its
// stdout and stderr go to stdout.log and stderr.log in the instance
// directory.
//
// An instance with a tenant VNIC (Spec.VnicPeer) runs in its own network
// namespace, held by a bind mount on "netns" in the instance directory,
// with the VNIC moved in as eth0 (address, MAC, default route via the
// tenant gateway) and lo up; it is started from an OS thread that joined
// the namespace (see netns.go). Instances without a VNIC share the
// launcher's namespace.
//
// The process is not tied to the launcher: it runs in its own process group
// (so a terminal's ^C does not reach it) and is never waited for with
// os/exec, so the launcher may stop or crash and a new one re-adopts it by
// pid and process start time (/proc/<pid>/stat field 22), which tells the
// instance from an unrelated process that got the same pid.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

// Config tunes the driver. The zero value is not usable; start from
// DefaultConfig.
type Config struct {
	// CgroupRoot is the cgroup v2 mount point, or on a v1/hybrid host the
	// directory holding the v1 controller mounts; "" runs instances without
	// cgroups.
	CgroupRoot string
	// ProcRoot is where procfs is mounted.
	ProcRoot string
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// Poll is how often Stop checks whether the process has gone.
	Poll time.Duration
	// ClockTicks is USER_HZ, the unit of /proc/<pid>/stat times.
	ClockTicks int
}

// DefaultConfig is the configuration of a real node.
func DefaultConfig() Config {
	return Config{
		CgroupRoot: "/sys/fs/cgroup",
		ProcRoot:   "/proc",
		StopGrace:  10 * time.Second,
		Poll:       50 * time.Millisecond,
		ClockTicks: 100, // USER_HZ is 100 on every Linux architecture ciao runs on
	}
}

// Driver is the process backend. It keeps no state of its own: everything
// is in the handles, so it is safe for concurrent use.
type Driver struct {
	cfg Config
}

var _ driver.Driver = (*Driver)(nil)

// New returns a process driver.
func New(cfg Config) *Driver {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.ClockTicks <= 0 {
		cfg.ClockTicks = 100
	}
	return &Driver{cfg: cfg}
}

// handleData is the driver's part of a Handle.
type handleData struct {
	Dir string `json:"dir"`
	// Cgroup is the instance's cgroup v2 directory.
	Cgroup string `json:"cgroup,omitempty"`
	// CgroupV1 is set instead on a cgroup v1 host.
	CgroupV1 *cgroupV1 `json:"cgroup_v1,omitempty"`
	// Netns is the bind mount holding the instance's network namespace
	// (instances with a tenant VNIC only).
	Netns string `json:"netns,omitempty"`
}

func decodeData(h driver.Handle) handleData {
	var d handleData
	if len(h.Data) > 0 {
		if err := json.Unmarshal(h.Data, &d); err != nil {
			glog.Warningf("process: bad handle data %q: %v", h.Data, err)
		}
	}
	return d
}

// errSearch is what reading /proc of a vanishing process may return.
var errSearch = syscall.ESRCH

// Start runs the workload's command.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Handle, error) {
	argv, err := Command(spec.UserData)
	if err != nil {
		return driver.Handle{}, err
	}
	if err := checkVnic(spec); err != nil {
		return driver.Handle{}, err
	}
	if err := ctx.Err(); err != nil {
		return driver.Handle{}, err
	}
	var nsPath string
	if spec.VnicPeer != "" {
		if nsPath, err = setupNetns(spec); err != nil {
			return driver.Handle{}, fmt.Errorf("%w: tenant VNIC of %s: %v", driver.ErrLaunch, spec.InstanceUUID, err)
		}
	}
	h, err := d.start(spec, argv, nsPath)
	if err != nil && nsPath != "" {
		if rerr := removeNetns(nsPath); rerr != nil {
			glog.Errorf("process: %s: %v", spec.InstanceUUID, rerr)
		}
	}
	return h, err
}

// start runs argv, in the network namespace mounted on nsPath if not "".
func (d *Driver) start(spec driver.Spec, argv []string, nsPath string) (driver.Handle, error) {
	open := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(spec.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	stdout, err := open("stdout.log")
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
	}
	defer stdout.Close()
	stderr, err := open("stderr.log")
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
	}
	defer stderr.Close()

	cg, err := cgroupCreate(d.cfg.CgroupRoot, spec.InstanceUUID, spec.VCPUs, spec.MemMB)
	var v1 *cgroupV1
	if err != nil {
		cg = ""
		var err1 error
		if v1, err1 = cgroupCreateV1(d.cfg.CgroupRoot, spec.InstanceUUID, spec.VCPUs, spec.MemMB); err1 != nil {
			glog.Warningf("process: %s runs without CPU and memory limits: %v; %v", spec.InstanceUUID, err, err1)
			v1 = nil
		}
	}
	if v1 != nil {
		return d.startV1(spec, argv, stdout, stderr, v1, nsPath)
	}

	newCmd := func() *exec.Cmd {
		c := exec.Command(argv[0], argv[1:]...)
		c.Dir = spec.Dir
		c.Stdout, c.Stderr = stdout, stderr
		c.Env = append(os.Environ(), "CIAO_INSTANCE_UUID="+spec.InstanceUUID)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return c
	}
	cmd := newCmd()
	var cgfd *os.File
	if cg != "" {
		// Start the process inside its cgroup (clone3 CLONE_INTO_CGROUP)
		// so that not even its first instructions escape the limits.
		if cgfd, err = os.Open(cg); err == nil {
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = int(cgfd.Fd())
		}
	}
	err = inNetns(nsPath, cmd.Start)
	if cgfd != nil {
		cgfd.Close()
	}
	movedIn := cmd.SysProcAttr.UseCgroupFD && err == nil
	if err != nil && cmd.SysProcAttr.UseCgroupFD {
		glog.V(2).Infof("process: %s: starting in cgroup failed (%v), retrying outside", spec.InstanceUUID, err)
		cmd = newCmd()
		err = inNetns(nsPath, cmd.Start)
	}
	if err != nil {
		_ = cgroupRemove(cg)
		return driver.Handle{}, fmt.Errorf("%w: starting %q: %v", driver.ErrLaunch, argv[0], err)
	}
	pid := cmd.Process.Pid
	// The launcher never waits through os/exec: the process must outlive
	// it. Running reaps it if it exits while this launcher is its parent.
	_ = cmd.Process.Release()
	if cg != "" && !movedIn {
		if err := cgroupAddProc(cg, pid); err != nil {
			glog.Warningf("process: %s: moving pid %d into %s: %v", spec.InstanceUUID, pid, cg, err)
		}
	}
	st, err := readProcStat(d.cfg.ProcRoot, pid)
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: reading start time of pid %d: %v", driver.ErrLaunch, pid, err)
	}
	data, _ := json.Marshal(handleData{Dir: spec.Dir, Cgroup: cg, Netns: nsPath})
	glog.Infof("process: %s started pid %d: %q", spec.InstanceUUID, pid, argv)
	return driver.Handle{Driver: driver.KindProcess, PID: pid, StartTicks: st.StartTicks, Data: data}, nil
}

// shimScript holds the workload back until the launcher has moved it into
// its v1 groups: cgroup v1 cannot start a process inside a group
// (CLONE_INTO_CGROUP is v2 only), and a process moved after it started may
// already have forked children that stay outside. The shell blocks reading
// its stdin, a pipe the launcher closes once the pid is placed, then execs
// the workload (same pid, same start time, group membership kept) with the
// /dev/null stdin it would have had.
const shimScript = `read _; exec "$@" </dev/null`

// startV1 starts argv through the shim, moves it into cg and lets it run.
func (d *Driver) startV1(spec driver.Spec, argv []string, stdout, stderr *os.File, cg *cgroupV1, nsPath string) (driver.Handle, error) {
	fail := func(err error) (driver.Handle, error) {
		cg.kill()
		_ = cg.remove()
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
	}
	// The shim would only fail at its exec; a missing binary must fail the
	// START as it does without cgroups.
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fail(fmt.Errorf("starting %q: %v", argv[0], err))
	}
	hold, release, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer release.Close()
	cmd := exec.Command("/bin/sh", append([]string{"-c", shimScript, "ciao-cgroup-shim"}, argv...)...)
	cmd.Dir = spec.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = hold, stdout, stderr
	cmd.Env = append(os.Environ(), "CIAO_INSTANCE_UUID="+spec.InstanceUUID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = inNetns(nsPath, cmd.Start)
	hold.Close()
	if err != nil {
		return fail(fmt.Errorf("starting the cgroup shim: %v", err))
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release() // never waited through os/exec: see Start
	if err := cg.addProc(pid); err != nil {
		glog.Warningf("process: %s: moving pid %d into its cgroups: %v", spec.InstanceUUID, pid, err)
	}
	st, err := readProcStat(d.cfg.ProcRoot, pid)
	release.Close() // the workload runs from here
	if err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return fail(fmt.Errorf("reading start time of pid %d: %v", pid, err))
	}
	data, _ := json.Marshal(handleData{Dir: spec.Dir, CgroupV1: cg, Netns: nsPath})
	glog.Infof("process: %s started pid %d in cgroup v1 %v: %q", spec.InstanceUUID, pid, cg.dirs(), argv)
	return driver.Handle{Driver: driver.KindProcess, PID: pid, StartTicks: st.StartTicks, Data: data}, nil
}

// killCgroup kills whatever is left in the handle's cgroups.
func killCgroup(hd handleData) {
	switch {
	case hd.Cgroup != "":
		_ = cgroupKill(hd.Cgroup)
	case hd.CgroupV1 != nil:
		hd.CgroupV1.kill()
	}
}

// Running reports whether the handle's process is alive. A zombie child of
// this launcher is reaped and counts as gone.
func (d *Driver) Running(_ context.Context, h driver.Handle) (bool, error) {
	if h.PID <= 0 {
		return false, nil
	}
	st, err := readProcStat(d.cfg.ProcRoot, h.PID)
	if errors.Is(err, errNoProcess) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.StartTicks != h.StartTicks {
		return false, nil // the pid now names another process
	}
	if st.State == 'Z' || st.State == 'X' {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(h.PID, &ws, syscall.WNOHANG, nil) // ECHILD if not ours
		return false, nil
	}
	return true, nil
}

// Stop sends SIGTERM to the instance's process group, waits up to
// StopGrace, then kills the group (and its cgroup) and waits for the
// process to be gone.
func (d *Driver) Stop(ctx context.Context, h driver.Handle) error {
	running, err := d.Running(ctx, h)
	if err != nil {
		return err
	}
	if !running {
		return driver.ErrNotRunning
	}
	hd := decodeData(h)
	d.signal(h, syscall.SIGTERM)
	grace := time.NewTimer(d.cfg.StopGrace)
	defer grace.Stop()
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	killed := false
	for {
		if ok, err := d.Running(ctx, h); err == nil && !ok {
			// Members of the group that outlived the leader go too.
			d.signal(h, syscall.SIGKILL)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-grace.C:
			if !killed {
				glog.Warningf("process: pid %d ignored SIGTERM for %v, killing it", h.PID, d.cfg.StopGrace)
				killed = true
				killCgroup(hd)
				d.signal(h, syscall.SIGKILL)
			}
		case <-tick.C:
		}
	}
}

// signal signals the instance's process group, or the process alone if it
// has left its group.
func (d *Driver) signal(h driver.Handle, sig syscall.Signal) {
	if err := syscall.Kill(-h.PID, sig); err != nil {
		_ = syscall.Kill(h.PID, sig)
	}
}

// Delete stops the process if it runs and removes its cgroups, killing
// what the workload left in them (daemons that left its process group), as
// the kernel will not remove a group that still has processes.
func (d *Driver) Delete(ctx context.Context, h driver.Handle) error {
	if err := d.Stop(ctx, h); err != nil && !errors.Is(err, driver.ErrNotRunning) {
		return err
	}
	hd := decodeData(h)
	killCgroup(hd)
	var errs []error
	if hd.Netns != "" {
		errs = append(errs, removeNetns(hd.Netns))
	}
	if hd.Dir != "" {
		// A namespace made before the handle was saved.
		errs = append(errs, removeNetns(NetnsPath(hd.Dir)))
	}
	if hd.CgroupV1 != nil {
		errs = append(errs, hd.CgroupV1.remove())
	} else {
		errs = append(errs, cgroupRemove(hd.Cgroup))
	}
	return errors.Join(errs...)
}

// Adopt checks that the process the handle names still runs.
func (d *Driver) Adopt(ctx context.Context, h driver.Handle, _ driver.Spec) (bool, error) {
	if h.Driver != driver.KindProcess {
		return false, fmt.Errorf("process: cannot adopt a %q handle", h.Driver)
	}
	return d.Running(ctx, h)
}

// Stats samples memory and CPU from the cgroup when there is one, else from
// /proc/<pid>, and disk use as the size of the instance directory.
func (d *Driver) Stats(ctx context.Context, h driver.Handle) (driver.Stats, error) {
	s := driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}
	hd := decodeData(h)
	if hd.Dir != "" {
		s.DiskMB = int(dirSize(hd.Dir) / 1000000)
	}
	running, err := d.Running(ctx, h)
	if err != nil || !running {
		return s, driver.ErrNotRunning
	}
	switch {
	case hd.Cgroup != "":
		if mb, err := cgroupMemMB(hd.Cgroup); err == nil {
			s.MemMB = mb
		}
		if t, err := cgroupCPU(hd.Cgroup); err == nil {
			s.CPUTime = t
		}
	case hd.CgroupV1 != nil:
		if mb, err := hd.CgroupV1.memMB(); err == nil {
			s.MemMB = mb
		}
		if t, err := hd.CgroupV1.cpu(); err == nil {
			s.CPUTime = t
		}
	}
	if s.MemMB < 0 || s.CPUTime < 0 {
		st, err := readProcStat(d.cfg.ProcRoot, h.PID)
		if err != nil {
			return s, nil
		}
		if s.MemMB < 0 {
			s.MemMB = int(st.RSSPages * int64(os.Getpagesize()) >> 20)
		}
		if s.CPUTime < 0 {
			s.CPUTime = time.Duration(st.CPUTicks) * time.Second / time.Duration(d.cfg.ClockTicks)
		}
	}
	return s, nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
