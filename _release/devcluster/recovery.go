package devcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Recovery is what KillAndRecover measured for one daemon.
type Recovery struct {
	Daemon string
	// Restarted is the time from SIGKILL to a new process of the daemon.
	Restarted time.Duration
	// Served is the time from SIGKILL until ciao-cli lists every instance
	// that was active before, still active.
	Served time.Duration
	// Reconnected (launchers only) is the time until the new launcher is
	// connected to the scheduler again; for the scheduler, until both
	// launchers are.
	Reconnected time.Duration
	// Listening (web UI only) is the time until it accepts connections.
	Listening time.Duration
	Instances int
}

// KillAndRecover sends one daemon SIGKILL and waits, up to timeout, until
// the supervisor (or systemd) has started it again and the cluster serves
// cli with every previously active instance still active.
func KillAndRecover(ctx context.Context, cfg Config, cli CLI, name string, timeout time.Duration) (Recovery, error) {
	r := Recovery{Daemon: name}
	before, err := ListInstances(ctx, cli)
	if err != nil {
		return r, err
	}
	active := map[string]bool{}
	for _, in := range before {
		if in.Status == "active" {
			active[in.ID] = true
		}
	}
	r.Instances = len(active)
	pid, err := cfg.DaemonPID(ctx, name)
	if err != nil || pid == 0 {
		return r, fmt.Errorf("%s is not running (pid %d): %v", name, pid, err)
	}
	t0 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return r, err
	}
	err = poll(ctx, timeout, func() (bool, error) {
		p, _ := cfg.DaemonPID(ctx, name)
		return p != 0 && p != pid && processAlive(p), nil
	})
	if err != nil {
		return r, fmt.Errorf("%s was not restarted: %w", name, err)
	}
	r.Restarted = time.Since(t0)
	var last string
	err = poll(ctx, timeout, func() (bool, error) {
		rows, err := ListInstances(ctx, cli)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		n := 0
		for _, in := range rows {
			if active[in.ID] && in.Status == "active" {
				n++
			}
		}
		last = fmt.Sprintf("%d of %d instances active", n, len(active))
		return n == len(active), nil
	})
	if err != nil {
		return r, fmt.Errorf("after killing %s: %s: %w", name, last, err)
	}
	r.Served = time.Since(t0)
	if name == "webui" {
		// The port the cluster was brought up with, whatever cfg says.
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.WebUIPort))
		if m, err := cfg.LoadManifest(); err == nil && m.ReadyAddr["webui"] != "" {
			addr = m.ReadyAddr["webui"]
		}
		if err := waitTCP(ctx, addr, timeout); err != nil {
			return r, fmt.Errorf("after killing %s: %s does not accept: %w", name, addr, err)
		}
		r.Listening = time.Since(t0)
	}
	var logs []string
	switch name {
	case "scheduler":
		logs = []string{"launcher-" + ComputeNode, "launcher-" + NetworkNode}
	case "launcher-" + ComputeNode, "launcher-" + NetworkNode:
		logs = []string{name}
	}
	if len(logs) > 0 {
		err = poll(ctx, timeout, func() (bool, error) {
			for _, l := range logs {
				if !connectedSince(cfg.Path("logs", l+".log"), t0) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return r, fmt.Errorf("after killing %s: launchers did not reconnect: %w", name, err)
		}
		r.Reconnected = time.Since(t0)
	}
	return r, nil
}

// connectedSince reports whether a launcher log has a "connected to
// scheduler" line stamped at or after t (glog's Lmmdd hh:mm:ss.uuuuuu
// header, local time).
func connectedSince(path string, t time.Time) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.Contains(l, "connected to scheduler") || len(l) < 21 {
			continue
		}
		ts, err := time.ParseInLocation("0102 15:04:05.000000", l[1:21], time.Local)
		if err != nil {
			continue
		}
		ts = ts.AddDate(t.Year(), 0, 0)
		return !ts.Before(t.Truncate(time.Microsecond))
	}
	return false
}

// RestoreNode takes one of the dev cluster's launchers out of maintenance
// after an evacuation: it removes the launcher's maintenance file and
// restarts it (SIGTERM; the supervisor or systemd starts it again), which
// is what the launcher's -restore does. It stands in for `ciao-cli node
// restore`, which does not exist yet.
func (c Config) RestoreNode(ctx context.Context, kind string) error {
	if err := os.Remove(filepath.Join(c.LauncherDir(kind), "maintenance")); err != nil && !os.IsNotExist(err) {
		return err
	}
	name := "launcher-" + kind
	pid, err := c.DaemonPID(ctx, name)
	if err != nil || pid == 0 {
		return fmt.Errorf("%s is not running (pid %d): %v", name, pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	var newPID int
	if err := poll(ctx, time.Minute, func() (bool, error) {
		newPID, _ = c.DaemonPID(ctx, name)
		return newPID != 0 && newPID != pid && processAlive(newPID), nil
	}); err != nil {
		return fmt.Errorf("%s (pid %d) was not restarted: %w", name, pid, err)
	}
	// The file is removed before the restart, so the new launcher starts
	// out of maintenance; check nothing wrote it again meanwhile.
	if exists(filepath.Join(c.LauncherDir(kind), "maintenance")) {
		return fmt.Errorf("%s restarted as %d but its maintenance file is back", name, newPID)
	}
	return nil
}
