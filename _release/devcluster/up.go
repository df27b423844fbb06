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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/osprepare"
)

// Report is what Up made and measured.
type Report struct {
	Mode          string
	Network       bool
	NetworkWhyOff string
	Instances     map[string]string // workload id → instance id
	Elapsed       time.Duration
	Steps         []Step
}

// Step is one timed phase of Up.
type Step struct {
	Name    string
	Elapsed time.Duration
}

// Up brings the dev cluster up (package doc). It is idempotent: what
// exists is kept, daemons that run are left running, and a workload that
// has an active instance is not launched again.
func Up(ctx context.Context, cfg Config) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if os.Geteuid() != 0 {
		return rep, errors.New("devcluster: run as root (the launcher needs it for QEMU, Docker and cgroups)")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	step := func(name string, f func() error) error {
		if err != nil {
			return err
		}
		s := time.Now()
		cfg.logf("devcluster: %s", name)
		if e := f(); e != nil {
			err = fmt.Errorf("%s: %w", name, e)
			return err
		}
		rep.Steps = append(rep.Steps, Step{name, time.Since(s)})
		return nil
	}
	if e := os.MkdirAll(cfg.StateDir, 0o755); e != nil {
		return rep, e
	}
	m, e := cfg.loadOrNewManifest()
	if e != nil {
		return rep, e
	}
	if cfg.Deps {
		_ = step("OS packages (osprepare)", func() error { return installPackages(ctx, cfg) })
		_ = step("Docker engine and busybox image", func() error {
			if err := cfg.script(ctx, "start-dockerd.sh"); err != nil {
				return err
			}
			return cfg.script(ctx, "test-image.sh")
		})
	}
	var vmSrc string
	_ = step("VM kernel and initramfs", func() error {
		vmSrc, err = cfg.vmImage(ctx)
		return err
	})
	_ = step("build", func() error { return cfg.build(ctx) })
	_ = step("tenant networking", func() error {
		why := cfg.networkMissing(ctx)
		switch {
		case cfg.Network == "on" && why != "":
			return errors.New("-network on: " + why)
		case cfg.Network == "off" || why != "":
			m.Network, m.NetworkWhyOff = false, why
			if cfg.Network == "off" {
				m.NetworkWhyOff = "-network off"
			}
			return nil
		}
		m.Network = true
		names, err := cfg.setupNetwork(ctx)
		m.Namespaces = names
		if serr := cfg.saveManifest(m); serr != nil && err == nil {
			err = serr
		}
		return err
	})
	var cr Credentials
	_ = step("certificates, configuration, identities, workloads", func() error {
		for _, d := range []string{"logs", "controller", "launcher-compute/images", "launcher-network/images"} {
			if err := os.MkdirAll(cfg.Path(d), 0o755); err != nil {
				return err
			}
		}
		if err := cfg.writeCerts(); err != nil {
			return err
		}
		conf, err := cfg.ClusterConfiguration(m.Network)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(cfg.configFile(), conf, 0o644); err != nil {
			return err
		}
		if cr, err = cfg.loadOrMakeCredentials(); err != nil {
			return err
		}
		if err := installVMImage(vmSrc, cfg.ImageDir()); err != nil {
			return err
		}
		if err := cfg.createUser(ctx, "admin", cr.AdminPassword, "admin", "admin"); err != nil {
			return err
		}
		if err := cfg.createUser(ctx, "demo", cr.DemoPassword, "demo", "member"); err != nil {
			return err
		}
		if cr.AdminProject, err = projectID(ctx, cfg.Database(), "admin"); err != nil {
			return err
		}
		if cr.DemoProject, err = projectID(ctx, cfg.Database(), "demo"); err != nil {
			return err
		}
		if err := cfg.writeEnvFiles(cr); err != nil {
			return err
		}
		return cfg.writeWorkloadFiles()
	})
	if err != nil {
		return rep, err
	}
	m.Daemons = cfg.Daemons(m.Network)
	m.ReadyAddr = map[string]string{
		"scheduler":  net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.SchedulerPort)),
		"controller": net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.APIPort)),
		"webui":      net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.WebUIPort)),
	}
	if cfg.UseSystemd() {
		m.Mode = "systemd"
	} else {
		m.Mode = "supervisor"
	}
	rep.Mode, rep.Network, rep.NetworkWhyOff = m.Mode, m.Network, m.NetworkWhyOff
	if e := cfg.saveManifest(m); e != nil {
		return rep, e
	}
	_ = step("start daemons ("+m.Mode+")", func() error {
		if m.Mode == "systemd" {
			units, err := cfg.installUnits(ctx, m.Daemons)
			m.Units = units
			if serr := cfg.saveManifest(m); serr != nil && err == nil {
				err = serr
			}
			return err
		}
		return cfg.startSupervisor(ctx)
	})
	_ = step("wait for the API and both launchers", func() error { return cfg.waitUp(ctx) })
	if cfg.Launch {
		_ = step("launch one container, one VM and one process", func() error {
			rep.Instances, err = cfg.launchDemo(ctx)
			return err
		})
	}
	rep.Elapsed = time.Since(t0)
	return rep, err
}

