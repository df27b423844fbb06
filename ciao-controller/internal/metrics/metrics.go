// Package metrics holds ciao-controller's Prometheus series, in a
// registry of its own so several controllers can live in one test
// process (the shape of ciao-scheduler's metrics). The API counts
// requests by route template, method and code; the policy counts launches
// and received frames; the datastore reports how long its operations
// take; instances by state are read from a callback at scrape time.
//
// A nil *Metrics is valid and records nothing, so packages can take one
// optionally.
package metrics

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the controller's registry and series. Its methods are safe
// for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	launches *prometheus.CounterVec
	frames   *prometheus.CounterVec
	statsIns prometheus.Counter
	store    *prometheus.HistogramVec

	mu     sync.Mutex
	states func() map[string]int // guarded by mu: instances by state
	stateD *prometheus.Desc

	storeOps sync.Map // op name → prometheus.Observer, resolved once
}

// New returns a fresh registry with every series registered, plus the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ciao_controller", Name: "http_requests_total",
		Help: "API requests answered, by route template (\"unmatched\" for unknown paths), method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ciao_controller", Name: "http_request_duration_seconds",
		Help:    "Time from reading an API request's headers to the end of its response, by route template and method.",
		Buckets: prometheus.ExponentialBucketsRange(50e-6, 10, 18),
	}, []string{"route", "method"})
	m.launches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ciao_controller", Name: "launches_total",
		Help: "Instances asked for by launch requests, by result: started (START sent), refused (quota, address, bad request) or unsent (scheduler unavailable).",
	}, []string{"result"})
	m.frames = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ciao_controller", Name: "ssntp_frames_received_total",
		Help: "SSNTP frames received from the scheduler, by kind (command, event, error) and operand name.",
	}, []string{"kind", "operand"})
	m.statsIns = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ciao_controller", Name: "stats_instances_total",
		Help: "Instance entries received in STATS reports.",
	})
	m.store = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ciao_controller", Name: "datastore_duration_seconds",
		Help:    "Duration of datastore operations, by operation.",
		Buckets: prometheus.ExponentialBucketsRange(5e-6, 5, 18),
	}, []string{"op"})
	m.stateD = prometheus.NewDesc("ciao_controller_instances", "Instances known to the controller, by state.", []string{"state"}, nil)
	m.reg.MustRegister(m.requests, m.latency, m.launches, m.frames, m.statsIns, m.store, (*stateCollector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the underlying registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Mux returns a mux with /metrics and, if withPprof, the Go profiler
// under /debug/pprof/.
func (m *Metrics) Mux(withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// SetInstanceStates sets the callback that counts instances by state at
// scrape time.
func (m *Metrics) SetInstanceStates(f func() map[string]int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.states = f
	m.mu.Unlock()
}

// Request records one answered API request.
func (m *Metrics) Request(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Launch results.
const (
	LaunchStarted = "started"
	LaunchRefused = "refused"
	LaunchUnsent  = "unsent"
)

// Launches adds n instances with the given result.
func (m *Metrics) Launches(result string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.launches.WithLabelValues(result).Add(float64(n))
}

// Frame counts one received SSNTP frame.
func (m *Metrics) Frame(kind, operand string) {
	if m == nil {
		return
	}
	m.frames.WithLabelValues(kind, operand).Inc()
}

// StatsInstances counts instance entries of a STATS report.
func (m *Metrics) StatsInstances(n int) {
	if m == nil {
		return
	}
	m.statsIns.Add(float64(n))
}

// StoreOp records the duration of one datastore operation.
func (m *Metrics) StoreOp(op string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.storeOps.Load(op)
	if !ok {
		o, _ = m.storeOps.LoadOrStore(op, m.store.WithLabelValues(op))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// stateCollector exports the instance-state callback as a gauge.
type stateCollector Metrics

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.stateD }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f := c.states
	c.mu.Unlock()
	if f == nil {
		return
	}
	for state, n := range f() {
		ch <- prometheus.MustNewConstMetric(c.stateD, prometheus.GaugeValue, float64(n), state)
	}
}
