// Command ciao-scheduler-load measures a ciao-scheduler under load: it
// starts the scheduler binary (or uses a running one), connects N
// simulated launchers and one controller, sends K STARTs flat out and K
// more at a fixed rate, and prints one line per figure: agent connections
// per second, placements per second, p50/p99 latency from the
// controller's send to the agent's receipt, spread over the agents,
// failures by reason, the scheduler's CPU per placement and peak RSS, and
// its own CPU per placement.
//
//	go build -o /tmp/ciao-scheduler ./ciao-scheduler
//	go run ./ciao-scheduler/ciao-scheduler-load -scheduler /tmp/ciao-scheduler -agents 1000 -starts 100000 -rate 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/loadtool"
	"github.com/ciao-project/ciao/ssntp/certs"
)

type options struct {
	binary, addr, anchor, keyType, policy, schedArgs string
	pid, gogc, procs                                 int
	cpuProfile                                       string
	cfg                                              loadtool.Config
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.binary, "scheduler", "", "ciao-scheduler binary to start (default: next to this program, else on PATH)")
	flag.StringVar(&o.addr, "addr", "", "use the scheduler already listening here (host:port) instead of starting one; needs -anchor")
	flag.StringVar(&o.anchor, "anchor", "", "with -addr: the scheduler's certificate and key, to sign the load certificates")
	flag.IntVar(&o.pid, "pid", 0, "with -addr: the scheduler's process id, for its CPU time and RSS")
	flag.StringVar(&o.keyType, "key-type", "ecdsa", "certificate keys: ecdsa (P-256), rsa or p521")
	flag.StringVar(&o.policy, "policy", "firstfit", "placement policy of the started scheduler")
	flag.StringVar(&o.schedArgs, "scheduler-args", "", "extra arguments for the started scheduler, space separated")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this program's CPU profile here")
	flag.IntVar(&o.procs, "procs", 0, "GOMAXPROCS of this program (0: the Go default); the started scheduler keeps its own")
	flag.IntVar(&o.cfg.FlatProcs, "flat-procs", 1, "GOMAXPROCS of this program during the flat-out phase (0: unchanged)")
	flag.IntVar(&o.gogc, "gogc", 400, "GOGC of this program (less collection, less CPU per placement)")
	flag.IntVar(&o.cfg.Agents, "agents", 1000, "simulated launchers (N)")
	flag.IntVar(&o.cfg.Starts, "starts", 100000, "STARTs per phase (K)")
	flag.IntVar(&o.cfg.Rate, "rate", 10000, "STARTs per second of the fixed-rate phase; 0 leaves it out")
	flag.BoolVar(&o.cfg.SkipFlat, "no-flat", false, "leave out the flat-out phase")
	flag.IntVar(&o.cfg.MemMB, "mem-mb", 128, "mem_mb of each START")
	flag.IntVar(&o.cfg.AgentMemMB, "agent-mem-mb", 0, "memory of each agent (default: room for every START plus a quarter)")
	flag.DurationVar(&o.cfg.StatusPeriod, "status-period", 6*time.Second, "each agent's READY+STATS period")
	flag.IntVar(&o.cfg.Dialers, "dialers", 32, "agents connecting at once")
	flag.Parse()
	return o
}

func findScheduler() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "ciao-scheduler")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath("ciao-scheduler")
}

func run(ctx context.Context, o options) error {
	debug.SetGCPercent(o.gogc)
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	kt, err := certs.ParseKeyType(o.keyType)
	if err != nil {
		return err
	}
	limit, err := loadtool.RaiseFileLimit()
	if err != nil {
		return fmt.Errorf("raising the open file limit: %w", err)
	}
	if uint64(o.cfg.Agents)+64 > limit {
		return fmt.Errorf("%d agents need more than the open file limit of %d", o.cfg.Agents, limit)
	}
	cfg := o.cfg
	cfg.Out = os.Stdout
	var creds *loadtool.Creds
	if o.addr != "" {
		if o.anchor == "" {
			return fmt.Errorf("-addr needs -anchor")
		}
		if creds, err = loadtool.LoadCreds(o.anchor, kt); err != nil {
			return err
		}
		cfg.Addr, cfg.SchedulerPID = o.addr, o.pid
	} else {
		if creds, err = loadtool.MakeCreds(kt); err != nil {
			return err
		}
		bin := o.binary
		if bin == "" {
			if bin, err = findScheduler(); err != nil {
				return fmt.Errorf("no ciao-scheduler binary (build one and pass -scheduler): %w", err)
			}
		}
		extra := []string{"-policy", o.policy}
		if o.schedArgs != "" {
			extra = append(extra, strings.Fields(o.schedArgs)...)
		}
		s, err := loadtool.Launch(ctx, bin, creds, extra...)
		if err != nil {
			return err
		}
		defer func() {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "ciao-scheduler-load: scheduler exit:", err)
			}
		}()
		cfg.Addr, cfg.SchedulerPID = s.Addr, s.PID()
	}
	cfg.CACert, cfg.AgentCert, cfg.ControllerCert = creds.CACert, creds.Agent, creds.Controller
	fmt.Printf("setup                          %d agents, %d STARTs per phase of %d MB, %s keys, %d CPUs\n",
		cfg.Agents, cfg.Starts, cfg.MemMB, kt, runtime.NumCPU())
	_, err = loadtool.Run(ctx, cfg)
	return err
}

func main() {
	o := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-scheduler-load:", err)
		os.Exit(1)
	}
}
