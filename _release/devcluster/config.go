package devcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Defaults of a dev cluster.
const (
	DefaultStateDir      = "/var/lib/ciao-dev"
	DefaultSchedulerPort = 8888
	DefaultAPIPort       = 8774
	DefaultWebUIPort     = 3000
)

var netPrefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// ErrConfig: an invalid configuration.
var ErrConfig = errors.New("devcluster: invalid configuration")

// Config says where the dev cluster lives and how it runs. Build it with
// NewConfig and adjust it; Validate checks it.
type Config struct {
	// StateDir holds everything the cluster makes: binaries, certificates,
	// configuration, database, instance directories, logs, the manifest.
	StateDir string
	// RepoDir is the source tree the binaries are built from and whose
	// scripts/ prepare the host.
	RepoDir string
	// Host is the name clients and launchers use for the controller and
	// the scheduler; it is in every certificate.
	Host string
	// SchedulerPort is the SSNTP port, APIPort the controller's compute API
	// (and built-in identity) port.
	SchedulerPort, APIPort int
	// WebUIPort is ciao-webui's HTTPS port.
	WebUIPort int
	// Network is "auto" (tenant networking when the controller and the
	// launcher support it), "on" or "off".
	Network string
	// NetPrefix names the network namespaces of tenant networking
	// (<prefix>-ul, -cn, -nn); two clusters on one machine need two.
	NetPrefix string
	// Mode is "auto" (systemd when it runs, else the supervisor),
	// "systemd" or "supervisor".
	Mode string
	// Accel is the compute launcher's VM accelerator (its -accel): tcg by
	// default, because nested KVM fails or hangs on the VMs this is
	// developed on; auto or kvm on a machine with working KVM.
	Accel string
	// Deps installs missing OS packages (osprepare), starts Docker, and
	// builds the busybox image and the VM kernel+initramfs.
	Deps bool
	// Launch starts one instance of each dev workload once the cluster is
	// up (skipped for a workload that already has an active instance).
	Launch bool
	// Timeout bounds the whole of Up.
	Timeout time.Duration
	// Logf reports progress (nil: silent).
	Logf func(format string, args ...any)
}

// NewConfig returns the defaults: state in /var/lib/ciao-dev, the source
// tree in the working directory, the standard ports.
func NewConfig() Config {
	wd, _ := os.Getwd()
	return Config{StateDir: DefaultStateDir, RepoDir: wd, Host: "localhost",
		SchedulerPort: DefaultSchedulerPort, APIPort: DefaultAPIPort, WebUIPort: DefaultWebUIPort,
		Network: "auto", NetPrefix: "ciaodev", Mode: "auto", Accel: "tcg", Deps: true, Launch: true, Timeout: 10 * time.Minute}
}

// Validate checks the configuration without touching anything.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "" || !filepath.IsAbs(c.StateDir):
		return fmt.Errorf("%w: state directory %q must be an absolute path", ErrConfig, c.StateDir)
	case filepath.Clean(c.StateDir) == "/" || filepath.Dir(filepath.Clean(c.StateDir)) == "/":
		// Teardown removes the state directory: never let it be / or /var.
		return fmt.Errorf("%w: state directory %q is too close to / (teardown removes it)", ErrConfig, c.StateDir)
	case c.Host == "":
		return fmt.Errorf("%w: empty host", ErrConfig)
	case c.SchedulerPort <= 0 || c.SchedulerPort > 65535:
		return fmt.Errorf("%w: scheduler port %d out of range", ErrConfig, c.SchedulerPort)
	case c.APIPort <= 0 || c.APIPort > 65535:
		return fmt.Errorf("%w: API port %d out of range", ErrConfig, c.APIPort)
	case c.WebUIPort <= 0 || c.WebUIPort > 65535:
		return fmt.Errorf("%w: web UI port %d out of range", ErrConfig, c.WebUIPort)
	case c.APIPort == c.SchedulerPort || c.WebUIPort == c.APIPort || c.WebUIPort == c.SchedulerPort:
		return fmt.Errorf("%w: the scheduler, API and web UI ports must differ (%d, %d, %d)", ErrConfig,
			c.SchedulerPort, c.APIPort, c.WebUIPort)
	case c.Network != "auto" && c.Network != "on" && c.Network != "off":
		return fmt.Errorf("%w: network %q: want auto, on or off", ErrConfig, c.Network)
	case !netPrefixRE.MatchString(c.NetPrefix):
		return fmt.Errorf("%w: network prefix %q: want 1-10 lower-case letters and digits", ErrConfig, c.NetPrefix)
	case c.Mode != "auto" && c.Mode != "systemd" && c.Mode != "supervisor":
		return fmt.Errorf("%w: mode %q: want auto, systemd or supervisor", ErrConfig, c.Mode)
	case c.Accel != "auto" && c.Accel != "kvm" && c.Accel != "tcg":
		return fmt.Errorf("%w: accel %q: want auto, kvm or tcg", ErrConfig, c.Accel)
	case c.Timeout <= 0:
		return fmt.Errorf("%w: timeout must be positive", ErrConfig)
	}
	return nil
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// Path is a path inside the state directory.
func (c Config) Path(parts ...string) string {
	return filepath.Join(append([]string{c.StateDir}, parts...)...)
}

// Bin is the path of a built binary.
func (c Config) Bin(name string) string { return c.Path("bin", name) }

// APIURL is the controller's base URL, also the identity URL (the
// controller serves Keystone v3 under /v3).
func (c Config) APIURL() string {
	return "https://" + c.Host + ":" + strconv.Itoa(c.APIPort)
}

// WebUIURL is the web UI's address.
func (c Config) WebUIURL() string {
	return "https://" + c.Host + ":" + strconv.Itoa(c.WebUIPort)
}

// SystemdRunning reports whether systemd is the init system (the test
// sd_booted(3) makes).
func SystemdRunning() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// UseSystemd resolves Mode.
func (c Config) UseSystemd() bool {
	switch c.Mode {
	case "systemd":
		return true
	case "supervisor":
		return false
	}
	return SystemdRunning()
}
