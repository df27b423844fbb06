// Command ciao-launcher is the Ciao agent of a compute node (SSNTP role
// AGENT) and/or network node (NETAGENT): it runs the instances the scheduler
// sends it and reports the node. See internal/launcher for how it works.
//
// Stopping it (SIGTERM, SIGINT, SIGHUP) leaves its instances running; the
// next launcher re-adopts them. -hard-reset deletes every instance and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/launcher"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/osprepare"
	"github.com/ciao-project/ciao/qemu"
)

const defaultLogDir = "/var/lib/ciao/logs/launcher"

// options are the command line beyond the launcher configuration.
type options struct {
	hardReset bool
	restore   bool
	osprepare bool
	// cpuProfile, if set, is where a CPU profile of the run is written
	// (for launcher-bench -cpu figures; see go tool pprof).
	cpuProfile string
}

func parseFlags(fs *flag.FlagSet, args []string) (launcher.Config, options, error) {
	cfg := launcher.DefaultConfig()
	var o options
	fs.StringVar(&cfg.CACert, "cacert", "", "CA certificate (PEM)")
	fs.StringVar(&cfg.Cert, "cert", "", "client certificate and key (PEM); its roles must be AGENT and/or NETAGENT")
	fs.StringVar(&cfg.Server, "server", "", "scheduler host (default: the CA certificate's names, then localhost)")
	fs.IntVar(&cfg.Port, "port", 0, "scheduler SSNTP port (default 8888)")
	fs.BoolVar(&cfg.Network, "network", cfg.Network, "use ciao networking; false gives VMs user-mode networking and containers none")
	fs.StringVar(&cfg.NetNS, "net-namespace", "", "network namespace file holding the node's tenant networking (default: the launcher's own)")
	fs.Func("tunnel", "tenant tunnels: vxlan (default) or gre", func(s string) (err error) {
		cfg.Tunnel, err = networking.ParseTunnelKind(s)
		return err
	})
	fs.Func("compute-ip", "tunnel endpoint address (default: chosen by the cluster's compute_net)", func(s string) error {
		if cfg.ComputeIP = net.ParseIP(s).To4(); cfg.ComputeIP == nil {
			return fmt.Errorf("not an IPv4 address: %q", s)
		}
		return nil
	})
	fs.StringVar(&cfg.CNCI.Agent, "cnci-agent", "", "network node: run CNCIs as network namespaces with this ciao-cnci-agent binary (default: CNCIs are VMs)")
	fs.StringVar(&cfg.CNCI.CACert, "cnci-cacert", "", "CA certificate for the CNCI agents (default: -cacert)")
	fs.StringVar(&cfg.CNCI.Cert, "cnci-cert", "", "CNCIAGENT certificate and key for the CNCI agents")
	fs.Func("cnci-ips", "CIDR block the namespace CNCIs take their compute addresses from", func(s string) error {
		_, n, err := net.ParseCIDR(s)
		if err == nil {
			cfg.CNCI.Pool = *n
		}
		return err
	})
	fs.IntVar(&cfg.CNCI.Prefix, "cnci-prefix", 24, "prefix length of the CNCIs' addresses on the compute network")
	fs.Func("cnci-gateway", "default route of the namespace CNCIs", func(s string) error {
		if cfg.CNCI.Gateway = net.ParseIP(s).To4(); cfg.CNCI.Gateway == nil {
			return fmt.Errorf("not an IPv4 address: %q", s)
		}
		return nil
	})
	fs.BoolVar(&o.hardReset, "hard-reset", false, "stop and delete every instance, then exit")
	fs.BoolVar(&cfg.Simulation, "simulation", false, "run every instance on the simulation backend (scale tests)")
	fs.BoolVar(&cfg.Process, "process", cfg.Process, "allow bare-metal process workloads (user data with #ciao-process)")
	fs.BoolVar(&o.restore, "restore", false, "take an evacuated node out of maintenance before starting")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (profiling)")
	fs.BoolVar(&o.osprepare, "osprepare", true, "install the node's missing OS packages (qemu, docker, ...) at start")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory holding one directory per instance")
	fs.StringVar(&cfg.UUIDDir, "uuid-dir", cfg.UUIDDir, "directory keeping the launcher's SSNTP UUID")
	fs.StringVar(&cfg.LockFile, "lock-file", cfg.LockFile, "lock file that keeps a second launcher off the node (empty: none)")
	fs.StringVar(&cfg.MaintenanceFile, "maintenance-file", cfg.MaintenanceFile, "file marking an evacuated node")
	fs.StringVar(&cfg.CgroupRoot, "cgroup-root", cfg.CgroupRoot, "cgroup root for process instances: the v2 mount, or the directory holding the v1 controller mounts (empty: no cgroups)")
	fs.StringVar(&cfg.ImageDir, "image-dir", cfg.ImageDir, "VM image cache: <dir>/<image_uuid> is a disk image or a directory with disk.qcow2 and/or kernel, initrd, cmdline")
	fs.Func("accel", "VM accelerator: auto (KVM, falling back to TCG when guests hang), kvm or tcg", func(s string) (err error) {
		cfg.Accel, err = qemu.ParseAccel(s)
		return err
	})
	fs.DurationVar(&cfg.StatsInterval, "stats-interval", cfg.StatsInterval, "period of the status and STATS reports")
	fs.DurationVar(&cfg.StatusCoalesce, "status-coalesce", cfg.StatusCoalesce, "after a successful START, send the node status at most once per this window (a READY/FULL change at once; 0 = after every START)")
	fs.DurationVar(&cfg.ResourceInterval, "resource-interval", cfg.ResourceInterval, "period of per-instance resource samples")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "how often running instances are checked for exit")
	fs.DurationVar(&cfg.StopGrace, "stop-grace", cfg.StopGrace, "time a process instance has to exit after SIGTERM")
	fs.IntVar(&cfg.MemLowWaterMB, "mem-low-water", cfg.MemLowWaterMB, "MB of memory that must stay free after a START")
	fs.IntVar(&cfg.DiskLowWaterMB, "disk-low-water", cfg.DiskLowWaterMB, "MB of disk that must stay free after a START")
	fs.IntVar(&cfg.MemHighWaterMB, "mem-high-water", cfg.MemHighWaterMB, "MB of free memory under which the node reports FULL")
	fs.IntVar(&cfg.DiskHighWaterMB, "disk-high-water", cfg.DiskHighWaterMB, "MB of free disk under which the node reports FULL")
	var cephID string
	fs.StringVar(&cephID, "ceph_id", "", "ceph client id (volumes are not supported yet)")
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.CNCI.CACert == "" {
		cfg.CNCI.CACert = cfg.CACert
	}
	if o.hardReset {
		return cfg, o, nil // needs no certificates
	}
	return cfg, o, cfg.Validate()
}

