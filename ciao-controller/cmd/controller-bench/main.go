// Command controller-bench measures the controller figures of the scale
// issue against real binaries: it builds (or takes) ciao-scheduler,
// ciao-controller and ciao-launcher, starts them in a temporary directory
// with fresh certificates, N simulated launchers, and prints one line per
// figure: create latency under concurrent clients, listing every instance,
// and launching many instances until all are ACTIVE. After the launch and
// the create phases a "cpu:" line says how the machine's CPU was shared
// (controller, scheduler, the launcher processes, the bench's own clients).
//
// The launchers are processes on the servers' machine, which real
// launchers (on compute nodes) are not. By default (-placement elsewhere)
// they stand for launchers on other machines: -launcher-cpu-shares 2 puts
// them in one low-weight cpu cgroup, so they get the CPU the servers leave
// idle, and -launcher-state-dir /dev/shm keeps their instance directories
// (and fsyncs) off the disk the controller's database is on. -placement
// shared makes them compete for both; -agents light replaces them with
// in-process stand-ins. The "setup: launchers are" line says which.
//
// Each START makes a directory and a file in the launcher's state. On an
// ext4 without a journal (the development machine's root file system) the
// inode allocator skips, one by one, every inode freed in the last minute
// or more in the block group, so file creations under a /tmp that others
// (go test, a previous bench run's clean-up) churn cost 0.5-1 ms of CPU
// each; -launcher-state-dir /dev/shm shows the figures without that cost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

const (
	tenantID = "7b1c2d3e-4f50-4a61-8b72-9c83d4e5f601"
	token    = "bench-token"
)

