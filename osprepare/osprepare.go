// Package osprepare installs the host packages a ciao component needs,
// using the distribution's own package manager.
//
// Each component (launcher, controller, scheduler) declares, per
// distribution family, the packages it needs and a key binary for each.
// A requirement counts as present when its key binary is found (so a
// docker installed from docker-ce rather than docker.io satisfies
// "docker") or the package manager reports the package installed; only
// the rest is installed, in one transaction:
//
//	debian (Debian, Ubuntu, ID_LIKE=debian)  apt-get update (once), apt-get install -y
//	fedora (Fedora, ID_LIKE=fedora)          dnf install -y
//	clearlinux (ID=clear-linux-os)           swupd bundle-add
//
// The family is detected from os-release (ID, then ID_LIKE). Unlike the
// 2016 package, errors are returned rather than only logged; the caller
// decides whether a missing dependency is fatal. Commands go through a
// Runner so tests can fake them, and logging goes through Logger.
package osprepare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Errors, compared with errors.Is.
var (
	ErrUnsupportedDistro = errors.New("osprepare: unsupported distribution")
	ErrUnknownComponent  = errors.New("osprepare: unknown component")
	ErrInstall           = errors.New("osprepare: install failed")
)

// Logger is the logging the package needs; glog and test adapters satisfy it.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any)    {}
func (nopLogger) Warningf(string, ...any) {}
func (nopLogger) Errorf(string, ...any)   {}

