// Command ciao-devcluster runs a whole Ciao cluster on this machine (see
// package devcluster):
//
//	ciao-devcluster up        [flags]   bring it up, launch a container, a VM and a process
//	ciao-devcluster down      [flags]   remove everything up made, check nothing is left
//	ciao-devcluster status    [flags]   the daemons, their pids and restarts
//	ciao-devcluster recovery  [flags]   SIGKILL each daemon in turn; print how long until it serves again
//	ciao-devcluster supervise [flags]   (internal) the background supervisor up starts
//
// Run it as root. `make dev-cluster` and `make dev-cluster-down` call it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/_release/devcluster"
)

const usage = `usage: ciao-devcluster up|down|status|recovery|supervise [flags]

  up         bring the dev cluster up (idempotent) and launch one container,
             one VM and one process instance as the demo tenant
  down       stop everything, delete every instance, remove the state
             directory and check that nothing is left behind
  status     show the daemons, their pids and restarts
  recovery   SIGKILL each daemon in turn and print how long until it is back
             and ciao-cli is served again with every instance still active
  supervise  run the daemons and restart them when they die (started by up)

Flags:
`

func parseFlags(args []string, stderr io.Writer) (string, devcluster.Config, error) {
	cfg := devcluster.NewConfig()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, usage)
		return "", cfg, flag.ErrHelp
	}
	cmd := args[0]
	switch cmd {
	case "up", "down", "status", "recovery", "supervise":
	default:
		fmt.Fprint(stderr, usage)
		return "", cfg, fmt.Errorf("unknown command %q", cmd)
	}
	fs := flag.NewFlagSet("ciao-devcluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory holding everything the cluster makes")
	fs.StringVar(&cfg.RepoDir, "repo", cfg.RepoDir, "Ciao source tree to build from")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "name clients and launchers reach the controller and scheduler by")
	fs.IntVar(&cfg.SchedulerPort, "scheduler-port", cfg.SchedulerPort, "scheduler SSNTP port")
	fs.IntVar(&cfg.APIPort, "api-port", cfg.APIPort, "controller compute API and identity port")
	fs.IntVar(&cfg.WebUIPort, "webui-port", cfg.WebUIPort, "web UI HTTPS port")
	fs.StringVar(&cfg.Network, "network", cfg.Network, "tenant networking: auto (on when the daemons support it), on or off")
	fs.StringVar(&cfg.NetPrefix, "net-prefix", cfg.NetPrefix, "name prefix of the tenant networking namespaces")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "how daemons run: auto (systemd units when systemd runs, else the supervisor), systemd or supervisor")
	fs.StringVar(&cfg.Accel, "accel", cfg.Accel, "VM accelerator of the compute launcher: tcg, auto or kvm")
	fs.BoolVar(&cfg.Deps, "deps", cfg.Deps, "install missing OS packages, start Docker, import the busybox image")
	fs.BoolVar(&cfg.Launch, "launch", cfg.Launch, "launch one instance of each dev workload")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole of up")
	if err := fs.Parse(args[1:]); err != nil {
		return "", cfg, err
	}
	if fs.NArg() > 0 {
		return "", cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cmd, cfg, cfg.Validate()
}