type options struct {
	binDir               string
	launchers, instances int
	clients, creates     int
	batch                int
	statsInterval        time.Duration
	timeout              time.Duration
	pprof                bool
	label                string
	launcherNice         int
	agents               string
	launcherProfiles     string
	launcherGOMAXPROCS   int
	launcherGOGC         string
	launcherCPUShares    int
	launcherStateDir     string
	placement            string
	// sharesBestEffort: -launcher-cpu-shares came from -placement
	// elsewhere, not from the command line, so a host without the cgroup
	// v1 cpu controller runs the launchers unisolated instead of failing.
	sharesBestEffort bool
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "", "directory holding ciao-scheduler, ciao-controller and ciao-launcher (default: go build them)")
	flag.IntVar(&o.launchers, "launchers", 100, "simulated launchers")
	flag.IntVar(&o.instances, "instances", 10000, "instances launched (and then listed)")
	flag.IntVar(&o.clients, "clients", 100, "concurrent API clients")
	flag.IntVar(&o.creates, "creates", 1000, "single-instance create requests timed for latency")
	flag.IntVar(&o.batch, "batch", 100, "max_count of each create request of the launch figure")
	flag.DurationVar(&o.statsInterval, "stats-interval", time.Second, "launchers' STATS period")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.IntVar(&o.launcherNice, "launcher-nice", 0, "run the launchers at this nice value (1-19) so they stand for launchers on other machines and do not take the controller's CPU; 0 = same priority")
	flag.StringVar(&o.label, "label", "", "server name of the creates, which turns on START path tracing (and a TraceReport per instance)")
	flag.StringVar(&o.agents, "agents", "process", "what stands for the launchers: process (ciao-launcher -simulation processes) or light (in-process SSNTP agents that take every START and report it active: measures the controller, not the launchers)")
	flag.StringVar(&o.launcherProfiles, "launcher-cpuprofile", "", "directory where every launcher process writes its CPU profile (launcherNNN.pprof; merge them with go tool pprof -top bin/ciao-launcher DIR/*.pprof)")
	flag.IntVar(&o.launcherGOMAXPROCS, "launcher-gomaxprocs", 1, "GOMAXPROCS of every launcher process (a simulated launcher is tiny; 0 = the Go default, one per core)")
	flag.StringVar(&o.launcherGOGC, "launcher-gogc", "", "GOGC of every launcher process (\"\" = the Go default, 100)")
	flag.IntVar(&o.launcherCPUShares, "launcher-cpu-shares", 0, "put all launcher processes in one cgroup v1 cpu group with this cpu.shares (2..262144; every other task weighs 1024), standing for launchers on other machines: they get the CPU the controller and scheduler leave idle; needs root and "+cgroupV1CPU+"; 0 = off, all share the CPU")
	flag.StringVar(&o.launcherStateDir, "launcher-state-dir", "", "directory under which the launchers keep their instance directories (a fresh subdirectory, removed at the end; default: the bench's temporary directory). /dev/shm (tmpfs) keeps their file system work off the disk the controller's database is on")
	flag.StringVar(&o.placement, "placement", "elsewhere", "where the launcher processes stand: elsewhere (as on their own compute nodes: -launcher-cpu-shares 2 and -launcher-state-dir /dev/shm unless given, so that they neither take the servers' CPU nor write to the disk the controller's database is on) or shared (defaults 0 and the bench's temporary directory: everything competes for this machine's cores and disk)")
	flag.BoolVar(&o.pprof, "pprof", false, "serve the controller's metrics and profiler on a free port (printed at setup)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyPlacement(&o, set); err != nil {
		fmt.Fprintln(os.Stderr, "controller-bench:", err)
		os.Exit(2)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "controller-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "controller-bench-")
	if err != nil {
		return err
	}
	var (
		procs     []*proc
		group     *cpuGroup
		stateDirs []string // outside dir
	)
	defer func() {
		// Logs of the children that died on their own explain a failure.
		if err != nil {
			for _, p := range procs {
				if p.exited() {
					fmt.Fprintf(os.Stderr, "--- %s exited; log tail:\n%s\n", p.name, tail(p.log, 20))
				}
			}
		}
		// Reverse order: launchers, controller, scheduler.
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		if group != nil {
			if gerr := group.remove(); gerr != nil && err == nil {
				err = gerr
			}
		}
		for _, d := range stateDirs {
			if rerr := os.RemoveAll(d); rerr != nil && err == nil {
				err = rerr
			}
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()

	bins, err := binaries(ctx, o.binDir, dir)
	if err != nil {
		return err
	}
	files, err := writeFiles(dir)
	if err != nil {
		return err
	}
	schedPort, err := freePort()
	if err != nil {
		return err
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	start := func(name, bin string, env []string, args ...string) (*proc, error) {
		p, err := startProc(dir, name, bin, env, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	sp := strconv.Itoa(schedPort)
	if _, err := start("scheduler", bins["ciao-scheduler"], nil, "-cert", files.sched, "-cacert", files.ca,
		"-listen", "127.0.0.1:"+sp, "-configuration-uri", "file://"+files.conf, "-logtostderr"); err != nil {
		return err
	}
	if err := waitListen(ctx, "127.0.0.1:"+sp); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	ctlArgs := []string{"-cacert", files.ca, "-cert", files.ctl,
		"-server", "127.0.0.1", "-port", sp, "-httpscert", files.httpsCert, "-httpskey", files.httpsKey,
		"-compute-host", "127.0.0.1", "-compute-port", strconv.Itoa(apiPort),
		"-database", filepath.Join(dir, "controller.db"), "-tokens", files.tokens, "-logtostderr"}
	mp, err := freePort()
	if err != nil {
		return err
	}
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(mp) + "/metrics"
	ctlArgs = append(ctlArgs, "-metrics-addr", "127.0.0.1:"+strconv.Itoa(mp))
	if o.pprof {
		ctlArgs = append(ctlArgs, "-pprof")
		fmt.Printf("controller metrics and profiler: %s, /debug/pprof/\n", metricsURL)
	}
	if _, err := start("controller", bins["ciao-controller"], nil, ctlArgs...); err != nil {
		return err
	}
	if err := waitListen(ctx, "127.0.0.1:"+strconv.Itoa(apiPort)); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	var ls []*proc
	var env []string
	if o.launcherGOMAXPROCS > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(o.launcherGOMAXPROCS))
	}
	if o.launcherGOGC != "" {
		env = append(env, "GOGC="+o.launcherGOGC)
	}
	if o.launcherCPUShares > 0 && o.agents == "process" {
		if group, err = newCPUGroup(cgroupV1CPU, o.launcherCPUShares); err != nil {
			if !o.sharesBestEffort {
				return err
			}
			fmt.Printf("setup: launchers cannot be isolated (%v): they share the CPU\n", err)
			o.launcherCPUShares = 0
		}
	}
	stateRoot := dir
	if o.launcherStateDir != "" && o.agents == "process" {
		if stateRoot, err = os.MkdirTemp(o.launcherStateDir, "controller-bench-launchers-"); err != nil {
			return fmt.Errorf("-launcher-state-dir: %w", err)
		}
		stateDirs = append(stateDirs, stateRoot) // removed once the launchers stopped
	}
	if o.agents == "light" {
		la, err := startLightAgents(ctx, o.launchers, files.ca, files.agent, schedPort, o.statsInterval)
		if err != nil {
			return err
		}
		defer la.close()
	}
	for i := 0; i < o.launchers && o.agents == "process"; i++ {
		ld := filepath.Join(stateRoot, fmt.Sprintf("launcher%03d", i))
		bin, pre := bins["ciao-launcher"], []string(nil)
		if o.launcherNice > 0 {
			bin, pre = "nice", []string{"-n", strconv.Itoa(o.launcherNice), bins["ciao-launcher"]}
		}
		if o.launcherProfiles != "" {
			pre = append(pre, "-cpuprofile", filepath.Join(o.launcherProfiles, fmt.Sprintf("launcher%03d.pprof", i)))
		}
		p, err := start(fmt.Sprintf("launcher%03d", i), bin, env, append(pre, "-simulation", "-osprepare=false",
			"-cacert", files.ca, "-cert", files.agent, "-server", "127.0.0.1", "-port", sp,
			"-state-dir", filepath.Join(ld, "instances"), "-uuid-dir", filepath.Join(ld, "uuid"),
			"-lock-file", filepath.Join(ld, "lock"), "-maintenance-file", filepath.Join(ld, "maintenance"),
			"-image-dir", filepath.Join(ld, "images"), "-cgroup-root", "", "-network=false",
			"-stats-interval", o.statsInterval.String(), "-logtostderr")...)
		if err != nil {
			return err
		}
		ls = append(ls, p)
		if group != nil {
			if err := group.add(p.cmd.Process.Pid); err != nil {
				return err
			}
		}
	}
	if err := waitLogs(ctx, ls, "launcher: connected to scheduler"); err != nil {
		return err
	}
	// READY follows the connection; give the scheduler one STATS period.
	if err := sleep(ctx, o.statsInterval+200*time.Millisecond); err != nil {
		return err
	}
	fmt.Printf("setup: %d launchers connected (scheduler :%d, API :%d)\n", o.launchers, schedPort, apiPort)
	fmt.Printf("setup: launchers are %s\n", describeLaunchers(o))

	b := newBench("https://127.0.0.1:"+strconv.Itoa(apiPort)+"/v2.1/"+tenantID, o.clients)
	b.metricsURL, b.label = metricsURL, o.label
	acct := &cpuAccount{ctl: procs[1], sched: procs[0], launchers: ls}
	snap := acct.take()
	if err := b.launch(ctx, o.instances, o.batch); err != nil {
		return err
	}
	acct.print("launch", snap)
	if err := b.list(ctx, o.instances); err != nil {
		return err
	}
	snap = acct.take()
	if err := b.createLatency(ctx, o.creates); err != nil {
		return err
	}
	acct.print("create", snap)
	return nil
}

// validate checks the options once -placement is applied.
func (o options) validate() error {
	switch {
	case o.agents != "process" && o.agents != "light":
		return errors.New("-agents must be process or light")
	case o.launcherNice < 0 || o.launcherNice > 19:
		return errors.New("-launcher-nice must be 0..19")
	case o.launcherCPUShares != 0 && (o.launcherCPUShares < 2 || o.launcherCPUShares > 262144):
		return errors.New("-launcher-cpu-shares must be 0 (off) or 2..262144")
	case o.launcherGOMAXPROCS < 0:
		return errors.New("-launcher-gomaxprocs must be >= 0")
	case o.launchers < 1 || o.instances < 1 || o.clients < 1 || o.creates < 1 || o.batch < 1:
		return errors.New("counts must be positive")
	}
	if g := o.launcherGOGC; g != "" && g != "off" {
		if n, err := strconv.Atoi(g); err != nil || n < 0 {
			return errors.New("-launcher-gogc must be a percentage >= 0 or off")
		}
	}
	return nil
}

// applyPlacement turns -placement into the defaults of the launcher
// flags the command line left unset (set holds the flags it gave).
func applyPlacement(o *options, set map[string]bool) error {
	switch o.placement {
	case "shared":
		return nil
	case "elsewhere":
	default:
		return fmt.Errorf("-placement %q: want elsewhere or shared", o.placement)
	}
	if !set["launcher-cpu-shares"] {
		o.launcherCPUShares, o.sharesBestEffort = 2, true
	}
	if fi, err := os.Stat("/dev/shm"); !set["launcher-state-dir"] && err == nil && fi.IsDir() {
		o.launcherStateDir = "/dev/shm"
	}
	return nil
}

// describeLaunchers says what stands for the launchers, for the output.
func describeLaunchers(o options) string {
	if o.agents == "light" {
		return "light: in-process SSNTP agents, no launcher processes (measures the controller and scheduler only)"
	}
	s := fmt.Sprintf("%d ciao-launcher -simulation processes on this machine's %d cores", o.launchers, runtime.NumCPU())
	if o.launcherGOMAXPROCS > 0 {
		s += fmt.Sprintf(", GOMAXPROCS=%d", o.launcherGOMAXPROCS)
	}
	if o.launcherGOGC != "" {
		s += ", GOGC=" + o.launcherGOGC
	}
	if o.launcherNice > 0 {
		s += fmt.Sprintf(", nice %d", o.launcherNice)
	}
	if o.launcherStateDir != "" {
		s += ", instance state under " + o.launcherStateDir
	}
	if o.launcherCPUShares > 0 {
		return s + fmt.Sprintf(", ISOLATED in one cpu cgroup with cpu.shares %d (vs 1024 per other task): stands for launchers on other machines", o.launcherCPUShares)
	}
	return s + ", sharing the CPU with the controller and scheduler (no isolation)"
}

// cpuAccount reads the CPU time of the bench's processes.
type cpuAccount struct {
	ctl, sched *proc
	launchers  []*proc
}

type cpuSnap struct {
	at                          time.Time
	ctl, sched, launchers, self time.Duration
}

func (a *cpuAccount) take() cpuSnap {
	s := cpuSnap{at: time.Now(), ctl: a.ctl.cpuTime(), sched: a.sched.cpuTime(), self: procCPU(os.Getpid())}
	for _, p := range a.launchers {
		s.launchers += p.cpuTime()
	}
	return s
}

// print reports the CPU each party used since snap, against what the
// machine's cores offered over the same wall time.
func (a *cpuAccount) print(phase string, snap cpuSnap) {
	now := a.take()
	wall := now.at.Sub(snap.at)
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	launchers := "launchers in-process (in the bench's figure)"
	if len(a.launchers) > 0 {
		launchers = fmt.Sprintf("%d launchers %s", len(a.launchers), sec(now.launchers-snap.launchers))
	}
	fmt.Printf("cpu: %s phase, %v wall (%s of CPU on %d cores): controller %s, scheduler %s, %s, bench clients %s\n",
		phase, wall.Round(time.Millisecond), sec(wall*time.Duration(runtime.NumCPU())), runtime.NumCPU(),
		sec(now.ctl-snap.ctl), sec(now.sched-snap.sched), launchers, sec(now.self-snap.self))
}

type fileSet struct {
	ca, sched, ctl, agent, httpsCert, httpsKey, conf, tokens string
}

// writeFiles mints an anchor (the scheduler's certificate), a controller
// and an agent certificate, an HTTPS pair for the API, the cluster
// configuration and the static tokens.
func writeFiles(dir string) (fileSet, error) {
	f := fileSet{ca: filepath.Join(dir, "ca.pem"), sched: filepath.Join(dir, "scheduler.pem"),
		ctl: filepath.Join(dir, "controller.pem"), agent: filepath.Join(dir, "agent.pem"),
		httpsCert: filepath.Join(dir, "https.pem"), httpsKey: filepath.Join(dir, "https.pem"),
		conf: filepath.Join(dir, "configuration.yaml"), tokens: filepath.Join(dir, "tokens")}
	hosts := []string{"localhost", "127.0.0.1"}
	ca, anchorPEM, err := certs.CreateAnchor(certs.Template{Hosts: hosts, Roles: ssntp.SCHEDULER | ssntp.SERVER})
	if err != nil {
		return f, err
	}
	anchor, err := certs.ParseAnchor(anchorPEM)
	if err != nil {
		return f, err
	}
	ctl, err := anchor.CreateCert(certs.Template{Hosts: hosts, Roles: ssntp.Controller})
	if err != nil {
		return f, err
	}
	agent, err := anchor.CreateCert(certs.Template{Hosts: hosts, Roles: ssntp.AGENT})
	if err != nil {
		return f, err
	}
	// The API pair: a leaf with no SSNTP role; the client skips
	// verification anyway. Certificate and key share one PEM file.
	https, err := anchor.CreateCert(certs.Template{Hosts: hosts})
	if err != nil {
		return f, err
	}
	var c payloads.Configure
	c.InitDefaults()
	p := &c.Configure
	p.Scheduler.ConfigStorageURI = "file:///etc/ciao/configuration.yaml"
	p.Storage.CephID = "ciao"
	p.Controller.HTTPSCACert = "/etc/pki/ciao/ciao-controller-cacert.pem"
	p.Controller.HTTPSKey = "/etc/pki/ciao/ciao-controller-key.pem"
	p.Controller.IdentityUser = "controller"
	p.Controller.IdentityPassword = "ciao"
	p.Launcher.DiskLimit, p.Launcher.MemoryLimit = false, false
	p.Launcher.ComputeNetwork = []string{"192.168.1.0/24"}
	p.Launcher.ManagementNetwork = []string{"192.168.1.0/24"}
	p.IdentityService.URL = "https://localhost:35357"
	p.ImageService.URL = "https://localhost:9292"
	conf, err := yaml.Marshal(&c)
	if err != nil {
		return f, err
	}
	tokens := fmt.Sprintf("%s %s bench admin,member\n", token, tenantID)
	for path, data := range map[string][]byte{f.ca: ca, f.sched: anchorPEM, f.ctl: ctl, f.agent: agent,
		f.httpsCert: https, f.conf: conf, f.tokens: []byte(tokens)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// binaries returns the paths of the three commands, building them into
// dir unless binDir is given.
func binaries(ctx context.Context, binDir, dir string) (map[string]string, error) {
	out := map[string]string{}
	root, err := moduleRoot(ctx)
	if binDir == "" && err != nil {
		return nil, err
	}
	for _, name := range []string{"ciao-scheduler", "ciao-controller", "ciao-launcher"} {
		if binDir != "" {
			out[name] = filepath.Join(binDir, name)
			continue
		}
		out[name] = filepath.Join(dir, "bin", name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out[name], "./"+name)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %v\n%s", name, err, b)
		}
	}
	return out, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/ciao-project/ciao").Output()
	if err != nil {
		return "", fmt.Errorf("finding the ciao module (run inside it or give -bin-dir): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitListen(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var errExited = errors.New("process exited")