// Runner runs commands; ExecRunner is the real one.
type Runner interface {
	// Run runs name with args, adding env to the inherited environment,
	// and returns its combined output.
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
	// LookPath finds a binary like exec.LookPath.
	LookPath(file string) (string, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	return cmd.CombinedOutput()
}

// LookPath implements Runner. It also searches the sbin directories, which
// hold ip, iptables and dnsmasq but are often missing from a non-root PATH.
func (ExecRunner) LookPath(file string) (string, error) {
	if p, err := exec.LookPath(file); err == nil {
		return p, nil
	}
	if !strings.Contains(file, "/") {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if p, err := exec.LookPath(dir + "/" + file); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w", file, exec.ErrNotFound)
}

// Config configures an Installer. Zero fields take the defaults noted.
type Config struct {
	Runner Runner // default ExecRunner{}
	Logger Logger // default silent
	// OSReleasePaths are tried in order; default DefaultOSReleasePaths.
	OSReleasePaths []string
	// DryRun reports what would be installed without installing.
	DryRun bool
	// Sudo prefixes the install commands with "sudo -n" (non-interactive,
	// so a missing sudoers entry fails instead of hanging on a prompt).
	// The default, set by NewConfig, is "not running as root".
	Sudo bool
}

// NewConfig returns the defaults for this process.
func NewConfig() Config {
	return Config{Runner: ExecRunner{}, Sudo: os.Geteuid() != 0}
}

// Installer installs component requirements on one detected distribution.
// It is meant for one goroutine at start-up; it remembers only whether it
// has already run apt-get update.
type Installer struct {
	cfg     Config
	distro  Distro
	updated bool // apt-get update already ran
}

// New detects the distribution and returns an Installer for it.
func New(cfg Config) (*Installer, error) {
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.Logger == nil {
		cfg.Logger = nopLogger{}
	}
	rel, err := ReadOSRelease(cfg.OSReleasePaths...)
	if err != nil {
		return nil, err
	}
	d, err := DetectDistro(rel)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Infof("osprepare: detected %s (%s family)", d.Release.PrettyName, d.Family)
	return &Installer{cfg: cfg, distro: d}, nil
}

// Distro is what New detected.
func (in *Installer) Distro() Distro { return in.distro }

// Result says what Install found and did.
type Result struct {
	Present   []string // packages already installed
	Installed []string // packages installed now (or that would be, in dry-run)
}

// Present reports whether r is already satisfied: its key binary is found,
// or the package manager knows the package as installed.
func (in *Installer) Present(ctx context.Context, r Requirement) bool {
	if r.Binary != "" {
		if _, err := in.cfg.Runner.LookPath(r.Binary); err == nil {
			return true
		}
	}
	switch in.distro.Family {
	case FamilyDebian:
		out, err := in.cfg.Runner.Run(ctx, nil, "dpkg-query", "-W", "-f=${Status}", r.Package)
		return err == nil && strings.Contains(string(out), "install ok installed")
	case FamilyFedora:
		_, err := in.cfg.Runner.Run(ctx, nil, "rpm", "-q", "--quiet", r.Package)
		return err == nil
	case FamilyClearLinux:
		// swupd keeps one marker file per installed bundle.
		_, err := in.cfg.Runner.LookPath("/usr/share/clear/bundles/" + r.Package)
		return err == nil
	}
	return false
}

// Install makes sure every package of components is installed.
func (in *Installer) Install(ctx context.Context, components ...Component) (Result, error) {
	var reqs []Requirement
	for _, c := range components {
		rs, err := Requirements(in.distro.Family, c)
		if err != nil {
			return Result{}, err
		}
		reqs = append(reqs, rs...)
	}
	return in.InstallRequirements(ctx, reqs)
}

// InstallRequirements installs the packages of reqs that are not present.
// Packages named twice (several binaries per Clear Linux bundle, or
// several components) are checked and installed once.
func (in *Installer) InstallRequirements(ctx context.Context, reqs []Requirement) (Result, error) {
	log := in.cfg.Logger
	var res Result
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.Package == "" || seen[r.Package] {
			continue
		}
		seen[r.Package] = true
		if in.Present(ctx, r) {
			res.Present = append(res.Present, r.Package)
			continue
		}
		res.Installed = append(res.Installed, r.Package)
	}
	if len(res.Installed) == 0 {
		log.Infof("osprepare: all %d packages present", len(res.Present))
		return res, nil
	}
	if in.cfg.DryRun {
		log.Infof("osprepare: dry run, would install: %s", strings.Join(res.Installed, " "))
		return res, nil
	}
	for _, step := range in.commands(res.Installed) {
		log.Infof("osprepare: running %s", strings.Join(step.args, " "))
		out, err := in.cfg.Runner.Run(ctx, step.env, step.args[0], step.args[1:]...)
		if err != nil {
			log.Errorf("osprepare: %s failed: %v\n%s", step.args[0], err, out)
			return res, fmt.Errorf("%w: %s: %w: %s", ErrInstall, strings.Join(step.args, " "), err, tail(out, 10))
		}
		if step.update {
			in.updated = true
		}
	}
	log.Infof("osprepare: installed %s", strings.Join(res.Installed, " "))
	return res, nil
}

type command struct {
	env    []string
	args   []string
	update bool // this is the apt-get update step
}

// commands returns the steps that install pkgs on the detected family.
func (in *Installer) commands(pkgs []string) []command {
	var steps []command
	switch in.distro.Family {
	case FamilyDebian:
		// Non-interactive so debconf never waits on a terminal that the
		// launcher does not have.
		env := []string{"DEBIAN_FRONTEND=noninteractive"}
		if !in.updated {
			// Fresh images often ship without package lists; one update
			// per Installer is enough.
			steps = append(steps, command{env: env, args: []string{"apt-get", "update"}, update: true})
		}
		steps = append(steps, command{env: env, args: append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, pkgs...)})
	case FamilyFedora:
		steps = append(steps, command{args: append([]string{"dnf", "install", "-y"}, pkgs...)})
	case FamilyClearLinux:
		steps = append(steps, command{args: append([]string{"swupd", "bundle-add"}, pkgs...)})
	}
	if in.cfg.Sudo {
		for i := range steps {
			steps[i].args = append([]string{"sudo", "-n"}, steps[i].args...)
			if len(steps[i].env) > 0 {
				// sudo resets the environment; pass it as assignments.
				steps[i].args = slices.Insert(steps[i].args, 2, steps[i].env...)
				steps[i].env = nil
			}
		}
	}
	return steps
}

// tail keeps the last n lines of a command's output for an error message.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
