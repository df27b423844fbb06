// Command ciao-controller is the policy daemon of a Ciao cluster: it serves
// the compute API (OpenStack servers and flavors, Ciao's tenants, quotas
// and events) on the compute port, together with its own Keystone v3
// identity subset under /v3 unless -tokens is given (identity.go; the
// first admin is made with -create-user), keeps every record in an SQLite
// datastore, and talks to the scheduler over SSNTP with role Controller
// (controller.md).
//
// SIGINT and SIGTERM shut it down cleanly, in this order: the HTTP server
// stops accepting and drains in-flight requests (up to ShutdownTimeout),
// then the SSNTP client closes (no more commands out, no more reports
// in), then the datastore closes. That order lets no request or report
// reach a closed store.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/identity"
	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
)

// Defaults.
const (
	DefaultComputePort     = 8774
	DefaultDatabase        = "./ciao-controller.db"
	DefaultLogDir          = "/var/lib/ciao/logs/controller"
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultGCPercent trades memory (the heap is small: records are a
	// few hundred bytes each) for fewer collections on the request path.
	DefaultGCPercent = 400
)

// config is everything run needs.
type config struct {
	CACert, Cert    string // SSNTP
	Server          string // scheduler host
	Port            int    // scheduler SSNTP port
	HTTPSCert       string // PEM certificate of the API listener
	HTTPSKey        string // PEM private key
	PlainHTTP       bool   // serve plain HTTP (tests only; no flag)
	ComputeHost     string // listen host ("" = all interfaces)
	ComputePort     int
	Database        string
	ImageDir        string         // image API data ("" = off; images.go)
	TablesPath      string         // workload CSVs ("" = WorkloadsPath; both "" = compiled-in workloads)
	WorkloadsPath   string         // cloud-init files ("" = TablesPath)
	Network         bool           // tenant networking: one CNCI per tenant
	CNCITimeout     time.Duration  // wait for a tenant's CNCI
	CNCIIdle        time.Duration  // delete a CNCI whose tenant has no instances this long (0 = never)
	TokensFile      string         // static tokens
	Identity        identityConfig // built-in identity (identity.go)
	ShutdownTimeout time.Duration
	ResendPending   time.Duration                                // controller.Config.ResendPendingAfter
	ResendDelete    time.Duration                                // controller.Config.ResendDeleteAfter
	UsageRetention  time.Duration                                // controller.Config.UsageRetention
	GCPercent       int                                          // garbage collector target (GOGC) unless GOGC is set
	MetricsAddr     string                                       // Prometheus /metrics listener ("" = off)
	Pprof           bool                                         // also serve /debug/pprof/ on MetricsAddr
	tokens          api.StaticTokens                             // set instead of TokensFile by tests
	ssntpMod        func(*ssntp.Config)                          // test hook
	onListen        func(addr net.Addr)                          // test hook: API address
	onMetrics       func(addr net.Addr)                          // test hook: metrics address
	seed            func(context.Context, datastore.Store) error // test hook: after seeding
}

func newConfig() config {
	return config{Server: "localhost", Port: ssntp.DefaultPort, ComputePort: DefaultComputePort,
		Database: DefaultDatabase, ShutdownTimeout: DefaultShutdownTimeout, ResendPending: controller.DefaultResendPendingAfter,
		ResendDelete: controller.DefaultResendDeleteAfter, CNCITimeout: controller.DefaultCNCITimeout, CNCIIdle: controller.DefaultCNCIIdle, UsageRetention: controller.DefaultUsageRetention, GCPercent: DefaultGCPercent,
		Identity: identityConfig{TokenTTL: identity.DefaultTokenTTL, CacheTTL: identity.DefaultCacheTTL, Role: "member", RemoteUser: "csr", RemoteProject: "service"}}
}

// Validate checks what can be checked before anything starts.
func (c config) Validate() error {
	if err := c.Identity.validate(); err != nil {
		return err
	}
	switch {
	case c.Identity.CreateUser != "":
		if c.Database == "" {
			return errors.New("-database is required")
		}
		return nil
	case c.Network && c.CNCITimeout <= 0:
		return errors.New("-cnci-timeout must be > 0")
	case c.CNCIIdle < 0:
		return errors.New("-cnci-idle must be >= 0 (0: never delete CNCIs)")
	case !c.PlainHTTP && (c.HTTPSCert == "" || c.HTTPSKey == ""):
		return errors.New("-httpscert and -httpskey are required")
	case c.Database == "":
		return errors.New("-database is required")
	case c.ResendPending < 0:
		return fmt.Errorf("-resend-pending-after %v: must be >= 0 (0: never re-send STARTs)", c.ResendPending)
	case c.ResendDelete < 0:
		return fmt.Errorf("-resend-delete-after %v: must be >= 0 (0: never re-send DELETEs)", c.ResendDelete)
	case c.UsageRetention < 0:
		return fmt.Errorf("-usage-retention %v: must be >= 0 (0: keep usage records forever)", c.UsageRetention)
	case c.GCPercent <= 0:
		return errors.New("-gc-percent must be > 0")
	case c.Pprof && c.MetricsAddr == "":
		return errors.New("-pprof is served on -metrics-addr: set one")
	case c.ComputePort < 0 || c.ComputePort > 65535:
		return fmt.Errorf("-compute-port %d out of range", c.ComputePort)
	}
	return nil
}

func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	c := newConfig()
	fs.StringVar(&c.CACert, "cacert", "", "SSNTP CA certificate (PEM)")
	fs.StringVar(&c.Cert, "cert", "", "SSNTP client certificate with the Controller role, followed by its key (PEM)")
	fs.StringVar(&c.Server, "server", c.Server, "scheduler host name or address")
	fs.StringVar(&c.Server, "url", c.Server, "alias of -server (2016 name)")
	fs.IntVar(&c.Port, "port", c.Port, "scheduler SSNTP port")
	fs.StringVar(&c.HTTPSCert, "httpscert", "", "HTTPS certificate of the compute API (PEM)")
	fs.StringVar(&c.HTTPSKey, "httpskey", "", "HTTPS private key of the compute API (PEM)")
	fs.StringVar(&c.ComputeHost, "compute-host", "", "compute API listen host (empty: all interfaces)")
	fs.IntVar(&c.ComputePort, "compute-port", c.ComputePort, "compute API port")
	fs.StringVar(&c.Database, "database", c.Database, "SQLite database file")
	fs.StringVar(&c.Database, "database_path", c.Database, "alias of -database (2016 name)")
	fs.StringVar(&c.TablesPath, "tables_init_path", "", "directory of workload_template.csv, workload_resources.csv and (optional) resources.csv, seeded at start (default: -workloads_path; with neither, the five compiled-in workloads)")
	fs.StringVar(&c.WorkloadsPath, "workloads_path", "", "directory of the workloads' cloud-init files (default: -tables_init_path)")
	fs.BoolVar(&c.Network, "network", false, "tenant networking: each tenant's first request starts its CNCI (the internal CNCI workload, on a network node) and waits for it")
	fs.DurationVar(&c.CNCITimeout, "cnci-timeout", c.CNCITimeout, "with -network: how long a request waits for a tenant's new CNCI to announce itself before failing (503) with an error event")
	fs.DurationVar(&c.CNCIIdle, "cnci-idle", c.CNCIIdle, "with -network: delete a tenant's CNCI once the tenant has had no instances for this long; its next request starts a new one (0: never delete CNCIs)")
	fs.StringVar(&c.TokensFile, "tokens", "", "static token file: lines 'token project-id project-name role[,role...]'")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight API requests may take at shutdown")
	fs.DurationVar(&c.ResendPending, "resend-pending-after", c.ResendPending, "send START again for instances still pending and reported by no node this long after creation (or after start, for older ones), then with a doubling backoff up to 32 times this (0: never); keep it above the launchers' STATS period. DELETEs have -resend-delete-after")
	fs.DurationVar(&c.ResendDelete, "resend-delete-after", c.ResendDelete, "send DELETE again for deletions their node has not confirmed this long after they were asked (or after start, for older ones), then with a doubling backoff up to 32 times this, to the node last reporting the instance (0: never; a lost DELETE then leaves the server listed deleting until deleted again, and a DELETE the scheduler cannot take now is answered 503 instead of kept for later)")
	fs.DurationVar(&c.UsageRetention, "usage-retention", c.UsageRetention, "keep the lifetime records of deleted instances, which 'openstack usage' reports are computed from, this long after the deletion; older ones are pruned hourly (0: keep forever)")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "garbage collector target percentage (GOGC), unless GOGC is set")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. :9103 (default: off)")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve the Go profiler at /debug/pprof/ on -metrics-addr")
	registerImageFlags(fs, &c)
	c.Identity.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.Validate()
}