func main() {
	cfg, o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-launcher:", err)
		os.Exit(2)
	}
	setupLogDir()
	defer glog.Flush()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, cfg, o); err != nil {
		glog.Errorf("ciao-launcher: %v", err)
		glog.Flush()
		fmt.Fprintln(os.Stderr, "ciao-launcher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg launcher.Config, o options) error {
	if o.hardReset {
		glog.Infof("ciao-launcher: hard reset of %s", cfg.StateDir)
		return launcher.HardReset(ctx, cfg)
	}
	if o.restore {
		if err := launcher.Restore(cfg); err != nil {
			return err
		}
	}
	if o.osprepare {
		prepareOS(ctx)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	err := launcher.Run(ctx, cfg)
	glog.Infof("ciao-launcher: exiting after %v (instances keep running)", time.Since(start).Round(time.Second))
	return err
}

// prepareOS installs what the launcher's backends need, as the 2016
// launcher did at every start. A failure is logged, not fatal: the
// backends that lack their tools then answer STARTs with launch_failure.
func prepareOS(ctx context.Context) {
	cfg := osprepare.NewConfig()
	cfg.Logger = glogLogger{}
	inst, err := osprepare.New(cfg)
	if err != nil {
		glog.Warningf("ciao-launcher: osprepare: %v", err)
		return
	}
	res, err := inst.Install(ctx, osprepare.Launcher)
	if err != nil {
		glog.Warningf("ciao-launcher: osprepare: %v", err)
		return
	}
	glog.Infof("ciao-launcher: OS packages present %v, installed %v", res.Present, res.Installed)
}

type glogLogger struct{}

func (glogLogger) Infof(format string, args ...any)    { glog.V(1).Infof(format, args...) }
func (glogLogger) Warningf(format string, args ...any) { glog.Warningf(format, args...) }
func (glogLogger) Errorf(format string, args ...any)   { glog.Errorf(format, args...) }

// setupLogDir gives glog the 2016 default log directory unless the command
// line chose where logs go.
func setupLogDir() {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["log_dir"] || set["logtostderr"] {
		return
	}
	if err := os.MkdirAll(defaultLogDir, 0o755); err != nil {
		_ = flag.Set("logtostderr", "true")
		return
	}
	_ = flag.Set("log_dir", defaultLogDir)
}