// installPackages runs osprepare for every component.
func installPackages(ctx context.Context, cfg Config) error {
	oc := osprepare.NewConfig()
	oc.Logger = stepLogger{cfg}
	in, err := osprepare.New(oc)
	if err != nil {
		return err
	}
	res, err := in.Install(ctx, osprepare.Components()...)
	if err != nil {
		return err
	}
	if len(res.Installed) > 0 {
		cfg.logf("devcluster: installed %v", res.Installed)
	}
	return nil
}

type stepLogger struct{ cfg Config }

func (stepLogger) Infof(string, ...any)          {}
func (l stepLogger) Warningf(f string, a ...any) { l.cfg.logf("osprepare: "+f, a...) }
func (l stepLogger) Errorf(f string, a ...any)   { l.cfg.logf("osprepare: "+f, a...) }
func (c Config) script(ctx context.Context, name string) error {
	return c.run(ctx, c.RepoDir, filepath.Join(c.RepoDir, "scripts", name))
}

// run runs a command, with its output in the error when it fails.
func (c Config) run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(string(out), 20))
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vmImage returns a directory with vmlinuz, initrd.img and cmdline: the
// source tree's build/vm when make deps built it, else one built into the
// state directory.
func (c Config) vmImage(ctx context.Context) (string, error) {
	for _, d := range []string{filepath.Join(c.RepoDir, "build", "vm"), c.Path("vm")} {
		if exists(filepath.Join(d, "vmlinuz")) && exists(filepath.Join(d, "initrd.img")) && exists(filepath.Join(d, "cmdline")) {
			return d, nil
		}
	}
	if err := c.run(ctx, c.RepoDir, filepath.Join(c.RepoDir, "scripts", "build-vm-image.sh"), c.Path("vm")); err != nil {
		return "", err
	}
	return c.Path("vm"), nil
}

// Commands built into <state>/bin.
var commands = []string{"./ciao-scheduler", "./ciao-controller", "./ciao-launcher", "./ciao-cli", "./ciao-webui",
	"./networking/ciao-cnci-agent", "./_release/cmd/ciao-devcluster"}

// build compiles the daemons, the CLI and this tool into <state>/bin. A
// running binary is replaced by a rename, so running daemons keep theirs
// until they restart.
func (c Config) build(ctx context.Context) error {
	if err := os.MkdirAll(c.Path("bin"), 0o755); err != nil {
		return err
	}
	args := append([]string{"build", "-o", c.Path("bin") + "/"}, commands...)
	return c.run(ctx, c.RepoDir, "go", args...)
}

// createUser runs the controller's -create-user mode (idempotent: an
// existing user gets its password reset to the same value).
func (c Config) createUser(ctx context.Context, user, password, project, role string) error {
	cmd := exec.CommandContext(ctx, c.Bin("ciao-controller"), "-database", c.Database(), "-create-user", user,
		"-password", "-", "-project", project, "-role", role, "-logtostderr")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("create user %s: %w\n%s", user, err, tail(string(out), 10))
	}
	return nil
}

// networkMissing says what this host or build lacks for tenant
// networking ("" when nothing): the controller's -network, ip netns, or
// dnsmasq (the CNCI agent's DHCP). /dev/vhost-net is not needed: the
// launcher uses vhost only where it exists.
func (c Config) networkMissing(ctx context.Context) string {
	out, _ := exec.CommandContext(ctx, c.Bin("ciao-controller"), "-help").CombinedOutput()
	if !strings.Contains(string(out), "-network") || !strings.Contains(string(out), "-cnci-timeout") {
		return "the controller does not implement -network"
	}
	if !exists(c.Bin("ciao-cnci-agent")) {
		return "ciao-cnci-agent was not built"
	}
	for _, tool := range []string{"ip", "dnsmasq"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed (make deps)"
		}
	}
	return ""
}

