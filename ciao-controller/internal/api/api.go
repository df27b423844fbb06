// Package api serves ciao-controller's HTTP API on the compute port
// (default 8774): the OpenStack compute subset for servers and flavors
// (controller.md §6.2) and Ciao's own endpoints (§6.3): tenants, quotas,
// events, resources, the bulk server action, and (admin.go) nodes, CNCIs,
// traces, per-workload listings and node evacuation; and (versions.go)
// what OpenStack clients need besides: the version documents they
// discover endpoints with, which take no token, and flavors' (empty)
// os-extra_specs; and (openstack.go) the quota sets, limits, usage, key
// pairs, hypervisors and server lookup by name that
// python-openstackclient reads. And (workloads.go)
// the 2017 workloads API under /workloads and /{tenant}/workloads.
// Every other route needs an X-Auth-Token
// that the configured Authenticator accepts; tenant routes need a token
// of that tenant or an admin token, admin routes an admin token (§3.3,
// §3.4).
//
// Errors are the OpenStack error object with Content-Type
// application/json (Q1 recommendation):
//
//	{"error":{"code":404,"name":"Not Found","message":"..."}}
//
// Status codes: 400 malformed JSON or bad counts, 401 missing/refused
// token, 403 over quota, another tenant's server, another project's
// quotas or usage, or a member on an admin-only OpenStack route, 404
// unknown server or flavor (or path), 405 a known path asked with a method none of its
// routes takes (with an Allow header), 413 oversized body, 500
// precondition failures (§4.8) and internal errors, 503 unsupported
// action, scheduler unavailable or tenant CNCI not up.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/images"
	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/golang/glog"
	"github.com/gorilla/mux"
)

// Compute is the policy the API drives; *controller.Controller
// implements it.
type Compute interface {
	Launch(ctx context.Context, tenantID, workloadID string, n int, label string) ([]datastore.Instance, error)
	Stop(ctx context.Context, tenantID, id string) error
	Restart(ctx context.Context, tenantID, id string) error
	Delete(ctx context.Context, tenantID, id string) error
	ConfirmTenant(ctx context.Context, tenantID string) error
}

var _ Compute = (*controller.Controller)(nil)

// DefaultMaxBody bounds request bodies.
const DefaultMaxBody = 64 << 10

// Config configures the API handler.
type Config struct {
	Compute Compute
	Store   datastore.Store // read side: listings, quotas, events
	Auth    Authenticator
	// MaxBody is the largest request body accepted (413 beyond).
	MaxBody int64
	// Images, if set, serves the image API under /v2/images.
	Images *images.Service
	// Metrics, if set, counts and times every request.
	Metrics *metrics.Metrics
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Compute == nil || c.Store == nil:
		return errors.New("api config: compute and store are required")
	case c.Auth == nil:
		return errors.New("api config: no authenticator")
	case c.MaxBody <= 0:
		return errors.New("api config: max body must be > 0")
	}
	return nil
}

// server holds the handlers' dependencies; it is read-only after New.
type server struct {
	cfg Config
}

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	r, err := newRouter(cfg)
	if err != nil {
		return nil, err
	}
	return instrument(cfg.Metrics, r), nil
}

