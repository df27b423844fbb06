package api

// The ciao "legacy" endpoints of controller.md §6.3 that ciao-cli's node,
// trace, tenant -resources and instance list -cn/-workload commands use,
// and the bulk server action (§6.3.1). Routes are registered in New.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// Node statuses the launchers report (§6.3.6).
const (
	nodeReady       = "READY"
	nodeFull        = "FULL"
	nodeOffline     = "OFFLINE"
	nodeMaintenance = "MAINTENANCE"
)

// nodeJSON is the Node object of §6.3.6; updated is the receive time of
// the last STATS (the §4.11 recommendation) instead of the zero time.
type nodeJSON struct {
	ID                    string    `json:"id"`
	Hostname              string    `json:"hostname"`
	Updated               time.Time `json:"updated"`
	Status                string    `json:"status"`
	MemTotal              int       `json:"ram_total"`
	MemAvailable          int       `json:"ram_available"`
	DiskTotal             int       `json:"disk_total"`
	DiskAvailable         int       `json:"disk_available"`
	Load                  int       `json:"load"`
	OnlineCPUs            int       `json:"online_cpus"`
	TotalInstances        int       `json:"total_instances"`
	TotalRunningInstances int       `json:"total_running_instances"`
	TotalPendingInstances int       `json:"total_pending_instances"`
	TotalPausedInstances  int       `json:"total_paused_instances"`
}

// page applies marker, offset and limit (query parameters) to n sorted
// ids: it returns the [lo, hi) range to serve. An unknown marker is 400.
func page(w http.ResponseWriter, r *http.Request, ids []string) (lo, hi int, ok bool) {
	limit, err := intParam(r, "limit")
	if err == nil {
		lo, err = intParam(r, "offset")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, 0, false
	}
	if m := r.URL.Query().Get("marker"); m != "" {
		i := sort.SearchStrings(ids, m)
		if i == len(ids) || ids[i] != m {
			writeError(w, http.StatusBadRequest, "marker "+m+" not found")
			return 0, 0, false
		}
		lo = i + 1
	}
	lo = min(lo, len(ids))
	hi = len(ids)
	if limit > 0 {
		hi = min(hi, lo+limit)
	}
	return lo, hi, true
}

