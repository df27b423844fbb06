package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/process"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
	"github.com/ciao-project/ciao/uuid"
)

// rssScheduler is the scheduler side of the RSS figure: an SSNTP server
// that remembers the launcher that connected and the latest STATS.
type rssScheduler struct {
	mu        sync.Mutex
	node      uuid.UUID
	connected chan struct{}
	active    int // instances reported active by the latest STATS
	failures  int // START failures received
	lastErr   string
}

func (s *rssScheduler) ConnectNotify(id uuid.UUID, _ ssntp.Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node == (uuid.UUID{}) {
		s.node = id
		close(s.connected)
	}
}

func (s *rssScheduler) DisconnectNotify(uuid.UUID, ssntp.Role)             {}
func (s *rssScheduler) StatusNotify(uuid.UUID, ssntp.Status, *ssntp.Frame) {}
func (s *rssScheduler) EventNotify(uuid.UUID, ssntp.Event, *ssntp.Frame)   {}

func (s *rssScheduler) CommandNotify(_ uuid.UUID, cmd ssntp.Command, f *ssntp.Frame) {
	if cmd != ssntp.STATS {
		return
	}
	var st payloads.Stat
	if err := yaml.Unmarshal(f.Payload, &st); err != nil {
		return
	}
	n := 0
	for _, i := range st.Instances {
		if i.State == payloads.InstanceActive {
			n++
		}
	}
	s.mu.Lock()
	s.active = n
	s.mu.Unlock()
}

func (s *rssScheduler) ErrorNotify(_ uuid.UUID, e ssntp.Error, f *ssntp.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.lastErr = fmt.Sprintf("%s: %s", e, f.Payload)
}

func (s *rssScheduler) state() (active, failures int, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.failures, s.lastErr
}

