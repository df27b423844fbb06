// Command ciao-scheduler is the SSNTP server of a Ciao cluster: it accepts
// controllers, launchers and CNCI agents, hands each the cluster
// configuration, places every START on a compute or network node that
// reported room for it, and relays the other frames (scheduler.md).
//
// It keeps no state on disk: after a restart the launchers reconnect and
// announce themselves again. SIGINT and SIGTERM shut it down cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/config"
	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/ciao-scheduler/internal/scheduler"
	"github.com/golang/glog"
)

// options are the flags that are not scheduler configuration.
type options struct {
	cpuProfile  string
	gcPercent   int
	memoryLimit int64 // bytes; 0 for none
}

// Garbage collector defaults. Every frame the scheduler reads is a fresh
// allocation (about 3 KB per placement), while the live heap stays small
// (about 20 KB per connected client): with Go's default GOGC of 100 a
// collection runs every couple of seconds at 10,000 placements/s and its
// mark phase is what sets the p99 latency (measured on 2 cores, 1,000
// agents: p99 ≈ 7 ms at GOGC 100, ≈ 3–4.5 ms at 400). The soft memory
// limit keeps the larger heap goal from growing a big cluster's RSS past
// it (10,000 agents: about 200 MB live). Beyond roughly 25,000 nodes the
// live heap nears the limit and collections become frequent: raise it.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = "768MiB"
)

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix;
// "0" and "off" mean none.
func parseSize(s string) (int64, error) {
	if s == "off" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 768MiB, 2GiB or off)", s)
	}
	return n * mult, nil
}

func parseFlags(fs *flag.FlagSet, args []string) (scheduler.Config, options, error) {
	cfg := scheduler.NewConfig()
	var opt options
	var policy, memLimit string
	fs.StringVar(&cfg.Cert, "cert", scheduler.DefaultCert, "scheduler certificate followed by its private key (PEM)")
	fs.StringVar(&cfg.CACert, "cacert", scheduler.DefaultCACert, "CA certificate (PEM)")
	fs.StringVar(&cfg.ConfigURI, "configuration-uri", config.DefaultURI, "cluster configuration handed to every client (file:// only)")
	fs.BoolVar(&cfg.Heartbeat, "heartbeat", false, "print a one-line cluster summary every second on standard error")
	fs.StringVar(&opt.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until exit")
	fs.StringVar(&cfg.Listen, "listen", scheduler.DefaultListen, "SSNTP listen address, host:port (empty host: all interfaces)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. :9102 (default: off)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "also serve the Go profiler at /debug/pprof/ on -metrics-addr")
	fs.IntVar(&opt.gcPercent, "gc-percent", defaultGCPercent, "garbage collector target percentage (GOGC), unless GOGC is set")
	fs.StringVar(&memLimit, "memory-limit", defaultMemoryLimit, "soft memory limit of the Go runtime (GOMEMLIMIT), unless GOMEMLIMIT is set; off for none. Raise it beyond ~25,000 nodes")
	fs.StringVar(&policy, "policy", "firstfit", "placement among the nodes that fit: firstfit (2016 behaviour: first READY node with room, after the last one used), spread (most free memory) or pack (least free memory that fits)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nThe Ciao scheduler: SSNTP server on port 8888 that places instances.\n\nFlags (glog flags too: -logtostderr, -alsologtostderr, -log_dir (default %s), -v, -vmodule...):\n", os.Args[0], scheduler.DefaultLogDir)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opt, err
	}
	if fs.NArg() > 0 {
		return cfg, opt, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	p, err := placement.ParsePolicy(policy)
	if err != nil {
		return cfg, opt, err
	}
	if opt.memoryLimit, err = parseSize(memLimit); err != nil {
		return cfg, opt, fmt.Errorf("-memory-limit: %w", err)
	}
	cfg.Policy = p
	return cfg, opt, cfg.Validate()
}

// setLogDir points glog at the 2016 directory unless -log_dir or
// -logtostderr says otherwise. It runs before anything logs: glog opens
// its files on the first line.
func setLogDir(fs *flag.FlagSet) error {
	if f := fs.Lookup("logtostderr"); f != nil && f.Value.String() == "true" {
		return nil
	}
	f := fs.Lookup("log_dir")
	if f == nil || f.Value.String() != "" {
		return nil
	}
	if err := os.MkdirAll(scheduler.DefaultLogDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w; logging to glog's default directory", scheduler.DefaultLogDir, err)
	}
	return fs.Set("log_dir", scheduler.DefaultLogDir)
}

// raiseFileLimit lifts the open-file soft limit to the hard limit: every
// node holds one TLS connection.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		glog.Warningf("reading RLIMIT_NOFILE: %v", err)
		return
	}
	before := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		glog.Warningf("raising RLIMIT_NOFILE from %d to %d: %v", before, lim.Max, err)
		return
	}
	glog.Infof("open file limit raised from %d to %d", before, lim.Cur)
}

// tuneGC applies the collector flags unless the environment already did.
func tuneGC(opt options) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(opt.gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && opt.memoryLimit > 0 {
		debug.SetMemoryLimit(opt.memoryLimit)
	}
	gc := debug.SetGCPercent(100) // reading it means setting it: put it back
	debug.SetGCPercent(gc)
	glog.Infof("garbage collector: GOGC %d, memory limit %d MiB", gc, debug.SetMemoryLimit(-1)>>20)
}

func run(ctx context.Context, cfg scheduler.Config, opt options) error {
	if opt.cpuProfile != "" {
		f, err := os.Create(opt.cpuProfile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	raiseFileLimit()
	tuneGC(opt)
	s, err := scheduler.New(cfg)
	if err != nil {
		return err
	}
	glog.Infof("ciao-scheduler %s listening on %s, placement policy %s", s.UUID(), s.Addr(), cfg.Policy)
	if a := s.MetricsAddr(); a != nil {
		glog.Infof("metrics on http://%s/metrics", a)
	}
	return s.Run(ctx)
}

func main() {
	fs := flag.CommandLine
	cfg, opt, err := parseFlags(fs, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-scheduler:", err)
		os.Exit(2)
	}
	logErr := setLogDir(fs)
	if logErr != nil {
		glog.Warning(logErr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, opt)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		glog.Errorf("ciao-scheduler: %v", err)
		glog.Flush()
		fmt.Fprintln(os.Stderr, "ciao-scheduler:", err)
		os.Exit(1)
	}
	glog.Info("ciao-scheduler stopped")
	glog.Flush()
}
