package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/config"
	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
)

// Defaults of the 2016 scheduler.
const (
	DefaultCert   = "/etc/pki/ciao/cert-Scheduler-localhost.pem"
	DefaultCACert = "/etc/pki/ciao/CAcert-server-localhost.pem"
	DefaultListen = ":8888"
	DefaultLogDir = "/var/lib/ciao/logs/scheduler"
)

// Config is everything a Scheduler needs. NewConfig gives the defaults.
type Config struct {
	// Cert is the scheduler's certificate followed by its key (PEM);
	// CertPEM, if set, is used instead of the file. CACert / CACertPEM
	// likewise name the trust anchor.
	Cert      string
	CertPEM   []byte
	CACert    string
	CACertPEM []byte

	// Listen is the SSNTP address, host:port; an empty host means every
	// interface, port 0 a free port (see Scheduler.Addr).
	Listen string
	// ConfigURI names the cluster configuration (file:// only). If it
	// cannot be loaded the scheduler runs without one, as in 2016, and
	// logs why.
	ConfigURI string
	// ClusterConfig, if set, is used as is instead of loading ConfigURI.
	ClusterConfig []byte

	// Policy chooses among the nodes that fit a START.
	Policy placement.Policy

	// MetricsAddr, if set, serves Prometheus metrics at /metrics there.
	MetricsAddr string
	// Pprof adds the Go profiler at /debug/pprof/ on MetricsAddr.
	Pprof bool

	// Heartbeat prints a one-line cluster summary every HeartbeatEvery
	// (default one second) to HeartbeatOut (default standard error).
	Heartbeat      bool
	HeartbeatOut   io.Writer
	HeartbeatEvery time.Duration

	// UUID is the scheduler's SSNTP UUID; zero means a random one.
	UUID uuid.UUID
	// SSNTPLog receives the ssntp library's logs; nil means glog.
	SSNTPLog ssntp.Logger
	// WriteTimeout bounds each frame write (zero: the ssntp default).
	WriteTimeout time.Duration
}

// NewConfig returns the 2016 defaults.
func NewConfig() Config {
	return Config{
		Cert:      DefaultCert,
		CACert:    DefaultCACert,
		Listen:    DefaultListen,
		ConfigURI: config.DefaultURI,
		Policy:    placement.FirstFit,
	}
}

// Validate checks what can be checked without touching files.
func (c *Config) Validate() error {
	if c.Cert == "" && len(c.CertPEM) == 0 {
		return errors.New("scheduler: no certificate (-cert)")
	}
	if c.CACert == "" && len(c.CACertPEM) == 0 {
		return errors.New("scheduler: no CA certificate (-cacert)")
	}
	if _, _, err := splitListen(c.Listen); err != nil {
		return err
	}
	if c.Pprof && c.MetricsAddr == "" {
		return errors.New("scheduler: the profiler is served on the metrics address: set one")
	}
	if c.Policy > placement.Pack {
		return fmt.Errorf("scheduler: unknown placement policy %d", c.Policy)
	}
	return nil
}

func splitListen(addr string) (string, int, error) {
	if addr == "" {
		addr = DefaultListen
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("scheduler: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("scheduler: listen address %q: bad port", addr)
	}
	return host, port, nil
}

// Scheduler is a running ciao-scheduler. See the package documentation
// for who guards what.
type Scheduler struct {
	cfg     Config
	srv     *ssntp.Server
	metrics *metrics
	httpSrv *http.Server
	httpLn  net.Listener

	closing   atomic.Bool
	closeOnce sync.Once
	stop      chan struct{} // closed by Close: ends the heartbeat
	wg        sync.WaitGroup
	serveErr  chan error

	// master is the controller whose commands are obeyed, nil for none.
	master atomic.Pointer[uuid.UUID]

	members     sync.Mutex // serialises connects/disconnects; guards controllers
	controllers []controller

	mu sync.Mutex // guards cn, nn
	cn pool
	nn pool
}

type controller struct {
	id     uuid.UUID
	master bool
}

// New loads the certificates and the cluster configuration and binds the
// listening sockets; Serve then accepts clients.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HeartbeatOut == nil {
		cfg.HeartbeatOut = os.Stderr
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Second
	}
	s := &Scheduler{
		cfg:      cfg,
		metrics:  newMetrics(),
		stop:     make(chan struct{}),
		serveErr: make(chan error, 1),
		cn:       newPool(payloads.ComputeNode),
		nn:       newPool(payloads.NetworkNode),
	}

	blob := cfg.ClusterConfig
	if blob == nil && cfg.ConfigURI != "" {
		b, err := config.Load(cfg.ConfigURI)
		if err != nil {
			glog.Errorf("Unable to load the cluster configuration (you may not have installed your configuration file yet): %v; clients will get none", err)
		} else {
			blob = b
		}
	}

	host, port, _ := splitListen(cfg.Listen)
	if port == 0 {
		// ssntp reads port 0 as its default, 8888; ":0" means any port.
		port = ssntp.AnyPort
	}
	scfg := ssntp.Config{
		UUID:          cfg.UUID,
		CAcert:        cfg.CACert,
		CACertPEM:     cfg.CACertPEM,
		Cert:          cfg.Cert,
		CertPEM:       cfg.CertPEM,
		Role:          ssntp.SCHEDULER,
		URI:           host,
		Port:          port,
		WriteTimeout:  cfg.WriteTimeout,
		ClusterConfig: blob,
		ForwardRules:  s.rules(),
		Log:           cfg.SSNTPLog,
	}
	srv, err := ssntp.NewServer(scfg, s)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if err := srv.Listen(); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s.srv = srv
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("scheduler: metrics listener: %w", err)
		}
		s.httpLn = ln
		mux := http.NewServeMux()
		mux.Handle("/metrics", s.metrics.handler())
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return s, nil
}