// runRSS measures the memory of a real ciao-launcher process running n
// instances of backend ("process": sleep processes; "docker": containers
// of img): it builds the launcher (unless bin is given), serves it as the
// scheduler, sends n STARTs, waits until a STATS reports them all active
// and a few resource samples have been taken, then reads VmRSS and VmHWM
// of the launcher from /proc. Everything is removed afterwards with
// ciao-launcher -hard-reset.
//
// Backend "sim" runs the launcher with -simulation, STATS every second and
// the default resource interval, as controller-bench does. Every backend
// then also gets a CPU figure: the launcher's user+system CPU time over
// cpuWindow, per instance per second of wall time.
func runRSS(ctx context.Context, backend, bin, img string, n int, cpuWindow time.Duration, cpuProfile string) error {
	if backend != "process" && backend != "docker" && backend != "sim" {
		return fmt.Errorf("-rss %q: want process, docker or sim", backend)
	}
	if n < 1 || cpuWindow < 0 {
		return fmt.Errorf("-n %d, -cpu-window %v: want at least one instance and a non-negative window", n, cpuWindow)
	}
	tmp, err := os.MkdirTemp("", "launcher-bench-rss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "ciao-launcher")
		// Built without -race or coverage, as deployed.
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ciao-project/ciao/ciao-launcher").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v: %s", err, out)
		}
	}

	// Fresh credentials: the launcher as AGENT, the bench as scheduler.
	caPEM, anchor, err := certs.CreateAnchor(certs.Template{Hosts: []string{"localhost", "127.0.0.1"}, Roles: ssntp.SCHEDULER | ssntp.SERVER, KeyType: certs.KeyECDSAP256})
	if err != nil {
		return err
	}
	agent, err := certs.CreateCert(anchor, certs.Template{Hosts: []string{"localhost", "127.0.0.1"}, Roles: ssntp.AGENT, KeyType: certs.KeyECDSAP256})
	if err != nil {
		return err
	}
	ca, cert := filepath.Join(tmp, "ca.pem"), filepath.Join(tmp, "agent.pem")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cert, agent, 0o600); err != nil {
		return err
	}
	// Disk limits off: 100 instances must fit whatever the disk; memory
	// limits off too for simulated instances, as in controller-bench.
	conf, err := yaml.Marshal(payloads.Configure{Configure: payloads.ConfigurePayload{
		Launcher: payloads.ConfigureLauncher{MemoryLimit: backend != "sim", DiskLimit: false},
	}})
	if err != nil {
		return err
	}
	sched := &rssScheduler{connected: make(chan struct{})}
	srv, err := ssntp.NewServer(ssntp.Config{CACertPEM: caPEM, CertPEM: anchor, URI: "127.0.0.1", Port: ssntp.AnyPort,
		ClusterConfig: conf, Log: quietLog{}}, sched)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	go func() { _ = srv.Serve() }()
	defer srv.Close()
	port := strings.TrimPrefix(srv.Addr().String()[strings.LastIndexByte(srv.Addr().String(), ':'):], ":")

	stateDir := filepath.Join(tmp, "instances")
	args := []string{"-osprepare=false", "-cacert", ca, "-cert", cert, "-server", "localhost", "-port", port,
		"-state-dir", stateDir, "-uuid-dir", filepath.Join(tmp, "uuid"), "-lock-file", filepath.Join(tmp, "lock"),
		"-maintenance-file", filepath.Join(tmp, "maintenance"), "-network=false",
		"-mem-low-water", "0", "-mem-high-water", "0", "-log_dir", tmp}
	if backend == "sim" {
		args = append(args, "-simulation", "-stats-interval", "1s")
	} else {
		args = append(args, "-stats-interval", "500ms", "-resource-interval", "500ms")
	}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	logf, err := os.Create(filepath.Join(tmp, "launcher.out"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	// Whatever happens, stop the launcher and remove every instance.
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		out, err := exec.Command(bin, "-hard-reset", "-state-dir", stateDir, "-logtostderr").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "launcher-bench: hard reset: %v\n%s", err, out)
		}
	}()
	fail := func(err error) error {
		b, _ := os.ReadFile(logf.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return fmt.Errorf("%w; launcher output ends:\n%s", err, b)
	}

	select {
	case <-sched.connected:
	case <-time.After(30 * time.Second):
		return fail(errors.New("launcher did not connect"))
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	for i := 0; i < n; i++ {
		id := uuid.Generate().String()
		c := payloads.StartCmd{
			InstanceUUID: id,
			FWType:       payloads.FirmwareEFI,
			VMType:       payloads.HypervisorQEMU,
			RequestedResources: []payloads.RequestedResource{
				{Type: payloads.VCPUs, Value: 1, Mandatory: true},
				{Type: payloads.MemMB, Value: 32, Mandatory: true},
			},
		}
		ud := "---\n#cloud-config\n" + process.Marker + "\nruncmd:\n  - [ sleep, \"3600\" ]\n...\n"
		if backend == "docker" {
			c.VMType, c.DockerImage = payloads.HypervisorDocker, img
			ud = "---\n#cloud-config\n...\n"
		}
		payload, err := payloads.ComposeStart(&payloads.Start{Start: c}, ud, payloads.StartMetadata{UUID: id, Hostname: id})
		if err != nil {
			return err
		}
		if err := srv.SendCommand(sched.node, ssntp.START, payload); err != nil {
			return fail(err)
		}
	}
	t0 := time.Now()
	deadline := t0.Add(5 * time.Minute)
	for {
		active, failures, lastErr := sched.state()
		if failures > 0 {
			return fail(fmt.Errorf("%d START failures, last %s", failures, lastErr))
		}
		if active >= n {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("only %d of %d instances active after %v", active, n, time.Since(t0).Round(time.Second)))
		}
		time.Sleep(100 * time.Millisecond) // polling the scheduler's view with a deadline
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	// Let several resource samples and STATS go by so that the figure is
	// the launcher's steady state, not just the START burst.
	time.Sleep(3 * time.Second) // a measurement window, not a wait for state
	rss, hwm, err := procMem(cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("launcher RSS with %d %s instances: %d MiB (peak %d MiB)\n", n, backend, (rss+512)>>10, (hwm+512)>>10)
	if cpuWindow == 0 {
		return nil
	}
	fmt.Printf("launcher CPU for %d %s STARTs (until a STATS reports them active): %v, %.0f µs per START\n",
		n, backend, cpu1-cpu0, float64((cpu1-cpu0).Microseconds())/float64(n))
	c0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	w0 := time.Now()
	time.Sleep(cpuWindow) // the measurement window
	c1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	wall := time.Since(w0)
	used := c1 - c0
	fmt.Printf("launcher CPU with %d %s instances over %v: %v (%.2f%% of a core), %.1f µs CPU per instance per second\n",
		n, backend, wall.Round(time.Second), used, 100*used.Seconds()/wall.Seconds(), 1e6*used.Seconds()/wall.Seconds()/float64(n))
	return nil
}

// procCPU is a process's user+system CPU time, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces), from state (3).
	i := strings.LastIndexByte(string(b), ')')
	fs := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(fs[11], 10, 64) // utime (14)
	st, err2 := strconv.ParseInt(fs[12], 10, 64) // stime (15)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// procMem reads VmRSS and VmHWM, in KiB, from /proc/<pid>/status.
func procMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "VmRSS:":
			rss, err = strconv.ParseInt(fs[1], 10, 64)
		case "VmHWM:":
			hwm, err = strconv.ParseInt(fs[1], 10, 64)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM for pid %d", pid)
	}
	return rss, hwm, sc.Err()
}

// quietLog keeps the SSNTP library's logs out of the figures.
type quietLog struct{}

func (quietLog) Infof(string, ...any)    {}
func (quietLog) Warningf(string, ...any) {}
func (quietLog) Errorf(string, ...any)   {}
