// Command ciao-osprepare installs the host packages a ciao component
// needs, using the distribution's package manager. The Makefile and
// packaging run it before starting a component:
//
//	ciao-osprepare -component launcher [-dry-run]
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
	"syscall"

	"github.com/ciao-project/ciao/osprepare"
)

// config is the parsed command line.
type config struct {
	components []osprepare.Component
	dryRun     bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("ciao-osprepare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	component := fs.String("component", "launcher", "component to prepare: launcher, controller, scheduler or all")
	dryRun := fs.Bool("dry-run", false, "report what would be installed, install nothing")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config{dryRun: *dryRun}
	if *component == "all" {
		cfg.components = osprepare.Components()
		return cfg, nil
	}
	c, err := osprepare.ParseComponent(*component)
	if err != nil {
		return config{}, err
	}
	cfg.components = []osprepare.Component{c}
	return cfg, nil
}

// stdLogger adapts the standard logger to osprepare.Logger.
type stdLogger struct{ *log.Logger }

func (l stdLogger) Infof(f string, a ...any)    { l.Printf(f, a...) }
func (l stdLogger) Warningf(f string, a ...any) { l.Printf("warning: "+f, a...) }
func (l stdLogger) Errorf(f string, a ...any)   { l.Printf("error: "+f, a...) }

func run(ctx context.Context, cfg config, stdout io.Writer, logger osprepare.Logger) error {
	ocfg := osprepare.NewConfig()
	ocfg.Logger = logger
	ocfg.DryRun = cfg.dryRun
	in, err := osprepare.New(ocfg)
	if err != nil {
		return err
	}
	res, err := in.Install(ctx, cfg.components...)
	verb := "installed"
	if cfg.dryRun {
		verb = "would install"
	}
	fmt.Fprintf(stdout, "%s: present %v, %s %v\n", in.Distro().Family, res.Present, verb, res.Installed)
	return err
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-osprepare:", err)
		os.Exit(2)
	}
	// A signal cancels the package manager rather than leaving it running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, stdLogger{log.New(os.Stderr, "ciao-osprepare: ", 0)}); err != nil {
		fmt.Fprintln(os.Stderr, "ciao-osprepare:", err)
		stop()
		os.Exit(1)
	}
}
