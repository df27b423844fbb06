// Package webui is the ciao-webui server: it serves the browser UI (plain
// HTML, CSS and JS modules embedded in the binary, package assets) over
// HTTPS and relays the browser's API calls to ciao-controller, so that the
// browser talks to one origin only.
//
// Routes:
//
//	GET  /, /static/...   the embedded UI
//	POST   /session       sign in: {"user","password","project","domain"}
//	GET    /session       who is signed in (the token is validated)
//	DELETE /session       sign out: the token is revoked, the cookie cleared
//	/api/v2.1/...         relayed to <controller>/v2.1/... with X-Auth-Token
//	/api/workloads...     the workloads API: /workloads... (admin) and
//	/api/{t}/workloads... /{tenant}/workloads..., relayed the same way
//	/api/v2/images...     the image API (the qemu image list), likewise
//
// The Keystone token lives in an HttpOnly, Secure, SameSite=Strict cookie
// (never in JavaScript-readable storage): a script injected into the page
// cannot read or exfiltrate it, and the cookie expires with the token.
// Requests that change state must carry the X-Ciao-Webui header, which a
// cross-origin page cannot set without a CORS preflight that this server
// never grants; together with SameSite=Strict that rules out CSRF.
//
// Sign-in goes to the identity service (the controller's built-in Keystone
// v3 subset, or an external Keystone) with password authentication scoped
// to a project; an empty project picks the user's only project.
package webui

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Logger is what the server logs through (glog in the daemon, t.Logf in
// tests).
type Logger interface {
	Infof(format string, args ...any)
	Errorf(format string, args ...any)
}

// Config configures a Server.
type Config struct {
	// ControllerURL is the controller's compute API base, e.g.
	// https://ctl:8774 (no /v2.1).
	ControllerURL string
	// IdentityURL is the Keystone v3 base, e.g. https://ctl:8774/v3 or
	// https://keystone:35357/v3 ("" = ControllerURL + "/v3", the built-in
	// identity).
	IdentityURL string
	// CACertFile, if set, is the PEM bundle trusted for the controller and
	// identity (their certificates are usually self-signed).
	CACertFile string
	// RequestTimeout bounds each call to the controller or identity.
	RequestTimeout time.Duration
	// Log receives the server's log lines; nil discards them.
	Log Logger
	// Transport overrides the HTTP transport to the controller (tests).
	Transport http.RoundTripper
	// AssetsDir, if set, serves the UI from this directory instead of the
	// embedded copy (development: edit and reload without rebuilding).
	AssetsDir string
}

// DefaultRequestTimeout bounds one relayed call.
const DefaultRequestTimeout = 60 * time.Second

// NewConfig returns a Config with defaults.
func NewConfig(controllerURL string) Config {
	return Config{ControllerURL: controllerURL, RequestTimeout: DefaultRequestTimeout}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.ControllerURL == "" {
		return errors.New("webui: controller URL is required")
	}
	for _, u := range []string{c.ControllerURL, c.IdentityURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("webui: bad URL %q: %w", u, err)
		}
		if p.Scheme != "https" && p.Scheme != "http" || p.Host == "" {
			return fmt.Errorf("webui: URL %q must be http(s)://host[:port]", u)
		}
	}
	if c.RequestTimeout <= 0 {
		return errors.New("webui: request timeout must be > 0")
	}
	if c.AssetsDir != "" {
		if _, err := os.Stat(filepath.Join(c.AssetsDir, "index.html")); err != nil {
			return fmt.Errorf("webui: assets directory: %w", err)
		}
	}
	return nil
}

// Server is the webui's HTTP handler. It keeps no per-user state: the
// token is in the browser's cookie. It is safe for concurrent use and
// read-only after New.
type Server struct {
	cfg        Config
	controller *url.URL
	identity   *url.URL // ends in /v3
	client     *http.Client
	mux        *http.ServeMux
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = nopLogger{}
	}
	ctl, _ := url.Parse(strings.TrimRight(cfg.ControllerURL, "/"))
	idURL := cfg.IdentityURL
	if idURL == "" {
		idURL = ctl.String() + "/v3"
	}
	idURL = strings.TrimRight(idURL, "/")
	if !strings.HasSuffix(idURL, "/v3") {
		idURL += "/v3"
	}
	id, _ := url.Parse(idURL)
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.CACertFile != "" {
			pem, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("webui: read controller CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("webui: no certificate in %s", cfg.CACertFile)
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		t.MaxIdleConnsPerHost = 32
		tr = t
	}
	s := &Server{cfg: cfg, controller: ctl, identity: id,
		client: &http.Client{Transport: tr, Timeout: cfg.RequestTimeout}}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	fsys := Assets()
	if s.cfg.AssetsDir != "" {
		fsys = os.DirFS(s.cfg.AssetsDir)
	}
	m.Handle("/", assetHandler(fsys))
	m.HandleFunc("POST /session", s.signIn)
	m.HandleFunc("GET /session", s.whoAmI)
	m.HandleFunc("DELETE /session", s.signOut)
	m.Handle("/api/", s.relay())
	s.mux = m
}

// ServeHTTP adds the security headers and requires X-Ciao-Webui on
// requests that change state.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		if r.Header.Get("X-Ciao-Webui") == "" {
			writeError(w, http.StatusForbidden, "request refused: the X-Ciao-Webui header is missing (cross-site request?)")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Listen opens a TLS listener on addr with cert (see LoadOrGenerateCert).
func Listen(addr string, cert tls.Certificate) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// Serve serves h on ln until ctx is cancelled, then shuts down, letting
// in-flight requests finish for up to grace. It returns nil on a clean
// shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