// Addr is the SSNTP listening address.
func (s *Scheduler) Addr() net.Addr { return s.srv.Addr() }

// Port is the SSNTP listening port.
func (s *Scheduler) Port() int {
	if a, ok := s.srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// MetricsAddr is where metrics are served, or nil.
func (s *Scheduler) MetricsAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// UUID is the scheduler's SSNTP UUID.
func (s *Scheduler) UUID() uuid.UUID { return s.srv.UUID() }

// Start serves clients (and metrics, and the heartbeat) in the background.
// Errors of the SSNTP accept loop come back from Wait.
func (s *Scheduler) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveErr <- s.srv.Serve()
	}()
	if s.httpSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				glog.Errorf("metrics server: %v", err)
			}
		}()
	}
	if s.cfg.Heartbeat {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.heartbeat(s.stop)
		}()
	}
}

// Run starts the scheduler and serves until ctx is done (then it closes
// the scheduler and returns nil) or the SSNTP server fails.
func (s *Scheduler) Run(ctx context.Context) error {
	s.Start()
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.serveErr:
		if err != nil {
			err = fmt.Errorf("scheduler: serving: %w", err)
		}
	}
	s.Close()
	return err
}

// Close shuts the scheduler down in this order: stop accepting SSNTP
// clients and close every client connection (the protocol has no goodbye;
// clients reconnect to the next scheduler and announce themselves again),
// waiting for each connection's goroutine to finish; then stop the metrics
// server (in-flight scrapes get a second) and the heartbeat. No
// NodeDisconnected events are sent while closing. Close is idempotent.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.srv.Close()
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				s.httpSrv.Close()
			}
			cancel()
		}
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

// isMaster reports whether id is the master controller.
func (s *Scheduler) isMaster(id uuid.UUID) bool {
	m := s.master.Load()
	return m != nil && *m == id
}

// ConnectNotify registers a new client by the roles it advertised.
func (s *Scheduler) ConnectNotify(id uuid.UUID, role ssntp.Role) {
	s.members.Lock()
	defer s.members.Unlock()
	if role.HasRole(ssntp.Controller) {
		s.addControllerLocked(id)
	}
	if role.HasRole(ssntp.AGENT) {
		s.addNodeLocked(&s.cn, id)
	}
	if role.HasRole(ssntp.NETAGENT) {
		s.addNodeLocked(&s.nn, id)
	}
	if role.HasRole(ssntp.CNCIAGENT) {
		s.metrics.cnciAgents.Inc()
	}
	glog.V(1).Infof("%s connected as %q", id, role)
}

// DisconnectNotify forgets a client.
func (s *Scheduler) DisconnectNotify(id uuid.UUID, role ssntp.Role) {
	s.members.Lock()
	defer s.members.Unlock()
	if role.HasRole(ssntp.Controller) {
		s.removeControllerLocked(id)
	}
	if role.HasRole(ssntp.AGENT) {
		s.removeNodeLocked(&s.cn, id)
	}
	if role.HasRole(ssntp.NETAGENT) {
		s.removeNodeLocked(&s.nn, id)
	}
	if role.HasRole(ssntp.CNCIAGENT) {
		s.metrics.cnciAgents.Dec()
	}
	glog.V(1).Infof("%s disconnected (%q)", id, role)
}

// addControllerLocked implements the 2016 election: the first controller
// (or one arriving when the head of the list is not a master) is master,
// later ones are backups. The newcomer is then told about every node
// already connected (the 2016 scheduler only told controllers about nodes
// arriving after them).
func (s *Scheduler) addControllerLocked(id uuid.UUID) {
	for _, c := range s.controllers {
		if c.id == id {
			glog.Warningf("controller %s connected twice; ignoring the second", id)
			return
		}
	}
	if len(s.controllers) == 0 || !s.controllers[0].master {
		s.controllers = append([]controller{{id: id, master: true}}, s.controllers...)
		s.master.Store(&id)
		glog.Infof("controller %s is the master", id)
	} else {
		s.controllers = append(s.controllers, controller{id: id})
		glog.Infof("controller %s is a backup", id)
	}
	s.metrics.controllers.Inc()

	s.mu.Lock()
	cns := s.cn.members()
	nns := s.nn.members()
	s.mu.Unlock()
	for _, n := range cns {
		s.sendNodeEvent(id, ssntp.NodeConnected, n, payloads.ComputeNode)
	}
	for _, n := range nns {
		s.sendNodeEvent(id, ssntp.NodeConnected, n, payloads.NetworkNode)
	}
}