// supervisorRunning returns the pid of the supervisor holding the state
// directory's lock, or 0.
func (c Config) supervisorRunning() int {
	f, err := os.OpenFile(c.Path("supervisor.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0
	}
	b, _ := os.ReadFile(c.Path("supervisor.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// startSupervisor starts `ciao-devcluster supervise` in the background,
// in its own session, unless one already runs for this state directory,
// and waits until it has started every daemon once.
func (c Config) startSupervisor(ctx context.Context) error {
	if pid := c.supervisorRunning(); pid != 0 {
		c.logf("devcluster: supervisor %d already running", pid)
		return nil
	}
	_ = os.Remove(c.Path("status.json"))
	logf, err := os.OpenFile(c.Path("logs", "supervisor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.Bin("ciao-devcluster"), "supervise", "-state-dir", c.StateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return poll(ctx, 60*time.Second, func() (bool, error) {
		st, err := ReadStatus(c.Path("status.json"))
		if err != nil {
			if !processAlive(pid) {
				return false, fmt.Errorf("the supervisor exited; see %s", c.Path("logs", "supervisor.log"))
			}
			return false, nil
		}
		return len(st.Daemons) == len(DaemonNames()), nil
	})
}

// waitUp waits until the API answers ciao-cli, both launchers have
// connected to the scheduler and the web UI accepts connections.
func (c Config) waitUp(ctx context.Context) error {
	cli, err := c.NewCLI("demo")
	if err != nil {
		return err
	}
	var last error
	if err := poll(ctx, 90*time.Second, func() (bool, error) {
		_, last = cli.Run(ctx, "workload", "list")
		return last == nil, nil
	}); err != nil {
		return fmt.Errorf("the API does not answer: %v (%w)", last, err)
	}
	for _, kind := range []string{ComputeNode, NetworkNode} {
		log := c.Path("logs", "launcher-"+kind+".log")
		if err := poll(ctx, 90*time.Second, func() (bool, error) {
			return lastRunLogged(log, "connected to scheduler"), nil
		}); err != nil {
			return fmt.Errorf("launcher-%s did not connect (see %s): %w", kind, log, err)
		}
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.WebUIPort))
	if err := waitTCP(ctx, addr, 60*time.Second); err != nil {
		return fmt.Errorf("the web UI does not accept on %s (see %s): %w", addr, c.Path("logs", "webui.log"), err)
	}
	return nil
}

// lastRunLogged reports whether the last run of a daemon, in a log the
// supervisor writes (a "=== ... starting" line per run), logged text.
func lastRunLogged(path, text string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "=== ") {
			found = false
		} else if strings.Contains(line, text) {
			found = true
		}
	}
	return found
}

// InstanceRow is one line of the instance listing used by the tools.
type InstanceRow struct{ ID, Workload, Status, Node string }

// InstanceFormat is the ciao-cli -f template ListInstances parses.
const InstanceFormat = `{{range .}}{{.ID}} {{.Flavor.ID}} {{.Status}} {{.HostID}}{{"\n"}}{{end}}`

// ListInstances lists the CLI user's instances.
func ListInstances(ctx context.Context, cli CLI) ([]InstanceRow, error) {
	out, err := cli.Run(ctx, "instance", "list", "-f", InstanceFormat)
	if err != nil {
		return nil, err
	}
	var rows []InstanceRow
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		r := InstanceRow{ID: f[0], Workload: f[1], Status: f[2]}
		if len(f) > 3 {
			r.Node = f[3]
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// launchDemo starts, as the demo tenant, one instance of each dev
// workload that has no active instance yet, and waits until each runs.
func (c Config) launchDemo(ctx context.Context) (map[string]string, error) {
	cli, err := c.NewCLI("demo")
	if err != nil {
		return nil, err
	}
	cli.Timeout = 4 * time.Minute
	// A workload that has an instance already, in any state, is not
	// launched again: a second run is harmless. Instances a restarted
	// launcher is re-adopting show as active again within a few STATS.
	got := map[string]string{}
	have := map[string]bool{}
	_ = poll(ctx, 30*time.Second, func() (bool, error) {
		rows, err := ListInstances(ctx, cli)
		if err != nil {
			return false, err
		}
		clear(got)
		clear(have)
		for _, r := range rows {
			have[r.Workload] = true
			if r.Status == "active" {
				got[r.Workload] = r.ID
			}
		}
		return len(got) == len(have), nil
	})
	for _, w := range DevWorkloads() {
		if have[w.ID] && got[w.ID] == "" {
			c.logf("devcluster: %s has an instance that is not active; not launching another", w.Description)
		}
	}
	for _, w := range DevWorkloads() {
		if have[w.ID] {
			continue
		}
		// A START that reaches the scheduler before the launcher's first
		// READY fails with no node; delete the failed instance and retry.
		var last error
		attempts := 0
		err := poll(ctx, 3*time.Minute, func() (bool, error) {
			if attempts++; attempts > 5 {
				return false, errors.New("5 attempts failed")
			}
			out, err := cli.Run(ctx, "instance", "add", "-workload", w.ID, "-instances", "1", "-wait", "-timeout", "3m",
				"-f", `{{range .}}{{.ID}} {{.Status}}{{end}}`)
			f := strings.Fields(out)
			if err == nil && len(f) == 2 && f[1] == "active" {
				got[w.ID] = f[0]
				return true, nil
			}
			last = fmt.Errorf("%v %q", err, out)
			if len(f) > 0 {
				_, _ = cli.Run(ctx, "instance", "delete", "-instance", f[0])
			}
			return false, nil
		})
		if err != nil {
			return got, fmt.Errorf("%s: %v (%w)", w.Description, last, err)
		}
		c.logf("devcluster: %s: instance %s active", w.Description, got[w.ID])
	}
	return got, nil
}

// poll calls f until it returns true or an error, or until timeout.
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers signal 0; look at /proc's state.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
