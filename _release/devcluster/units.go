package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// UnitDir is where the dev cluster's units are installed in systemd mode.
var UnitDir = "/etc/systemd/system"

// TargetName is the unit that groups the dev cluster's services.
const TargetName = "ciao-dev.target"

// UnitName is the service name of a dev cluster daemon.
func UnitName(d Daemon) string { return "ciao-dev-" + d.Name + ".service" }

// quoteArg quotes one ExecStart argument the way systemd parses it.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"'\\$%;") {
		return a
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(a) + `"`
}

// RenderUnit is the systemd service of a daemon: restarted a second after
// any exit, never given up on, logging to the same file the supervisor
// would use, ordered after the daemons it needs. A launcher's unit has
// KillMode=process so that stopping or restarting it leaves its instances
// running (the launcher re-adopts them).
func RenderUnit(d Daemon, logFile string) string {
	var b strings.Builder
	after := []string{"network-online.target"}
	var wants []string
	for _, a := range d.After {
		after = append(after, "ciao-dev-"+a+".service")
		wants = append(wants, "ciao-dev-"+a+".service")
	}
	if d.Name == "launcher-compute" || d.Name == "launcher-network" {
		after = append(after, "docker.service")
	}
	fmt.Fprintf(&b, "[Unit]\nDescription=Ciao dev cluster: %s\n", d.Name)
	fmt.Fprintf(&b, "After=%s\n", strings.Join(after, " "))
	if len(wants) > 0 {
		fmt.Fprintf(&b, "Wants=%s\n", strings.Join(wants, " "))
	}
	fmt.Fprintf(&b, "PartOf=%s\nStartLimitIntervalSec=0\n\n", TargetName)
	args := []string{quoteArg(d.Path)}
	for _, a := range d.Args {
		args = append(args, quoteArg(a))
	}
	fmt.Fprintf(&b, "[Service]\nType=simple\nExecStart=%s\n", strings.Join(args, " "))
	b.WriteString("Restart=always\nRestartSec=1\nTimeoutStopSec=15\n")
	if d.KeepChildren {
		b.WriteString("KillMode=process\nTasksMax=infinity\n")
	}
	fmt.Fprintf(&b, "StandardOutput=append:%s\nStandardError=append:%s\n\n", logFile, logFile)
	fmt.Fprintf(&b, "[Install]\nWantedBy=%s\n", TargetName)
	return b.String()
}

// RenderTarget is ciao-dev.target, which wants every daemon.
func RenderTarget(ds []Daemon) string {
	var names []string
	for _, d := range ds {
		names = append(names, UnitName(d))
	}
	return fmt.Sprintf("[Unit]\nDescription=Ciao dev cluster\nWants=%s\nAfter=%s\n\n[Install]\nWantedBy=multi-user.target\n",
		strings.Join(names, " "), strings.Join(names, " "))
}

// installUnits writes the units, reloads systemd and starts the target.
func (c Config) installUnits(ctx context.Context, ds []Daemon) ([]string, error) {
	var files []string
	for _, d := range ds {
		path := filepath.Join(UnitDir, UnitName(d))
		if err := os.WriteFile(path, []byte(RenderUnit(d, c.Path("logs", d.Name+".log"))), 0o644); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	target := filepath.Join(UnitDir, TargetName)
	if err := os.WriteFile(target, []byte(RenderTarget(ds)), 0o644); err != nil {
		return files, err
	}
	files = append(files, target)
	if err := c.run(ctx, "/", "systemctl", "daemon-reload"); err != nil {
		return files, err
	}
	return files, c.run(ctx, "/", "systemctl", "start", TargetName)
}

// removeUnits stops the target and its services and removes the files.
func (c Config) removeUnits(ctx context.Context, files []string) error {
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	err := c.run(ctx, "/", "systemctl", append([]string{"stop"}, names...)...)
	for _, f := range files {
		if rerr := os.Remove(f); rerr != nil && !os.IsNotExist(rerr) && err == nil {
			err = rerr
		}
	}
	if rerr := c.run(ctx, "/", "systemctl", "daemon-reload"); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// ErrNoSystemdAnalyze: systemd-analyze is not installed.
var ErrNoSystemdAnalyze = errors.New("devcluster: systemd-analyze is not installed")

// VerifyUnits runs `systemd-analyze verify` on unit files; any complaint
// is an error. ExecStart binaries must exist (systemd checks them).
func VerifyUnits(ctx context.Context, files ...string) error {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return ErrNoSystemdAnalyze
	}
	out, err := exec.CommandContext(ctx, bin, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	return nil
}

// ParseUnit reads a unit file into section → key → values (a key given
// twice keeps both values, in order). Comments and blank lines are
// skipped; a line outside a section or without "=" is an error.
func ParseUnit(text string) (map[string]map[string][]string, error) {
	u := map[string]map[string][]string{}
	section := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not key=value inside a section", n+1, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u, nil
}
