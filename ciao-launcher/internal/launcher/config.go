package launcher

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
	qemulib "github.com/ciao-project/ciao/qemu"
)

// Config is the launcher's configuration, a value built by DefaultConfig
// and adjusted by flags or tests.
type Config struct {
	// CACert and Cert are the SSNTP CA and the client certificate+key PEM
	// files. The certificate's roles (AGENT, NETAGENT or both) are the
	// launcher's.
	CACert string
	Cert   string
	// Server is the scheduler host; "" lets SSNTP try the CA certificate's
	// names, then localhost. Port 0 means 8888.
	Server string
	Port   int

	// Network false: VMs get user-mode networking, containers none.
	// True: an instance whose START has a networking section gets a VNIC
	// on its tenant subnet's bridge (tunnelled to the tenant's CNCI).
	Network bool
	// NetNS is the network namespace file the node's tenant networking
	// lives in ("" = the launcher's own); a dev cluster or a test runs
	// several "nodes" on one machine this way.
	NetNS string
	// Tunnel is the tenant tunnel kind (VXLAN, or GRE where ip_gre exists).
	Tunnel networking.TunnelKind
	// ComputeIP, if set, is the node's tunnel endpoint; otherwise the
	// cluster configuration's compute_net chooses it.
	ComputeIP net.IP
	// CNCI, with Agent set, makes a network node run CNCIs as network
	// namespaces with a ciao-cnci-agent process (driver kind cnci) rather
	// than as VMs.
	CNCI CNCIConfig
	// Simulation runs every instance on the simulation driver.
	Simulation bool
	// Process allows bare-metal process workloads (user data carrying the
	// #ciao-process marker).
	Process bool

	// StateDir holds one directory per instance.
	StateDir string
	// UUIDDir keeps the launcher's SSNTP UUID across restarts, in a file
	// named after its role (0x4, 0x10, 0x14) as the 2016 launcher did.
	UUIDDir string
	// LockFile keeps a second launcher from running on the node ("" = no
	// lock). Simulation skips it.
	LockFile string
	// MaintenanceFile exists while the node is evacuated.
	MaintenanceFile string
	// CgroupRoot is the cgroup root for process instances: the v2 mount,
	// or where the v1 controllers are mounted on a v1/hybrid host ("" =
	// none).
	CgroupRoot string
	// ProcRoot is where procfs is mounted (node statistics).
	ProcRoot string
	// ImageDir is the VM image cache (layout: the qemu driver's doc).
	ImageDir string
	// Accel is the VM accelerator; auto falls back to TCG when KVM hangs.
	Accel qemulib.Accel

	// StatsInterval is the period of the status + STATS report (6 s).
	StatsInterval time.Duration
	// StatusCoalesce bounds the status frames that successful STARTs send
	// (the spec sends one after each): a START that succeeds within this
	// window of the last status frame has its status sent at the end of
	// the window, with those of the STARTs succeeding meanwhile. A change
	// of status (READY to FULL) is sent at once. 0 = one per START.
	StatusCoalesce time.Duration
	// ResourceInterval is the period of per-instance resource samples.
	ResourceInterval time.Duration
	// PollInterval is how often a running instance is checked for exit
	// when its driver cannot signal it.
	PollInterval time.Duration
	// StopGrace is how long a process instance has to exit after SIGTERM.
	StopGrace time.Duration

	// Water marks in MB (§9.3 of the launcher spec): FULL below the high
	// marks, START refused with full_cn below the low marks.
	MemHighWaterMB, MemLowWaterMB   int
	DiskHighWaterMB, DiskLowWaterMB int
	// MaxInstances bounds the instances of the node (0 = no bound).
	MaxInstances int

	// Drivers, if set, replaces the drivers the flags would choose (tests).
	Drivers driver.Registry
	// DialTimeout bounds the first connection to the scheduler (0 = try
	// until the context ends).
	DialTimeout time.Duration
}

// CNCIConfig is how a network node runs CNCIs as namespaces.
type CNCIConfig struct {
	// Agent is the ciao-cnci-agent binary ("" = CNCIs are VMs).
	Agent string
	// CACert and Cert are the agents' SSNTP CA and CNCIAGENT certificate.
	CACert, Cert string
	// Pool holds the CNCIs' compute addresses, with prefix length Prefix
	// on the compute network; Gateway, if set, is their default route.
	Pool    net.IPNet
	Prefix  int
	Gateway net.IP
}

// DefaultConfig is the configuration of a real node.
func DefaultConfig() Config {
	return Config{
		Network:          true,
		Process:          true,
		StateDir:         "/var/lib/ciao/instances",
		UUIDDir:          "/var/lib/ciao/local/uuid-storage/role/client",
		LockFile:         "/tmp/lock/ciao/client-agent.lock",
		MaintenanceFile:  "/var/lib/ciao/data/launcher/maintenance",
		CgroupRoot:       "/sys/fs/cgroup",
		ProcRoot:         "/proc",
		ImageDir:         "/var/lib/ciao/images",
		StatsInterval:    6 * time.Second,
		ResourceInterval: 30 * time.Second,
		StatusCoalesce:   500 * time.Millisecond,
		PollInterval:     time.Second,
		StopGrace:        10 * time.Second,
		MemHighWaterMB:   1000,
		MemLowWaterMB:    512,
		DiskHighWaterMB:  80000,
		DiskLowWaterMB:   40000,
	}
}

// ErrConfig: an invalid configuration.
var ErrConfig = errors.New("launcher: invalid configuration")

// Validate checks the configuration without touching files.
func (c *Config) Validate() error {
	switch {
	case c.CACert == "" || c.Cert == "":
		return fmt.Errorf("%w: -cacert and -cert are required", ErrConfig)
	case c.StateDir == "":
		return fmt.Errorf("%w: empty state directory", ErrConfig)
	case c.UUIDDir == "":
		return fmt.Errorf("%w: empty UUID directory", ErrConfig)
	case c.StatsInterval <= 0 || c.ResourceInterval <= 0 || c.PollInterval <= 0:
		return fmt.Errorf("%w: intervals must be positive", ErrConfig)
	case c.StatusCoalesce < 0:
		return fmt.Errorf("%w: negative status coalescing window", ErrConfig)
	case c.MemLowWaterMB > c.MemHighWaterMB || c.DiskLowWaterMB > c.DiskHighWaterMB:
		return fmt.Errorf("%w: a low water mark is above its high water mark", ErrConfig)
	case c.CNCI.Agent != "" && (c.CNCI.Cert == "" || c.CNCI.Pool.IP.To4() == nil):
		return fmt.Errorf("%w: namespace CNCIs (-cnci-agent) need -cnci-cert and an IPv4 -cnci-ips block", ErrConfig)
	case c.CNCI.Agent != "" && (c.CNCI.Prefix < 1 || c.CNCI.Prefix > 30):
		return fmt.Errorf("%w: -cnci-prefix %d", ErrConfig, c.CNCI.Prefix)
	}
	return nil
}