// loadTokens reads a static token file. Blank lines and # comments are
// skipped.
func loadTokens(path string) (api.StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	defer f.Close()
	t := api.StaticTokens{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 4 {
			return nil, fmt.Errorf("read tokens: %s:%d: want 4 fields, got %d", path, n, len(fields))
		}
		t[fields[0]] = api.Identity{TenantID: fields[1], ProjectName: fields[2], Roles: strings.Split(fields[3], ",")}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return t, nil
}

// run starts the daemon and blocks until ctx ends or a component fails;
// see the package comment for the shutdown order.
func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Identity.CreateUser != "" {
		return createUser(ctx, cfg.Database, cfg.Identity, os.Stdin)
	}
	met := metrics.New()
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg, met)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	dcfg := datastore.NewConfig(cfg.Database)
	dcfg.Observe = met.StoreOp
	store, err := datastore.OpenSQLite(ctx, dcfg)
	if err != nil {
		return fmt.Errorf("open datastore: %w", err)
	}
	met.SetInstanceStates(store.InstanceStates)
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close datastore: %w", cerr)
		}
		glog.Info("datastore closed")
	}()
	if err := seedWorkloads(ctx, cfg, store); err != nil {
		return err
	}
	if cfg.seed != nil {
		if err := cfg.seed(ctx, store); err != nil {
			return err
		}
	}

	sc := ssntp.Config{CAcert: cfg.CACert, Cert: cfg.Cert, URI: cfg.Server, Port: cfg.Port}
	if cfg.ssntpMod != nil {
		cfg.ssntpMod(&sc)
	}
	ccfg := controller.NewConfig(store, sc)
	ccfg.Network, ccfg.CNCITimeout, ccfg.CNCIIdle = cfg.Network, cfg.CNCITimeout, cfg.CNCIIdle
	ccfg.ResendPendingAfter, ccfg.ResendDeleteAfter = cfg.ResendPending, cfg.ResendDelete
	ccfg.UsageRetention = cfg.UsageRetention
	ccfg.Metrics = met
	ctl, err := controller.New(ctx, ccfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := ctl.Close(); cerr != nil {
			glog.Warningf("closing SSNTP client: %v", cerr)
		}
		glog.Info("SSNTP client closed")
	}()

	auth, mount, err := newAuth(cfg, store)
	if err != nil {
		return err
	}
	imgs, err := newImages(ctx, cfg, store)
	if err != nil {
		return err
	}
	h, err := api.New(api.Config{Compute: ctl, Store: store, Auth: auth, Images: imgs, Metrics: met})
	if err != nil {
		return err
	}
	h = mount(h) // built-in identity: /v3 on the compute port
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ComputeHost, strconv.Itoa(cfg.ComputePort)))
	if err != nil {
		return fmt.Errorf("compute API listener: %w", err) // Q11: fail, do not ignore
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if !cfg.PlainHTTP {
		pair, err := tls.LoadX509KeyPair(cfg.HTTPSCert, cfg.HTTPSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("compute API certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	glog.Infof("compute API on %s (tls %v), controller %s", ln.Addr(), !cfg.PlainHTTP, ctl.UUID())
	if cfg.onListen != nil {
		cfg.onListen(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
		return fmt.Errorf("compute API: %w", err)
	case <-ctx.Done():
	}
	glog.Info("shutting down: draining API requests")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		glog.Warningf("API shutdown: %v", serr)
		srv.Close()
	}
	<-served
	return ctx.Err()
}

// seedWorkloads stores the workloads of the definition files, or the
// compiled-in ones when no directory is given.
func seedWorkloads(ctx context.Context, cfg config, store datastore.Store) error {
	tables, yamls := cfg.TablesPath, cfg.WorkloadsPath
	if tables == "" && yamls == "" {
		return controller.SeedWorkloads(ctx, store)
	}
	if tables == "" {
		tables = yamls
	}
	if yamls == "" {
		yamls = tables
	}
	return controller.SeedWorkloadFiles(ctx, store, tables, yamls)
}

// serveMetrics starts the metrics listener; the returned func stops it.
func serveMetrics(cfg config, met *metrics.Metrics) (func(), error) {
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	glog.Infof("metrics on http://%s/metrics (pprof %v)", ln.Addr(), cfg.Pprof)
	if cfg.onMetrics != nil {
		cfg.onMetrics(ln.Addr())
	}
	srv := &http.Server{Handler: met.Mux(cfg.Pprof), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			glog.Errorf("metrics server: %v", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// setLogDir points glog at the 2016 directory unless -log_dir or
// -logtostderr says otherwise; it must run before anything logs.
func setLogDir(fs *flag.FlagSet) error {
	if f := fs.Lookup("logtostderr"); f != nil && f.Value.String() == "true" {
		return nil
	}
	f := fs.Lookup("log_dir")
	if f == nil || f.Value.String() != "" {
		return nil
	}
	if err := os.MkdirAll(DefaultLogDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w; logging to glog's default directory", DefaultLogDir, err)
	}
	return fs.Set("log_dir", DefaultLogDir)
}

func main() {
	fs := flag.CommandLine
	cfg, err := parseFlags(fs, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-controller:", err)
		os.Exit(2)
	}
	if lerr := setLogDir(fs); lerr != nil {
		glog.Warning(lerr)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	glog.Flush()
	if err != nil && !errors.Is(err, context.Canceled) {
		glog.Errorf("ciao-controller: %v", err)
		glog.Flush()
		os.Exit(1)
	}
}
