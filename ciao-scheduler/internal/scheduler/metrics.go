package scheduler

import (
	"net/http"

	"github.com/ciao-project/ciao/payloads"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the scheduler's Prometheus series, in a registry of its own
// so several schedulers can live in one test process. The hot path only
// touches pre-resolved children (no label lookups per placement).
type metrics struct {
	reg *prometheus.Registry

	nodes                                 *prometheus.GaugeVec
	computeNodes, networkNodes            prometheus.Gauge
	controllers, cnciAgents               prometheus.Gauge
	placements                            *prometheus.CounterVec
	placedCompute, placedNetwork          prometheus.Counter
	failures                              *prometheus.CounterVec
	failureBy                             map[payloads.StartFailureReason]prometheus.Counter
	latency                               prometheus.Histogram
	replaced, undeliverable, slowDecoding prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.nodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ciao_scheduler", Name: "connected_clients",
		Help: "SSNTP clients connected, by role (a launcher on a node that is both compute and network node counts in both).",
	}, []string{"role"})
	m.computeNodes = m.nodes.WithLabelValues("compute_node")
	m.networkNodes = m.nodes.WithLabelValues("network_node")
	m.controllers = m.nodes.WithLabelValues("controller")
	m.cnciAgents = m.nodes.WithLabelValues("cnci_agent")

	m.placements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ciao_scheduler", Name: "placements_total",
		Help: "STARTs placed and forwarded to a node, by node type.",
	}, []string{"node_type"})
	m.placedCompute = m.placements.WithLabelValues(string(payloads.ComputeNode))
	m.placedNetwork = m.placements.WithLabelValues(string(payloads.NetworkNode))

	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ciao_scheduler", Name: "placement_failures_total",
		Help: "STARTs answered with StartFailure by the scheduler, by reason.",
	}, []string{"reason"})
	m.failureBy = make(map[payloads.StartFailureReason]prometheus.Counter)
	for _, r := range []payloads.StartFailureReason{
		payloads.StartFullCloud, payloads.StartNoComputeNodes, payloads.StartNoNetworkNodes,
		payloads.StartInvalidPayload, payloads.StartInvalidData,
	} {
		m.failureBy[r] = m.failures.WithLabelValues(string(r))
	}

	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ciao_scheduler", Name: "placement_duration_seconds",
		Help:    "Time from reading a START to having written it to the chosen node (or answered the failure).",
		Buckets: prometheus.ExponentialBucketsRange(2e-6, 0.5, 18),
	})
	m.replaced = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ciao_scheduler", Name: "placements_retried_total",
		Help: "STARTs placed again because the chosen node had disconnected.",
	})
	m.undeliverable = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ciao_scheduler", Name: "undeliverable_frames_total",
		Help: "Frames the scheduler routed to a client that was not connected or whose connection failed.",
	})
	m.slowDecoding = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ciao_scheduler", Name: "slow_path_decodings_total",
		Help: "START and READY payloads the fast reader left to the full YAML decoder.",
	})
	m.reg.MustRegister(m.nodes, m.placements, m.failures, m.latency, m.replaced, m.undeliverable, m.slowDecoding,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) failure(r payloads.StartFailureReason) {
	if c, ok := m.failureBy[r]; ok {
		c.Inc()
		return
	}
	m.failures.WithLabelValues(string(r)).Inc()
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
