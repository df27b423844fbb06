package devcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Down removes everything Up made: it stops the daemons (supervisor or
// units), deletes every instance with the launchers' -hard-reset, removes
// the unit files and the state directory, then checks that nothing is
// left (Leftovers). It is harmless when nothing is there. Host
// prerequisites that Up only ensured (OS packages, the Docker engine, the
// busybox image, the source tree's build/vm) are shared with the tests and
// are left in place.
func Down(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m, err := cfg.LoadManifest()
	if errors.Is(err, os.ErrNotExist) {
		if !exists(cfg.StateDir) {
			cfg.logf("devcluster: nothing at %s", cfg.StateDir)
			return nil
		}
		// A run that failed before writing its manifest: remove what is
		// there the same way.
		m = Manifest{Daemons: cfg.Daemons(false)}
	} else if err != nil {
		return err
	}
	instances := cfg.instanceIDs()
	var errs []error
	if len(m.Units) > 0 {
		if err := cfg.removeUnits(ctx, m.Units); err != nil {
			errs = append(errs, err)
		}
	}
	if err := cfg.stopSupervisor(); err != nil {
		errs = append(errs, err)
	}
	// Anything of ours still running (a supervisor killed with SIGKILL
	// leaves its daemons to their SIGTERM): end it, by pid.
	for _, pid := range cfg.daemonPIDs() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	_ = poll(ctx, 20*time.Second, func() (bool, error) { return len(cfg.daemonPIDs()) == 0, nil })
	for _, pid := range cfg.daemonPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// A launcher's -hard-reset that fails part way (seen: its networking
	// reset deletes a container's veth peer and then fails on the other
	// end, which went with it) is reported, but does not fail Down when
	// the leftover check below finds nothing: removing the namespaces
	// takes the rest, and "nothing left" is what Down promises.
	var resetErrs []error
	for _, kind := range []string{ComputeNode, NetworkNode} {
		if err := cfg.hardReset(ctx, m, kind); err != nil {
			resetErrs = append(resetErrs, err)
		}
	}
	if err := cfg.teardownNetwork(ctx, m.Namespaces); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	left := Leftovers(cfg, m, instances)
	if len(left) > 0 {
		errs = append(errs, resetErrs...)
		errs = append(errs, fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  ")))
	} else {
		for _, e := range resetErrs {
			cfg.logf("devcluster: warning (nothing was left behind): %v", e)
		}
	}
	return errors.Join(errs...)
}

// instanceIDs lists the instance directories of both launchers.
func (c Config) instanceIDs() []string {
	var ids []string
	for _, kind := range []string{ComputeNode, NetworkNode} {
		ents, _ := os.ReadDir(filepath.Join(c.LauncherDir(kind), "instances"))
		for _, e := range ents {
			if e.IsDir() {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids
}

// stopSupervisor sends the supervisor SIGTERM and waits until it has
// stopped its daemons and exited.
func (c Config) stopSupervisor() error {
	pid := c.supervisorRunning()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping supervisor %d: %w", pid, err)
	}
	// Each daemon gets StopTimeout before SIGKILL.
	err := poll(context.Background(), 5*StopTimeout, func() (bool, error) { return !processAlive(pid), nil })
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("supervisor %d did not exit; killed", pid)
	}
	return nil
}

// hardReset deletes every instance of one launcher: the launcher's own
// command line (from the manifest, so that a network node has its CNCI
// driver) with -hard-reset.
func (c Config) hardReset(ctx context.Context, m Manifest, kind string) error {
	d := c.LauncherDir(kind)
	if !exists(filepath.Join(d, "instances")) {
		return nil
	}
	bin := c.Bin("ciao-launcher")
	if !exists(bin) {
		return fmt.Errorf("launcher-%s: %s is missing; cannot delete its instances", kind, bin)
	}
	args := []string{"-state-dir", d + "/instances", "-uuid-dir", d + "/uuid", "-lock-file", d + "/lock",
		"-maintenance-file", d + "/maintenance", "-image-dir", d + "/images", "-osprepare=false", "-logtostderr"}
	for _, dm := range m.Daemons {
		if dm.Name == "launcher-"+kind {
			args = append([]string{}, dm.Args...)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(args, "-hard-reset")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("launcher-%s -hard-reset: %w\n%s", kind, err, tail(string(out), 20))
	}
	return nil
}

// daemonPIDs are the processes whose executable is in <state>/bin or
// whose command line or working directory is in the state directory,
// except this process.
func (c Config) daemonPIDs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if c.ownsProcess(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c Config) ownsProcess(pid int) bool {
	if !processAlive(pid) {
		return false
	}
	p := "/proc/" + strconv.Itoa(pid)
	under := func(path string) bool {
		return path == c.StateDir || strings.HasPrefix(path, c.StateDir+"/")
	}
	if exe, err := os.Readlink(p + "/exe"); err == nil && under(strings.TrimSuffix(exe, " (deleted)")) {
		return true
	}
	if cwd, err := os.Readlink(p + "/cwd"); err == nil && under(strings.TrimSuffix(cwd, " (deleted)")) {
		return true
	}
	b, err := os.ReadFile(p + "/cmdline")
	return err == nil && strings.Contains(string(b), c.StateDir+"/")
}

// Leftovers lists what the cluster made that still exists: processes,
// containers, mounts, network interfaces, cgroups of its instances, unit
// files and the state directory.
func Leftovers(cfg Config, m Manifest, instances []string) []string {
	var left []string
	for _, pid := range cfg.daemonPIDs() {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")))
	}
	for _, kind := range []string{ComputeNode, NetworkNode} {
		root := filepath.Join(cfg.LauncherDir(kind), "instances")
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=ciao.instances_root="+root).Output()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			left = append(left, fmt.Sprintf("containers of launcher-%s: %s", kind, strings.Join(strings.Fields(string(out)), " ")))
		}
	}
	for _, mnt := range mountsUnder(cfg.StateDir) {
		left = append(left, "mount "+mnt)
	}
	if now, err := interfaceNames(); err == nil && m.InterfacesBefore != nil {
		before := map[string]bool{}
		for _, n := range m.InterfacesBefore {
			before[n] = true
		}
		for _, n := range now {
			if !before[n] && ownInterface(n) {
				left = append(left, "interface "+n)
			}
		}
	}
	for _, id := range instances {
		for _, pattern := range []string{"/sys/fs/cgroup/ciao/" + id, "/sys/fs/cgroup/*/ciao/" + id} {
			matches, _ := filepath.Glob(pattern)
			for _, mt := range matches {
				left = append(left, "cgroup "+mt)
			}
		}
	}
	left = append(left, namespacesLeft(m.Namespaces, instances)...)
	for _, u := range m.Units {
		if exists(u) {
			left = append(left, "unit file "+u)
		}
	}
	if exists(cfg.StateDir) {
		left = append(left, "directory "+cfg.StateDir)
	}
	sort.Strings(left)
	return left
}

// ownInterfacePrefixes are the names of the interfaces ciao networking
// makes on a node (networking/names.go: subnet bridges, VNICs and taps,
// veth peers, CNCI VNICs, tunnels); other new interfaces belong to
// whatever else runs on the machine. With the dev cluster's namespaces
// they are made inside them; this catches any made in the host's.
var ownInterfacePrefixes = []string{"ciao", "sbr_", "svn_", "svp_", "svc_", "sgt_"}

func ownInterface(name string) bool {
	for _, p := range ownInterfacePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func interfaceNames() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ifs))
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	return names, nil
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}