func (s *Scheduler) removeControllerLocked(id uuid.UUID) {
	for i, c := range s.controllers {
		if c.id != id {
			continue
		}
		s.controllers = append(s.controllers[:i], s.controllers[i+1:]...)
		s.metrics.controllers.Dec()
		if !c.master {
			return
		}
		s.master.Store(nil)
		for j, b := range s.controllers {
			if !b.master {
				b.master = true
				s.controllers = append(s.controllers[:j], s.controllers[j+1:]...)
				s.controllers = append([]controller{b}, s.controllers...)
				s.master.Store(&b.id)
				glog.Infof("master controller %s left; %s is the master now", id, b.id)
				return
			}
		}
		glog.Warningf("master controller %s left; no controller remains", id)
		return
	}
}

func (s *Scheduler) addNodeLocked(p *pool, id uuid.UUID) {
	s.mu.Lock()
	added := p.add(id)
	s.mu.Unlock()
	if !added {
		glog.Warningf("%s %s connected twice; ignoring the second", p.kind, id)
		return
	}
	s.nodeGauge(p).Inc()
	s.tellControllersLocked(ssntp.NodeConnected, id, p.kind)
}

func (s *Scheduler) removeNodeLocked(p *pool, id uuid.UUID) {
	s.mu.Lock()
	removed := p.remove(id)
	s.mu.Unlock()
	if !removed {
		return
	}
	s.nodeGauge(p).Dec()
	s.tellControllersLocked(ssntp.NodeDisconnected, id, p.kind)
}

func (s *Scheduler) nodeGauge(p *pool) interface {
	Inc()
	Dec()
} {
	if p.kind == payloads.NetworkNode {
		return s.metrics.networkNodes
	}
	return s.metrics.computeNodes
}

// tellControllersLocked sends a node event to every controller; the
// caller holds members, which keeps events in order.
func (s *Scheduler) tellControllersLocked(ev ssntp.Event, node uuid.UUID, kind payloads.Resource) {
	if s.closing.Load() {
		return
	}
	for _, c := range s.controllers {
		s.sendNodeEvent(c.id, ev, node, kind)
	}
}

func (s *Scheduler) sendNodeEvent(to uuid.UUID, ev ssntp.Event, node uuid.UUID, kind payloads.Resource) {
	var payload []byte
	if ev == ssntp.NodeConnected {
		payload = nodeEventPayload("node_connected", node, kind)
	} else {
		payload = nodeEventPayload("node_disconnected", node, kind)
	}
	if err := s.srv.SendEvent(to, ev, payload); err != nil {
		glog.Warningf("telling controller %s about %s %s: %v", to, kind, node, err)
	}
}

// nodeEventPayload writes the NodeConnected / NodeDisconnected YAML
// directly: both values are plain words, and the golden test checks this
// equals yaml.v2's output.
func nodeEventPayload(root string, node uuid.UUID, kind payloads.Resource) []byte {
	b := make([]byte, 0, 96)
	b = append(b, root...)
	b = append(b, ":\n  node_uuid: "...)
	b = append(b, node.String()...)
	b = append(b, "\n  node_type: "...)
	b = append(b, kind...)
	return append(b, '\n')
}

// StatusNotify records a node's READY / FULL / OFFLINE / MAINTENANCE.
func (s *Scheduler) StatusNotify(id uuid.UUID, st ssntp.Status, f *ssntp.Frame) {
	var ri *readyInfo
	if st == ssntp.READY {
		r, fast, err := decodeReady(f.Payload)
		if !fast {
			s.metrics.slowDecoding.Inc()
		}
		if err != nil {
			// As in 2016: the node is READY with its previous figures.
			glog.Errorf("bad READY payload from %s: %v", id, err)
		} else {
			ri = &r
		}
	}
	s.mu.Lock()
	s.cn.setStatus(id, st, ri)
	s.nn.setStatus(id, st, ri)
	s.mu.Unlock()
	if glog.V(3) {
		glog.Infof("%s is %s", id, st)
	}
}

// CommandNotify is called after routing; only CONFIGURE is worth a line.
func (s *Scheduler) CommandNotify(id uuid.UUID, cmd ssntp.Command, f *ssntp.Frame) {
	if cmd == ssntp.CONFIGURE {
		glog.Infof("cluster configuration replaced by %s (%d bytes); later clients get it", id, len(f.Payload))
	} else if glog.V(3) {
		glog.Infof("%s from %s", cmd, id)
	}
}

// EventNotify is called after routing.
func (s *Scheduler) EventNotify(id uuid.UUID, ev ssntp.Event, f *ssntp.Frame) {
	if glog.V(3) {
		glog.Infof("event %s from %s", ev, id)
	}
}

// ErrorNotify is called after routing.
func (s *Scheduler) ErrorNotify(id uuid.UUID, e ssntp.Error, f *ssntp.Frame) {
	if glog.V(2) {
		glog.Infof("error %s from %s", e, id)
	}
}
