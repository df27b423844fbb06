// Command ciao-webui serves Ciao's web UI: a small HTTPS daemon with the
// browser assets embedded, which signs users in against the controller's
// identity (built-in or an external Keystone) and relays the browser's
// API calls to ciao-controller with the signed-in user's token (package
// internal/webui says how).
//
//	ciao-webui -controller https://ctl:8774 -controller-cacert ctl.pem
//
// Without -cert and -key it makes a self-signed certificate at start and
// logs its fingerprint. SIGINT and SIGTERM stop it: the listener closes and
// in-flight requests get up to -shutdown-timeout to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ciao-webui/internal/webui"
	"github.com/golang/glog"
)

// config is everything run needs.
type config struct {
	Listen          string
	CertFile        string
	KeyFile         string
	Hosts           string // names for a generated certificate
	Server          webui.Config
	ShutdownTimeout time.Duration
}

// DefaultListen is the 2016 webui's port (controller.md §15).
const DefaultListen = ":3000"

func newConfig() config {
	return config{Listen: DefaultListen, Server: webui.NewConfig(""), ShutdownTimeout: 10 * time.Second}
}

// Validate checks what can be checked before anything starts.
func (c config) Validate() error {
	if c.Listen == "" {
		return errors.New("-listen is required")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("-cert and -key go together")
	}
	if c.Server.ControllerURL == "" {
		return errors.New("-controller is required, e.g. https://controller:8774")
	}
	return c.Server.Validate()
}

func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	c := newConfig()
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTPS listen address")
	fs.StringVar(&c.CertFile, "cert", "", "HTTPS certificate (PEM); empty with -key empty: a self-signed one is made at start")
	fs.StringVar(&c.KeyFile, "key", "", "HTTPS private key (PEM)")
	fs.StringVar(&c.Hosts, "hosts", "", "comma-separated names and addresses of a generated certificate (default: localhost, loopback, hostname)")
	fs.StringVar(&c.Server.ControllerURL, "controller", "", "controller compute API base URL, e.g. https://controller:8774")
	fs.StringVar(&c.Server.IdentityURL, "identity", "", "Keystone v3 URL (default: the controller's built-in identity, <controller>/v3)")
	fs.StringVar(&c.Server.CACertFile, "controller-cacert", "", "CA certificate (PEM) trusted for the controller and identity (default: system roots)")
	fs.DurationVar(&c.Server.RequestTimeout, "request-timeout", c.Server.RequestTimeout, "bound on each call to the controller")
	fs.StringVar(&c.Server.AssetsDir, "assets-dir", "", "serve the UI from this directory instead of the embedded copy (development: ciao-webui/internal/webui/assets)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may take at shutdown")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.Validate()
}

type glogger struct{}

func (glogger) Infof(f string, a ...any)  { glog.V(1).Infof(f, a...) }
func (glogger) Errorf(f string, a ...any) { glog.Errorf(f, a...) }

func run(ctx context.Context, cfg config) error {
	cfg.Server.Log = glogger{}
	srv, err := webui.New(cfg.Server)
	if err != nil {
		return err
	}
	var hosts []string
	if cfg.Hosts != "" {
		hosts = strings.Split(cfg.Hosts, ",")
	}
	cert, fp, err := webui.LoadOrGenerateCert(cfg.CertFile, cfg.KeyFile, hosts)
	if err != nil {
		return err
	}
	if fp != "" {
		glog.Warningf("ciao-webui: no -cert given: serving a self-signed certificate, SHA-256 fingerprint %s", fp)
	}
	ln, err := webui.Listen(cfg.Listen, cert)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	glog.Infof("ciao-webui: serving https://%s/ for controller %s", ln.Addr(), cfg.Server.ControllerURL)
	return webui.Serve(ctx, ln, srv, cfg.ShutdownTimeout)
}

func main() {
	flag.CommandLine.Init(os.Args[0], flag.ContinueOnError)
	cfg, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ciao-webui:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	glog.Flush()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "ciao-webui:", err)
		os.Exit(1)
	}
}