func main() {
	cmd, cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-devcluster:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cmd, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ciao-devcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string, cfg devcluster.Config, stdout io.Writer) error {
	logger := log.New(os.Stderr, "", log.Ltime)
	cfg.Logf = logger.Printf
	switch cmd {
	case "up":
		rep, err := devcluster.Up(ctx, cfg)
		for _, s := range rep.Steps {
			fmt.Fprintf(stdout, "  %-55s %6.1fs\n", s.Name, s.Elapsed.Seconds())
		}
		if err != nil {
			return fmt.Errorf("%w\n(logs: %s; remove everything with: make dev-cluster-down)", err, cfg.Path("logs"))
		}
		printUsage(stdout, cfg, rep)
		return nil
	case "down":
		t0 := time.Now()
		if err := devcluster.Down(ctx, cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dev cluster removed in %.1fs: no process, container, mount, interface, cgroup or file of it left\n",
			time.Since(t0).Seconds())
		return nil
	case "status":
		return status(ctx, cfg, stdout)
	case "recovery":
		return recovery(ctx, cfg, stdout)
	case "supervise":
		return supervise(ctx, cfg, logger)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func printUsage(w io.Writer, cfg devcluster.Config, rep devcluster.Report) {
	net := "off: " + rep.NetworkWhyOff
	if rep.Network {
		net = "on"
	}
	fmt.Fprintf(w, "\nCiao dev cluster up in %.1fs (%s mode, tenant networking %s).\n", rep.Elapsed.Seconds(), rep.Mode, net)
	if len(rep.Instances) > 0 {
		fmt.Fprintln(w, "Running as the demo tenant:")
		names := map[string]string{}
		for _, wl := range devcluster.DevWorkloads() {
			names[wl.ID] = wl.Description
		}
		for _, wl := range devcluster.DevWorkloads() {
			if id, ok := rep.Instances[wl.ID]; ok {
				fmt.Fprintf(w, "  %s  %s\n", id, names[wl.ID])
			}
		}
	}
	fmt.Fprintf(w, `
Use it with ciao-cli:
  . %s        # the demo tenant (admin.env: the cloud admin)
  ciao-cli workload list
  ciao-cli instance add -workload %s -instances 2 -wait
  ciao-cli instance list
  ciao-cli event list
  ciao-cli workload create -yaml %s   # a workload of your own
Web UI: %s  (sign in as demo or admin; the passwords are in %s and %s;
        the certificate is self-signed: %s)
Logs: %s/*.log.  Tests against it: make acceptance.  Remove it: make dev-cluster-down.
`, cfg.EnvFile("demo"), devcluster.WorkloadContainer, cfg.ExampleWorkload(), cfg.WebUIURL(), cfg.EnvFile("demo"), cfg.EnvFile("admin"),
		cfg.HTTPSCA(), cfg.Path("logs"))
}

func status(ctx context.Context, cfg devcluster.Config, w io.Writer) error {
	m, err := cfg.LoadManifest()
	if err != nil {
		return fmt.Errorf("no dev cluster at %s: %w", cfg.StateDir, err)
	}
	fmt.Fprintf(w, "dev cluster at %s (%s mode, network %v)\n", cfg.StateDir, m.Mode, m.Network)
	st, _ := devcluster.ReadStatus(cfg.Path("status.json"))
	for _, name := range devcluster.DaemonNames() {
		pid, err := cfg.DaemonPID(ctx, name)
		line := fmt.Sprintf("  %-18s pid %-8d", name, pid)
		if err != nil {
			line += " " + err.Error()
		} else if pid == 0 || syscall.Kill(pid, 0) != nil {
			line += " NOT RUNNING (make dev-cluster starts it again)"
		}
		if ds, ok := st.Daemons[name]; ok {
			line += fmt.Sprintf(" starts %d, last exit %q", ds.Starts, ds.LastExit)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// supervise is the background process up starts: it holds the state
// directory's supervisor lock, runs the manifest's daemons and stops them
// on SIGTERM.
func supervise(ctx context.Context, cfg devcluster.Config, logger *log.Logger) error {
	m, err := cfg.LoadManifest()
	if err != nil {
		return err
	}
	lf, err := os.OpenFile(cfg.Path("supervisor.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("another supervisor runs for %s: %w", cfg.StateDir, err)
	}
	if err := os.WriteFile(cfg.Path("supervisor.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	logger.Printf("supervisor %d: running %d daemons of %s", os.Getpid(), len(m.Daemons), cfg.StateDir)
	err = devcluster.Supervise(ctx, devcluster.SupervisorConfig{Daemons: m.Daemons, ReadyAddr: m.ReadyAddr,
		LogDir: cfg.Path("logs"), StatusFile: cfg.Path("status.json"), Logf: logger.Printf})
	_ = os.Remove(cfg.Path("supervisor.pid"))
	logger.Printf("supervisor %d: stopped (%v)", os.Getpid(), err)
	return err
}

// recovery kills each daemon in turn and prints how long it took to come
// back (a bench command: the figures it prints are the issue's).
func recovery(ctx context.Context, cfg devcluster.Config, w io.Writer) error {
	cli, err := cfg.NewCLI("demo")
	if err != nil {
		return err
	}
	for _, name := range devcluster.DaemonNames() {
		r, err := devcluster.KillAndRecover(ctx, cfg, cli, name, 60*time.Second)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("recovery %-17s SIGKILL→restarted %5.2fs  ciao-cli served, %d/%d instances active %5.2fs",
			name, r.Restarted.Seconds(), r.Instances, r.Instances, r.Served.Seconds())
		if r.Listening > 0 {
			line += fmt.Sprintf("  web UI accepting %5.2fs", r.Listening.Seconds())
		}
		if r.Reconnected > 0 {
			line += fmt.Sprintf("  launchers reconnected %5.2fs", r.Reconnected.Seconds())
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