// listNodes is GET /v2.1/nodes (admin): the nodes that reported STATS with
// a node part and have not disconnected since, sorted by id.
func (s *server) listNodes(w http.ResponseWriter, r *http.Request) {
	ns, err := s.cfg.Store.Nodes(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.NodeID
	}
	lo, hi, ok := page(w, r, ids)
	if !ok {
		return
	}
	out := make([]nodeJSON, 0, hi-lo)
	for _, n := range ns[lo:hi] {
		j := nodeJSON{ID: n.NodeID, Hostname: n.Hostname, Updated: n.Time, Status: n.Status,
			MemTotal: n.MemTotalMB, MemAvailable: n.MemAvailableMB, DiskTotal: n.DiskTotalMB,
			DiskAvailable: n.DiskAvailableMB, Load: n.Load, OnlineCPUs: n.CPUsOnline}
		p, err := s.cfg.Store.Instances(r.Context(), datastore.InstanceQuery{NodeID: n.NodeID})
		if err != nil {
			fail(w, r, err)
			return
		}
		for _, in := range p.Instances {
			j.TotalInstances++
			switch in.State {
			case datastore.StateActive:
				j.TotalRunningInstances++
			case datastore.StatePending:
				j.TotalPendingInstances++
			case datastore.StateExited:
				j.TotalPausedInstances++
			}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, struct {
		Nodes []nodeJSON `json:"nodes"`
	}{out})
}

// nodeSummary is GET /v2.1/nodes/summary (admin, §6.3.7).
func (s *server) nodeSummary(w http.ResponseWriter, r *http.Request) {
	ns, err := s.cfg.Store.Nodes(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	var c struct {
		Total       int `json:"total_nodes"`
		Ready       int `json:"total_nodes_ready"`
		Full        int `json:"total_nodes_full"`
		Offline     int `json:"total_nodes_offline"`
		Maintenance int `json:"total_nodes_maintenance"`
	}
	for _, n := range ns {
		c.Total++
		switch n.Status {
		case nodeReady:
			c.Ready++
		case nodeFull:
			c.Full++
		case nodeOffline:
			c.Offline++
		case nodeMaintenance:
			c.Maintenance++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cluster": c})
}

// nodeServerJSON is one entry of GET /v2.1/nodes/{node}/servers/detail.
type nodeServerJSON struct {
	ID        string    `json:"id"`
	NodeID    string    `json:"node_id"`
	Updated   time.Time `json:"updated"`
	Status    string    `json:"status"`
	TenantID  string    `json:"tenant_id"`
	IPv4      string    `json:"IPv4"`
	CPUsUsage int       `json:"cpus_usage"`
	RAMUsage  int       `json:"ram_usage"`
	DiskUsage int       `json:"disk_usage"`
}

// nodeServers is GET /v2.1/nodes/{node}/servers/detail (admin, §6.3.8):
// the latest statistics of every instance the node reported, sorted by
// id (the recommendation), CNCIs and unknown instances with an empty
// tenant and address. An unknown node has no servers.
func (s *server) nodeServers(w http.ResponseWriter, r *http.Request) {
	node := mux.Vars(r)["node"]
	st, err := s.cfg.Store.NodeInstanceStats(r.Context(), node)
	if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		fail(w, r, err)
		return
	}
	ids := make([]string, len(st))
	for i, e := range st {
		ids[i] = e.InstanceID
	}
	lo, hi, ok := page(w, r, ids)
	if !ok {
		return
	}
	out := make([]nodeServerJSON, 0, hi-lo)
	for _, e := range st[lo:hi] {
		j := nodeServerJSON{ID: e.InstanceID, NodeID: node, Updated: e.Time, Status: e.State,
			CPUsUsage: e.CPUUsage, RAMUsage: e.MemoryUsageMB, DiskUsage: e.DiskUsageMB}
		if in, err := s.cfg.Store.Instance(r.Context(), e.InstanceID); err == nil {
			j.TenantID, j.IPv4 = in.TenantID, in.IP
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, struct {
		Total   int              `json:"total_servers"`
		Servers []nodeServerJSON `json:"servers"`
	}{len(st), out})
}

type subnetJSON struct {
	Subnet string `json:"subnet_cidr"`
}

// cnciJSON is the CNCI object of §6.3.9. Subnets are the tenant's own
// (quirk b fixed) and read "Subnet <cidr>" with the real /24 prefix.
type cnciJSON struct {
	ID        string       `json:"id"`
	TenantID  string       `json:"tenant_id"`
	IPv4      string       `json:"IPv4"`
	Geography string       `json:"geography"`
	Subnets   []subnetJSON `json:"subnets"`
}

func (s *server) cnciOf(r *http.Request, c datastore.CNCI) (cnciJSON, error) {
	j := cnciJSON{ID: c.ID, TenantID: c.TenantID, IPv4: c.IP, Subnets: []subnetJSON{}}
	sns, err := s.cfg.Store.Subnets(r.Context(), c.TenantID)
	if err != nil {
		return j, err
	}
	for _, sn := range sns {
		j.Subnets = append(j.Subnets, subnetJSON{"Subnet " + sn})
	}
	return j, nil
}

// listCNCIs is GET /v2.1/cncis (admin): one entry per tenant with a CNCI.
func (s *server) listCNCIs(w http.ResponseWriter, r *http.Request) {
	cs, err := s.cfg.Store.CNCIs(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]cnciJSON, 0, len(cs))
	for _, c := range cs {
		if c.ID == "" {
			continue
		}
		j, err := s.cnciOf(r, c)
		if err != nil {
			fail(w, r, err)
			return
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, struct {
		CNCIs []cnciJSON `json:"cncis"`
	}{out})
}

// showCNCI is GET /v2.1/cncis/{cnci}/detail (admin): the bare CNCI
// object; an unknown id is 404 (the §6.3.10 recommendation).
func (s *server) showCNCI(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["cnci"]
	cs, err := s.cfg.Store.CNCIs(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	for _, c := range cs {
		if c.ID == id {
			j, err := s.cnciOf(r, c)
			if err != nil {
				fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, j)
			return
		}
	}
	fail(w, r, fmt.Errorf("cnci %s: %w", id, datastore.ErrNotFound))
}

// flavorServers is GET /v2.1/flavors/{flavor}/servers/detail (admin,
// §6.3.2): every tenant's instances of one workload, paged like the
// tenant listing; total_servers counts the filtered list.
func (s *server) flavorServers(w http.ResponseWriter, r *http.Request) {
	s.serveMatching(w, r, datastore.InstanceQuery{WorkloadID: mux.Vars(r)["flavor"]}, nil)
}

// usageBucket is the resolution of the usage history; usageLookback is
// how far before the window a sample still counts (launchers report
// every few seconds to a minute).
const (
	usageBucket   = time.Minute
	usageLookback = 5 * time.Minute
)

type usageJSON struct {
	VCPU      int       `json:"cpus_usage"`
	Memory    int       `json:"ram_usage"`
	Disk      int       `json:"disk_usage"`
	Timestamp time.Time `json:"timestamp"`
}

// resources is GET /v2.1/{tenant}/resources?start_date=&end_date= (§6.3.3):
// the tenant's usage in [start, end), one entry per minute in which its
// instances reported statistics, each the sum over the tenant's current
// instances of their latest sample up to that minute. It is rebuilt from
// the stored instance statistics, so it survives a restart; instances
// already deleted no longer count. Missing or malformed dates are 400.
func (s *server) resources(w http.ResponseWriter, r *http.Request) {
	var when [2]time.Time
	for i, name := range []string{"start_date", "end_date"} {
		v := r.URL.Query().Get(name)
		if v == "" {
			writeError(w, http.StatusBadRequest, "missing "+name+" (RFC 3339)")
			return
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q is not an RFC 3339 time", name, v))
			return
		}
		when[i] = t
	}
	start, end := when[0], when[1]
	p, err := s.cfg.Store.Instances(r.Context(), datastore.InstanceQuery{TenantID: mux.Vars(r)["tenant"]})
	if err != nil {
		fail(w, r, err)
		return
	}
	// Per instance, its samples oldest first; buckets are the minutes
	// that saw at least one sample.
	hist := make([][]datastore.InstanceStats, 0, len(p.Instances))
	buckets := map[time.Time]bool{}
	for _, in := range p.Instances {
		// A sample shortly before start carries the usage into the window.
		h, err := s.cfg.Store.InstanceHistory(r.Context(), in.ID, start.Add(-usageLookback))
		if err != nil && !errors.Is(err, datastore.ErrNotFound) {
			fail(w, r, err)
			return
		}
		hist = append(hist, h)
		for _, e := range h {
			if !e.Time.Before(start) && e.Time.Before(end) {
				buckets[e.Time.Truncate(usageBucket)] = true
			}
		}
	}
	times := make([]time.Time, 0, len(buckets))
	for t := range buckets {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var out []usageJSON
	for _, t := range times {
		u := usageJSON{Timestamp: t}
		upTo := t.Add(usageBucket)
		for _, h := range hist {
			// the latest sample before the end of the bucket
			i := sort.Search(len(h), func(i int) bool { return !h[i].Time.Before(upTo) }) - 1
			if i >= 0 {
				u.VCPU += h[i].CPUUsage
				u.Memory += h[i].MemoryUsageMB
				u.Disk += h[i].DiskUsageMB
			}
		}
		out = append(out, u)
	}
	writeJSON(w, http.StatusOK, struct {
		Usage []usageJSON `json:"usage"`
	}{out})
}

type traceSummaryJSON struct {
	Label     string `json:"label"`
	Instances int    `json:"instances"`
}

// listTraces is GET /v2.1/traces (admin, §6.3.12).
func (s *server) listTraces(w http.ResponseWriter, r *http.Request) {
	ts, err := s.cfg.Store.TraceSummaries(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]traceSummaryJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, traceSummaryJSON{t.Label, t.Instances})
	}
	writeJSON(w, http.StatusOK, struct {
		Summaries []traceSummaryJSON `json:"summaries"`
	}{out})
}

// traceStats is the summary object of GET /v2.1/traces/{label}.
type traceStats struct {
	NumInstances             int     `json:"num_instances"`
	TotalElapsed             float64 `json:"total_elapsed"`
	AverageElapsed           float64 `json:"average_elapsed"`
	AverageControllerElapsed float64 `json:"average_controller_elapsed"`
	AverageLauncherElapsed   float64 `json:"average_launcher_elapsed"`
	AverageSchedulerElapsed  float64 `json:"average_scheduler_elapsed"`
	VarianceController       float64 `json:"controller_variance"`
	VarianceLauncher         float64 `json:"launcher_variance"`
	VarianceScheduler        float64 `json:"scheduler_variance"`
}

// summarize computes §4.13's per-label statistics in seconds. A frame
// missing a timestamp contributes 0 for that part.
func summarize(frames []datastore.TraceFrame) traceStats {
	var st traceStats
	st.NumInstances = len(frames)
	if len(frames) == 0 {
		return st
	}
	var first, last time.Time
	total := make([]float64, len(frames))
	ctl := make([]float64, len(frames))
	sch := make([]float64, len(frames))
	lau := make([]float64, len(frames))
	secs := func(a, b time.Time) float64 {
		if a.IsZero() || b.IsZero() {
			return 0
		}
		return b.Sub(a).Seconds()
	}
	for i, f := range frames {
		if !f.Start.IsZero() && (first.IsZero() || f.Start.Before(first)) {
			first = f.Start
		}
		if f.End.After(last) {
			last = f.End
		}
		total[i] = secs(f.Start, f.End)
		for _, h := range f.Hops {
			switch {
			case h.Rx.IsZero() && !h.Tx.IsZero(): // the sender (controller)
				ctl[i] = secs(f.Start, h.Tx)
			case h.Tx.IsZero() && !h.Rx.IsZero(): // the final receiver (launcher)
				lau[i] = secs(h.Rx, f.End)
			case !h.Tx.IsZero() && !h.Rx.IsZero(): // a forwarder (scheduler)
				sch[i] = secs(h.Rx, h.Tx)
			}
		}
	}
	st.TotalElapsed = secs(first, last)
	st.AverageElapsed, _ = meanVar(total)
	st.AverageControllerElapsed, st.VarianceController = meanVar(ctl)
	st.AverageSchedulerElapsed, st.VarianceScheduler = meanVar(sch)
	st.AverageLauncherElapsed, st.VarianceLauncher = meanVar(lau)
	return st
}

// meanVar returns the mean and the population variance of xs.
func meanVar(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	variance /= float64(len(xs))
	if math.IsNaN(variance) {
		variance = 0
	}
	return mean, variance
}

// showTrace is GET /v2.1/traces/{label} (admin); an unknown label has an
// all-zero summary, as at the baseline.
func (s *server) showTrace(w http.ResponseWriter, r *http.Request) {
	fs, err := s.cfg.Store.TraceFrames(r.Context(), mux.Vars(r)["label"])
	if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Summary traceStats `json:"summary"`
		Frames  []any      `json:"frames"`
	}{summarize(fs), nil})
}

// bulkAction is POST /v2.1/{tenant}/servers/action (§6.3.1): os-start,
// os-stop or os-delete on the listed servers, or, with none listed, on
// every instance of the tenant in a state the action applies to (exited,
// active, any). Listed servers are checked first: an unknown one is 404,
// another tenant's 403 (the recommendation), and nothing is done. The
// actions' own errors (an instance not yet on a node) are ignored, as at
// the baseline.
func (s *server) bulkAction(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Action  string   `json:"action"`
		Servers []string `json:"servers"`
	}
	if !decode(w, r, &req) {
		return
	}
	t := mux.Vars(r)["tenant"]
	var act func(id string) error
	var applies func(state string) bool
	ctx := r.Context()
	switch req.Action {
	case "os-start":
		act = func(id string) error { return s.cfg.Compute.Restart(ctx, t, id) }
		applies = func(st string) bool { return st == datastore.StateExited }
	case "os-stop":
		act = func(id string) error { return s.cfg.Compute.Stop(ctx, t, id) }
		applies = func(st string) bool { return st == datastore.StateActive }
	case "os-delete":
		act = func(id string) error { return s.cfg.Compute.Delete(ctx, t, id) }
		applies = func(string) bool { return true }
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("Unsupported action %q: want os-start, os-stop or os-delete", req.Action))
		return
	}
	ids := req.Servers
	if len(ids) > 0 {
		for _, id := range ids {
			in, err := s.cfg.Store.Instance(ctx, id)
			if err == nil && in.TenantID != t {
				err = controller.ErrNotOwner
			}
			if err != nil {
				fail(w, r, fmt.Errorf("server %s: %w", id, err))
				return
			}
		}
	} else {
		p, err := s.cfg.Store.Instances(ctx, datastore.InstanceQuery{TenantID: t})
		if err != nil {
			fail(w, r, err)
			return
		}
		for _, in := range p.Instances {
			if applies(in.State) {
				ids = append(ids, in.ID)
			}
		}
	}
	for _, id := range ids {
		_ = act(id) // §6.3.1: per-instance errors are ignored
	}
	writeJSON(w, http.StatusAccepted, nil)
}

// evacuator is the optional part of Compute that drains a node.
type evacuator interface {
	Evacuate(ctx context.Context, nodeID string) error
}

// evacuateNode is POST /v2.1/nodes/{node}/evacuate (admin; the Sep 2017
// node maintenance, controller.md §14): 202 once EVACUATE is sent, 404 for
// a node that does not report statistics.
func (s *server) evacuateNode(w http.ResponseWriter, r *http.Request) {
	ev, ok := s.cfg.Compute.(evacuator)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this controller cannot evacuate nodes")
		return
	}
	if err := ev.Evacuate(r.Context(), mux.Vars(r)["node"]); err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, nil)
}