// newRouter builds the routes (New without the metrics).
func newRouter(cfg Config) (*mux.Router, error) {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &server{cfg: cfg}
	r := mux.NewRouter()
	r.Use(routeName)
	r.MethodNotAllowedHandler = methodNotAllowed(r)
	tenant := func(path, method string, h http.HandlerFunc) {
		r.Handle(path, s.auth(false, h)).Methods(method)
	}
	admin := func(path, method string, h http.HandlerFunc) {
		r.Handle(path, s.auth(true, h)).Methods(method)
	}
	// Version discovery, without a token (versions.go).
	r.HandleFunc("/", s.rootVersions).Methods(http.MethodGet)
	r.HandleFunc("/v2.1", s.computeVersionDoc).Methods(http.MethodGet)
	r.HandleFunc("/v2.1/", s.computeVersionDoc).Methods(http.MethodGet)
	// Literal admin routes first, so "tenants" or "events" is never taken
	// as a tenant id.
	admin("/v2.1/tenants", http.MethodGet, s.listTenants)
	admin("/v2.1/events", http.MethodGet, s.listEvents)
	admin("/v2.1/events", http.MethodDelete, s.clearEvents)
	// ciao-cli's admin endpoints (admin.go).
	admin("/v2.1/nodes", http.MethodGet, s.listNodes)
	admin("/v2.1/nodes/summary", http.MethodGet, s.nodeSummary)
	admin("/v2.1/nodes/{node}/servers/detail", http.MethodGet, s.nodeServers)
	admin("/v2.1/nodes/{node}/evacuate", http.MethodPost, s.evacuateNode)
	admin("/v2.1/cncis", http.MethodGet, s.listCNCIs)
	admin("/v2.1/cncis/{cnci}/detail", http.MethodGet, s.showCNCI)
	admin("/v2.1/traces", http.MethodGet, s.listTraces)
	admin("/v2.1/traces/{label}", http.MethodGet, s.showTrace)
	admin("/v2.1/flavors/{flavor}/servers/detail", http.MethodGet, s.flavorServers)
	tenant("/v2.1/tenants/{tenant}/quotas", http.MethodGet, s.listQuotas) // quotas.go
	admin("/v2.1/tenants/{tenant}/quotas", http.MethodPut, s.updateQuotas)

	tenant("/v2.1/{tenant}/servers", http.MethodPost, s.createServers)
	tenant("/v2.1/{tenant}/servers/detail", http.MethodGet, s.listServers)
	tenant("/v2.1/{tenant}/servers/action", http.MethodPost, s.bulkAction)
	tenant("/v2.1/{tenant}/servers/{server}", http.MethodGet, s.showServer)
	tenant("/v2.1/{tenant}/servers/{server}", http.MethodDelete, s.deleteServer)
	tenant("/v2.1/{tenant}/servers/{server}/action", http.MethodPost, s.serverAction)
	tenant("/v2.1/{tenant}/flavors", http.MethodGet, s.listFlavors)
	tenant("/v2.1/{tenant}/flavors/detail", http.MethodGet, s.listFlavorDetails)
	tenant("/v2.1/{tenant}/flavors/{flavor}", http.MethodGet, s.showFlavor)
	tenant("/v2.1/{tenant}/flavors/{flavor}/os-extra_specs", http.MethodGet, s.flavorExtraSpecs) // versions.go
	tenant("/v2.1/{tenant}/quotas", http.MethodGet, s.quotas)
	tenant("/v2.1/{tenant}/events", http.MethodGet, s.listEvents)
	tenant("/v2.1/{tenant}/resources", http.MethodGet, s.resources)
	s.openStackRoutes(tenant, admin) // openstack.go
	s.workloadRoutes(tenant, admin)  // workloads.go
	if cfg.Images != nil {
		cfg.Images.Register(r, s.imageAuth)
	}
	return r, nil
}

// auth checks the token (§3.3) and bounds the body before h runs.
func (s *server) auth(adminOnly bool, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Auth-Token")
		if tok == "" {
			unauthorized(w)
			return
		}
		id, err := s.cfg.Auth.Authenticate(r.Context(), tok)
		if err != nil {
			glog.V(1).Infof("%s %s: token refused: %v", r.Method, r.URL.Path, err)
			unauthorized(w)
			return
		}
		t := mux.Vars(r)["tenant"]
		if !id.IsAdmin() && (adminOnly || t == "" || t != id.TenantID) {
			glog.V(1).Infof("%s %s: tenant %s not allowed", r.Method, r.URL.Path, id.TenantID)
			unauthorized(w)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, id)))
	})
}

func unauthorized(w http.ResponseWriter) {
	http.Error(w, "Unauthorized", http.StatusUnauthorized)
}

// errorBody is the OpenStack error object.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Name, b.Error.Message = code, http.StatusText(code), msg
	writeJSON(w, code, b)
}

// fail maps a policy, store or workloads-API error to its status (§6.1
// mapping with the Q3 recommendation: unknown ids are 404).
func fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, datastore.ErrQuota):
		code = http.StatusForbidden
	case errors.Is(err, controller.ErrNotOwner):
		code = http.StatusForbidden
	case errors.Is(err, datastore.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, datastore.ErrInvalid), errors.Is(err, controller.ErrWorkloadSpec):
		code = http.StatusBadRequest
	case errors.Is(err, controller.ErrWorkloadPublic), errors.Is(err, controller.ErrWorkloadInternal):
		code = http.StatusForbidden
	case errors.Is(err, datastore.ErrInUse):
		code = http.StatusConflict
	case errors.Is(err, controller.ErrUnavailable), errors.Is(err, controller.ErrCNCI):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusInternalServerError {
		glog.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
	} else {
		glog.V(1).Infof("%s %s: %d: %v", r.Method, r.URL.Path, code, err)
	}
	writeError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		glog.V(1).Infof("writing response: %v", err)
	}
}
