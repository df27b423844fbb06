package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Restart back-off of the supervisor: a daemon that dies is started again
// after RestartDelay; one that keeps dying within StableAfter of its start
// waits twice as long each time, up to MaxRestartDelay.
const (
	RestartDelay    = 200 * time.Millisecond
	MaxRestartDelay = 5 * time.Second
	StableAfter     = 5 * time.Second
	// StopTimeout is how long a daemon has to exit after SIGTERM before it
	// is sent SIGKILL.
	StopTimeout = 15 * time.Second
)

// SupervisorConfig is what Supervise runs.
type SupervisorConfig struct {
	Daemons []Daemon
	// ReadyAddr maps a daemon name to the TCP address it listens on; the
	// daemons after it are started once it accepts (or after ReadyTimeout).
	ReadyAddr    map[string]string
	ReadyTimeout time.Duration
	// LogDir receives <name>.log, the daemon's standard output and error.
	LogDir string
	// StatusFile, if set, is rewritten (atomically) with a Status on every
	// start and exit.
	StatusFile string
	Logf       func(format string, args ...any)
}

// Status is what the supervisor publishes about its daemons.
type Status struct {
	SupervisorPID int                     `json:"supervisor_pid"`
	Daemons       map[string]DaemonStatus `json:"daemons"`
}

// DaemonStatus is one daemon's current process and history.
type DaemonStatus struct {
	PID       int       `json:"pid"` // 0 while it is not running
	Starts    int       `json:"starts"`
	StartedAt time.Time `json:"started_at"`
	LastExit  string    `json:"last_exit,omitempty"`
}

// supervisor runs the daemons; mu guards status.
type supervisor struct {
	cfg    SupervisorConfig
	mu     sync.Mutex
	status Status // guarded by mu
}

// Supervise starts every daemon in order and restarts any that exits
// until ctx ends; then it stops them in reverse order (SIGTERM, then
// SIGKILL after StopTimeout) and returns nil. Children are also sent
// SIGTERM by the kernel if the supervisor itself dies (PR_SET_PDEATHSIG).
func Supervise(ctx context.Context, cfg SupervisorConfig) error {
	if len(cfg.Daemons) == 0 {
		return fmt.Errorf("%w: no daemons to supervise", ErrConfig)
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("supervise: log directory: %w", err)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	s := &supervisor{cfg: cfg, status: Status{SupervisorPID: os.Getpid(), Daemons: map[string]DaemonStatus{}}}
	// Each daemon is owned by one goroutine, which runs it, restarts it
	// and, when ctx ends, waits for the stop signal of its turn.
	stops := make([]chan struct{}, len(cfg.Daemons))
	dones := make([]chan struct{}, len(cfg.Daemons))
	for i, d := range cfg.Daemons {
		stops[i], dones[i] = make(chan struct{}), make(chan struct{})
		started := make(chan struct{})
		go func() {
			defer close(dones[i])
			s.own(ctx, d, started, stops[i])
		}()
		select {
		case <-started:
		case <-ctx.Done():
		}
		if addr := cfg.ReadyAddr[d.Name]; addr != "" && ctx.Err() == nil {
			if err := waitTCP(ctx, addr, cfg.ReadyTimeout); err != nil {
				s.logf("supervisor: %s is not accepting on %s yet: %v; starting the next daemons anyway", d.Name, addr, err)
			}
		}
	}
	<-ctx.Done()
	for i := len(cfg.Daemons) - 1; i >= 0; i-- {
		close(stops[i])
		<-dones[i]
	}
	return nil
}

func (s *supervisor) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// own runs d until stop is closed (after ctx ends), restarting it when it
// exits. started is closed after the first start attempt.
func (s *supervisor) own(ctx context.Context, d Daemon, started chan<- struct{}, stop <-chan struct{}) {
	delay := RestartDelay
	first := true
	for {
		cmd, exited, err := s.start(d)
		if first {
			close(started)
			first = false
		}
		t0 := time.Now()
		if err != nil {
			s.logf("supervisor: starting %s: %v", d.Name, err)
			exited = make(chan error, 1)
			exited <- err
		}
		select {
		case err := <-exited:
			why := describeExit(err)
			s.setExit(d.Name, why)
			if ctx.Err() != nil {
				<-stop
				return
			}
			if time.Since(t0) >= StableAfter {
				delay = RestartDelay
			}
			s.logf("supervisor: %s exited (%s) after %v; restarting in %v", d.Name, why, time.Since(t0).Round(time.Millisecond), delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				<-stop
				return
			}
			delay = min(2*delay, MaxRestartDelay)
		case <-ctx.Done():
			<-stop
			s.terminate(d, cmd, exited)
			return
		}
	}
}

// start starts d with its output appended to its log; exited receives
// the result of Wait.
func (s *supervisor) start(d Daemon) (*exec.Cmd, chan error, error) {
	logf, err := os.OpenFile(filepath.Join(s.cfg.LogDir, d.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s supervisor: starting %s %q\n", time.Now().Format(time.RFC3339Nano), d.Path, d.Args)
	cmd := exec.Command(d.Path, d.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group (a signal to the supervisor's group does not reach
	// the daemons); SIGTERM if the supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	exited, err := startLocked(cmd)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	ds := s.status.Daemons[d.Name]
	ds.PID, ds.Starts, ds.StartedAt = cmd.Process.Pid, ds.Starts+1, time.Now()
	s.status.Daemons[d.Name] = ds
	s.writeStatusLocked()
	s.mu.Unlock()
	return cmd, exited, nil
}

// startLocked starts cmd and waits for it on a goroutine locked to its
// OS thread: PR_SET_PDEATHSIG fires when the thread that forked the child
// exits, so that thread must live as long as the child. The goroutine
// returns without unlocking once the child has exited, which ends the
// thread. exited receives the result of Wait.
func startLocked(cmd *exec.Cmd) (chan error, error) {
	errc := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		exited <- cmd.Wait()
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return exited, nil
}

// terminate stops one daemon: SIGTERM, SIGKILL after StopTimeout.
func (s *supervisor) terminate(d Daemon, cmd *exec.Cmd, exited <-chan error) {
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		s.setExit(d.Name, describeExit(err))
	case <-time.After(StopTimeout):
		s.logf("supervisor: %s did not exit %v after SIGTERM; killing it", d.Name, StopTimeout)
		_ = cmd.Process.Kill()
		s.setExit(d.Name, describeExit(<-exited))
	}
	s.logf("supervisor: stopped %s", d.Name)
}

func (s *supervisor) setExit(name, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.status.Daemons[name]
	ds.PID, ds.LastExit = 0, why
	s.status.Daemons[name] = ds
	s.writeStatusLocked()
}

// writeStatusLocked replaces the status file; s.mu must be held.
func (s *supervisor) writeStatusLocked() {
	if s.cfg.StatusFile == "" {
		return
	}
	b, err := json.MarshalIndent(s.status, "", "  ")
	if err == nil {
		err = writeFileAtomic(s.cfg.StatusFile, b, 0o644)
	}
	if err != nil {
		s.logf("supervisor: writing %s: %v", s.cfg.StatusFile, err)
	}
}

// ReadStatus reads a supervisor's status file.
func ReadStatus(path string) (Status, error) {
	var st Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal: " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// waitTCP polls addr until it accepts a connection.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeFileAtomic writes path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
