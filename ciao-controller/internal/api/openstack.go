package api

// The compute endpoints an unchanged OpenStack client (python3-
// openstackclient, novaclient, openstacksdk) calls besides servers and
// flavors, computed from the controller's own tenant limits, usage and
// node list (controller.md §4.5, §6.3.4, §6.3.6):
//
//	GET /v2.1/{tenant}/os-quota-sets/{project}[/detail|/defaults]   openstack quota show [--default]
//	PUT /v2.1/{tenant}/os-quota-sets/{project}                       openstack quota set (admin)
//	GET /v2.1/{tenant}/os-quota-class-sets/{class}                   openstack quota show --class (no limits)
//	GET /v2.1/{tenant}/limits[?tenant_id=]                           openstack limits show --absolute
//	GET /v2.1/{tenant}/os-simple-tenant-usage[/{project}]            openstack usage list / show
//	GET /v2.1/{tenant}/os-keypairs                                   openstack keypair list (always empty)
//	GET /v2.1/{tenant}/os-hypervisors[/detail|/{id}] (admin)         openstack hypervisor list / show
//	GET /v2.1/{tenant}/os-hypervisors/statistics (admin)             openstack hypervisor stats show
//	GET /v2.1/{tenant}/os-hypervisors/{id}/uptime (admin)            501: launchers do not report it
//	GET /v2.1/{tenant}/os-aggregates (admin)                         no host aggregates: []
//	GET /v2.1/{tenant}/servers[?name=&status=&flavor=]               server lookup by name
//
// All are project-scoped like the rest of the compute API: the token must
// be of {tenant} (or an admin's). A {project} other than the caller's own
// is 403 unless the caller is an admin, as Nova's default policy has it;
// admin-only routes are 403 for members. Quotas map to the datastore's
// limits: instances ↔ instances, cores ↔ vcpus, ram ↔ mem_mb (-1 =
// unlimited); Nova has no disk quota, so tenant-disk-quota is only on
// the named-quota API (quotas.go). Usage is computed from the instance
// lifetimes the datastore keeps (datastore/lifetimes.go): a deleted
// instance is billed for the time it ran, within the controller's
// -usage-retention.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// callerKey is the request context key of the caller's Identity, set by
// auth.
type callerKey struct{}

// caller is the Identity auth accepted for r.
func caller(r *http.Request) Identity {
	id, _ := r.Context().Value(callerKey{}).(Identity)
	return id
}

// openStackRoutes registers this file's routes with New's helpers.
func (s *server) openStackRoutes(tenant, _ func(path, method string, h http.HandlerFunc)) {
	tenant("/v2.1/{tenant}/servers", http.MethodGet, s.listServerRefs)
	tenant("/v2.1/{tenant}/os-quota-sets/{project}", http.MethodGet, s.showQuotaSet(quotaLimits))
	tenant("/v2.1/{tenant}/os-quota-sets/{project}", http.MethodPut, s.updateQuotaSet)
	tenant("/v2.1/{tenant}/os-quota-sets/{project}/detail", http.MethodGet, s.showQuotaSet(quotaDetail))
	tenant("/v2.1/{tenant}/os-quota-sets/{project}/defaults", http.MethodGet, s.showQuotaSet(quotaDefaults))
	tenant("/v2.1/{tenant}/os-quota-class-sets/{class}", http.MethodGet, s.showQuotaClass)
	tenant("/v2.1/{tenant}/limits", http.MethodGet, s.limits)
	tenant("/v2.1/{tenant}/os-simple-tenant-usage", http.MethodGet, s.listUsage)
	tenant("/v2.1/{tenant}/os-simple-tenant-usage/{project}", http.MethodGet, s.showUsage)
	tenant("/v2.1/{tenant}/os-keypairs", http.MethodGet, s.listKeypairs)
	tenant("/v2.1/{tenant}/os-hypervisors", http.MethodGet, s.listHypervisors(false))
	tenant("/v2.1/{tenant}/os-hypervisors/detail", http.MethodGet, s.listHypervisors(true))
	tenant("/v2.1/{tenant}/os-hypervisors/statistics", http.MethodGet, s.hypervisorStatistics)
	tenant("/v2.1/{tenant}/os-hypervisors/{hypervisor}", http.MethodGet, s.showHypervisor)
	tenant("/v2.1/{tenant}/os-hypervisors/{hypervisor}/uptime", http.MethodGet, s.hypervisorUptime)
	tenant("/v2.1/{tenant}/os-aggregates", http.MethodGet, s.listAggregates)
}

// mayRead reports, after writing a 403 if not, whether the caller may
// read or change project's data: its own project, or any as an admin.
func mayRead(w http.ResponseWriter, r *http.Request, project string) bool {
	id := caller(r)
	if id.IsAdmin() || project == id.TenantID {
		return true
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("project %s: a token of that project or an admin token is required", project))
	return false
}

// adminOnly reports, after writing a 403 if not, whether the caller is
// an admin.
func adminOnly(w http.ResponseWriter, r *http.Request) bool {
	if caller(r).IsAdmin() {
		return true
	}
	writeError(w, http.StatusForbidden, r.Method+" "+r.URL.Path+" needs an admin token")
	return false
}

// novaQuotas maps Nova's quota names to datastore resources.
var novaQuotas = []struct{ name, resource string }{
	{"instances", datastore.ResInstances},
	{"cores", datastore.ResVCPUs},
	{"ram", datastore.ResMemMB},
}

// quotaUsage is a project's limit and usage per resource; a project the
// controller does not know has no limits (-1) and no usage, as Nova
// answers for any project id.
func (s *server) quotaUsage(ctx context.Context, project string) (map[string]datastore.Quota, error) {
	out := map[string]datastore.Quota{}
	for _, n := range novaQuotas {
		out[n.resource] = datastore.Quota{Resource: n.resource, Limit: -1}
	}
	qs, err := s.cfg.Store.Quotas(ctx, project)
	if errors.Is(err, datastore.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if _, ok := out[q.Resource]; ok {
			if q.Limit == 0 { // 0 is unlimited too (§4.5)
				q.Limit = -1
			}
			out[q.Resource] = q
		}
	}
	return out, nil
}

// quotaView is what a quota set shows of each quota.
type quotaView int

const (
	quotaLimits   quotaView = iota // the limit
	quotaDetail                    // limit, in_use, reserved
	quotaDefaults                  // the limits a new project gets: none (-1)
)

// showQuotaSet is GET os-quota-sets/{project} (quotaLimits), …/detail
// (quotaDetail) and …/defaults (quotaDefaults).
func (s *server) showQuotaSet(view quotaView) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		project := mux.Vars(r)["project"]
		if !mayRead(w, r, project) {
			return
		}
		if r.URL.Query().Get("user_id") != "" {
			writeError(w, http.StatusBadRequest, "per-user quotas are not supported")
			return
		}
		s.writeQuotaSet(w, r, project, view)
	}
}

// noLimits is the quota set (or quota class set) id without limits.
func noLimits(id string) map[string]any {
	set := map[string]any{"id": id}
	for _, n := range novaQuotas {
		set[n.name] = -1
	}
	return set
}

func (s *server) writeQuotaSet(w http.ResponseWriter, r *http.Request, project string, view quotaView) {
	if view == quotaDefaults {
		writeJSON(w, http.StatusOK, map[string]any{"quota_set": noLimits(project)})
		return
	}
	qs, err := s.quotaUsage(r.Context(), project)
	if err != nil {
		fail(w, r, err)
		return
	}
	set := map[string]any{"id": project}
	for _, n := range novaQuotas {
		q := qs[n.resource]
		if view == quotaDetail {
			set[n.name] = map[string]int{"limit": q.Limit, "in_use": q.Usage, "reserved": 0}
		} else {
			set[n.name] = q.Limit
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota_set": set})
}

// showQuotaClass is GET os-quota-class-sets/{class}: there are no quota
// classes, so every class has the defaults a new project gets: no limits.
func (s *server) showQuotaClass(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"quota_class_set": noLimits(mux.Vars(r)["class"])})
}

// updateQuotaSet is PUT os-quota-sets/{project} (admin):
// {"quota_set":{"instances":N,"cores":N,"ram":MB}}, -1 for unlimited (0,
// which Nova takes as "none" and the admission check as unlimited, is
// refused);
// "force" and "tenant_id" are accepted and ignored. Any other quota, a
// value that is not an integer ≥ -1, or an empty set is 400, checked
// before anything changes. It sets the same limits as PUT
// /v2.1/tenants/{tenant}/quotas.
func (s *server) updateQuotaSet(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r) {
		return
	}
	if r.URL.Query().Get("user_id") != "" {
		writeError(w, http.StatusBadRequest, "per-user quotas are not supported")
		return
	}
	var req struct {
		QuotaSet map[string]json.RawMessage `json:"quota_set"`
	}
	if !decode(w, r, &req) {
		return
	}
	var sets []limitSet
	names := make([]string, 0, len(req.QuotaSet))
	for k := range req.QuotaSet {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "force" || k == "tenant_id" || k == "id" {
			continue
		}
		res := resourceNamed(novaQuotas, k)
		if res == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("quota %q is not supported: only instances, cores and ram", k))
			return
		}
		v, err := quotaInt(req.QuotaSet[k])
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("quota %s: %v", k, err))
			return
		}
		sets = append(sets, limitSet{res, v})
	}
	if len(sets) == 0 {
		writeError(w, http.StatusBadRequest, "no quota to set in quota_set")
		return
	}
	project := mux.Vars(r)["project"]
	if err := s.setLimits(r.Context(), project, sets); err != nil {
		fail(w, r, err)
		return
	}
	s.writeQuotaSet(w, r, project, quotaLimits)
}

// quotaInt reads a quota value: a JSON integer or a string of one, ≥ -1.
func quotaInt(raw json.RawMessage) (int, error) {
	var v int
	if err := json.Unmarshal(raw, &v); err != nil {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return 0, fmt.Errorf("value %s is not an integer", raw)
		}
		if v, err = strconv.Atoi(str); err != nil {
			return 0, fmt.Errorf("value %q is not an integer", str)
		}
	}
	switch {
	case v < -1:
		return 0, fmt.Errorf("value %d is below -1 (unlimited)", v)
	case v == 0: // Nova's "none allowed"; a limit of 0 admits everything here (§4.5)
		return 0, errors.New("0 is not supported: the controller treats a limit of 0 as unlimited; give -1 for unlimited or a positive limit")
	}
	return v, nil
}

// limits is GET /limits: the absolute limits and usage of the caller's
// project, or of ?tenant_id= (another project's only for an admin).
// There are no rate limits.
func (s *server) limits(w http.ResponseWriter, r *http.Request) {
	project := r.URL.Query().Get("tenant_id")
	if project == "" {
		project = mux.Vars(r)["tenant"]
	}
	if !mayRead(w, r, project) {
		return
	}
	qs, err := s.quotaUsage(r.Context(), project)
	if err != nil {
		fail(w, r, err)
		return
	}
	in, cpu, ram := qs[datastore.ResInstances], qs[datastore.ResVCPUs], qs[datastore.ResMemMB]
	writeJSON(w, http.StatusOK, map[string]any{"limits": map[string]any{
		"rate": []any{},
		"absolute": map[string]int{
			"maxTotalInstances": in.Limit, "totalInstancesUsed": in.Usage,
			"maxTotalCores": cpu.Limit, "totalCoresUsed": cpu.Usage,
			"maxTotalRAMSize": ram.Limit, "totalRAMUsed": ram.Usage,
		},
	}})
}

// usageTime is the time format of os-simple-tenant-usage (Python's
// isoformat, no zone: UTC).
const usageTime = "2006-01-02T15:04:05.000000"

// usagePeriod reads ?start= and ?end= (ISO 8601, as novaclient sends
// datetime.isoformat(); a date; or RFC 3339), both defaulting to now.
func usagePeriod(r *http.Request, now time.Time) (start, end time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		v := r.URL.Query().Get(name)
		if v == "" {
			return now, nil
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999999", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("%s=%q is not an ISO 8601 time", name, v)
	}
	if start, err = parse("start"); err != nil {
		return
	}
	if end, err = parse("end"); err != nil {
		return
	}
	if start.After(end) {
		err = fmt.Errorf("start %s is after end %s", start.Format(usageTime), end.Format(usageTime))
	}
	return
}

type serverUsage struct {
	InstanceID string  `json:"instance_id"`
	Name       string  `json:"name"`
	Hours      float64 `json:"hours"`
	MemoryMB   int     `json:"memory_mb"`
	LocalGB    int     `json:"local_gb"`
	VCPUs      int     `json:"vcpus"`
	TenantID   string  `json:"tenant_id"`
	Flavor     string  `json:"flavor"`
	StartedAt  string  `json:"started_at"`
	EndedAt    *string `json:"ended_at"`
	State      string  `json:"state"`
	Uptime     int64   `json:"uptime"`
}

type tenantUsage struct {
	TenantID          string        `json:"tenant_id"`
	Start             string        `json:"start"`
	Stop              string        `json:"stop"`
	TotalHours        float64       `json:"total_hours"`
	TotalLocalGBUsage float64       `json:"total_local_gb_usage"`
	TotalMemoryMB     float64       `json:"total_memory_mb_usage"`
	TotalVCPUs        float64       `json:"total_vcpus_usage"`
	ServerUsages      []serverUsage `json:"server_usages,omitempty"`
}

// usageOf sums the project's instance lifetimes over [start, end) (see
// usageFrom). ok is false when none overlaps the period.
func (s *server) usageOf(ctx context.Context, project string, start, end, now time.Time) (u tenantUsage, ok bool, err error) {
	ls, err := s.cfg.Store.Lifetimes(ctx, project, start, end)
	if err != nil {
		return tenantUsage{}, false, err
	}
	return s.usageFrom(ctx, project, ls, start, end, now)
}

// usageFrom sums lifetimes, all of project, over [start, end): each
// instance counts from its creation to its deletion (now while it
// exists), clipped to the period, so deleted instances are billed for
// the time they ran. Deleted ones are state "terminated" with ended_at;
// existing ones have their current state.
func (s *server) usageFrom(ctx context.Context, project string, ls []datastore.Lifetime, start, end, now time.Time) (u tenantUsage, ok bool, err error) {
	u = tenantUsage{TenantID: project, Start: start.Format(usageTime), Stop: end.Format(usageTime), ServerUsages: []serverUsage{}}
	var states map[string]string // of the existing instances, read once if any
	for _, l := range ls {
		if !l.End(now).After(start) {
			continue // a running instance's now before the period
		}
		hours := l.Within(start, end, now).Hours()
		su := serverUsage{InstanceID: l.InstanceID, Name: l.Name, Hours: hours, TenantID: l.TenantID, Flavor: l.WorkloadID,
			MemoryMB: l.MemMB, VCPUs: l.VCPUs, LocalGB: int(math.Ceil(float64(l.DiskMB) / 1024)),
			StartedAt: l.CreatedAt.UTC().Format(usageTime), Uptime: int64(l.End(now).Sub(l.CreatedAt).Seconds())}
		if l.DeletedAt.IsZero() {
			if states == nil {
				states = map[string]string{}
				p, err := s.cfg.Store.Instances(ctx, datastore.InstanceQuery{TenantID: project})
				if err != nil && !errors.Is(err, datastore.ErrNotFound) {
					return u, false, err
				}
				for _, in := range p.Instances {
					states[in.ID] = in.State
				}
			}
			su.State = states[l.InstanceID]
			if su.State == "" {
				su.State = datastore.StatePending
			}
		} else {
			ended := l.DeletedAt.UTC().Format(usageTime)
			su.EndedAt, su.State = &ended, "terminated"
		}
		u.TotalHours += hours
		u.TotalMemoryMB += hours * float64(su.MemoryMB)
		u.TotalVCPUs += hours * float64(su.VCPUs)
		u.TotalLocalGBUsage += hours * float64(su.LocalGB)
		u.ServerUsages = append(u.ServerUsages, su)
		ok = true
	}
	return u, ok, nil
}

// showUsage is GET os-simple-tenant-usage/{project}?start=&end=: the
// project's usage with its servers; zero when it has none in the period
// (Nova answers {} then, which `openstack usage show` fails to print).
func (s *server) showUsage(w http.ResponseWriter, r *http.Request) {
	project := mux.Vars(r)["project"]
	if !mayRead(w, r, project) {
		return
	}
	now := time.Now().UTC()
	start, end, err := usagePeriod(r, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	u, _, err := s.usageOf(r.Context(), project, start, end, now)
	if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_usage": u})
}

// listUsage is GET os-simple-tenant-usage?start=&end=[&detailed=1]:
// every project's usage for an admin, the caller's own for a member;
// projects without usage in the period are left out.
func (s *server) listUsage(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	start, end, err := usagePeriod(r, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// An admin sees every project that ran something in the period,
	// projects deleted since included; a member their own.
	tenant := caller(r).TenantID
	if caller(r).IsAdmin() {
		tenant = ""
	}
	ls, err := s.cfg.Store.Lifetimes(r.Context(), tenant, start, end)
	if err != nil {
		fail(w, r, err)
		return
	}
	detailed := r.URL.Query().Get("detailed")
	out := []tenantUsage{}
	for i := 0; i < len(ls); {
		j := i
		for j < len(ls) && ls[j].TenantID == ls[i].TenantID {
			j++
		}
		u, ok, err := s.usageFrom(r.Context(), ls[i].TenantID, ls[i:j], start, end, now)
		i = j
		if err != nil {
			fail(w, r, err)
			return
		}
		if !ok {
			continue
		}
		if !truthy(detailed) {
			u.ServerUsages = nil
		}
		out = append(out, u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_usages": out})
}

// listKeypairs is GET os-keypairs: the controller keeps no key pairs
// (instances get their keys from the workload's cloud-init).
func (s *server) listKeypairs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keypairs": []any{}})
}

type hypervisorJSON struct {
	ID                 string  `json:"id"`
	HypervisorHostname string  `json:"hypervisor_hostname"`
	State              string  `json:"state"`
	Status             string  `json:"status"`
	HypervisorType     string  `json:"hypervisor_type,omitempty"`
	HypervisorVersion  int     `json:"hypervisor_version,omitempty"`
	HostIP             string  `json:"host_ip,omitempty"`
	VCPUs              *int    `json:"vcpus,omitempty"`
	VCPUsUsed          *int    `json:"vcpus_used,omitempty"`
	MemoryMB           *int    `json:"memory_mb,omitempty"`
	MemoryMBUsed       *int    `json:"memory_mb_used,omitempty"`
	FreeRAMMB          *int    `json:"free_ram_mb,omitempty"`
	LocalGB            *int    `json:"local_gb,omitempty"`
	LocalGBUsed        *int    `json:"local_gb_used,omitempty"`
	FreeDiskGB         *int    `json:"free_disk_gb,omitempty"`
	RunningVMs         *int    `json:"running_vms,omitempty"`
	CurrentWorkload    *int    `json:"current_workload,omitempty"`
	CPUInfo            *string `json:"cpu_info,omitempty"`
	Service            any     `json:"service,omitempty"`
}

// hypervisorOf is a node as a Nova hypervisor; detail adds the capacity
// the node's last STATS reported. vcpus_used sums the vcpus of the
// instances on it.
func (s *server) hypervisorOf(ctx context.Context, n datastore.NodeStats, detail bool) (hypervisorJSON, error) {
	h := hypervisorJSON{ID: n.NodeID, HypervisorHostname: n.Hostname, State: "up", Status: "enabled"}
	if h.HypervisorHostname == "" {
		h.HypervisorHostname = n.NodeID
	}
	switch n.Status {
	case nodeOffline:
		h.State = "down"
	case nodeMaintenance:
		h.Status = "disabled"
	}
	if !detail {
		return h, nil
	}
	p, err := s.cfg.Store.Instances(ctx, datastore.InstanceQuery{NodeID: n.NodeID})
	if err != nil {
		return h, err
	}
	vcpusUsed, running := 0, 0
	for _, in := range p.Instances {
		vcpusUsed += in.Usage[datastore.ResVCPUs]
		if in.State == datastore.StateActive {
			running++
		}
	}
	intp := func(v int) *int { return &v }
	cpuInfo := "{}"
	h.HypervisorType, h.HypervisorVersion, h.HostIP = "ciao", 1, ""
	h.VCPUs, h.VCPUsUsed = intp(n.CPUsOnline), intp(vcpusUsed)
	h.MemoryMB, h.MemoryMBUsed, h.FreeRAMMB = intp(n.MemTotalMB), intp(n.MemTotalMB-n.MemAvailableMB), intp(n.MemAvailableMB)
	h.LocalGB, h.LocalGBUsed, h.FreeDiskGB = intp(n.DiskTotalMB/1024), intp((n.DiskTotalMB-n.DiskAvailableMB)/1024), intp(n.DiskAvailableMB/1024)
	h.RunningVMs, h.CurrentWorkload, h.CPUInfo = intp(running), intp(0), &cpuInfo
	h.Service = map[string]any{"host": h.HypervisorHostname, "id": n.NodeID, "disabled_reason": nil}
	return h, nil
}

// listHypervisors is GET os-hypervisors (admin) and, with detail,
// os-hypervisors/detail: the nodes of /v2.1/nodes, filtered by
// ?hypervisor_hostname_pattern= (a substring).
func (s *server) listHypervisors(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !adminOnly(w, r) {
			return
		}
		hs, err := s.hypervisors(r.Context(), detail)
		if err != nil {
			fail(w, r, err)
			return
		}
		pattern := r.URL.Query().Get("hypervisor_hostname_pattern")
		out := []hypervisorJSON{}
		for _, h := range hs {
			if strings.Contains(h.HypervisorHostname, pattern) {
				out = append(out, h)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"hypervisors": out})
	}
}

// hypervisors is every node as a hypervisor (hypervisorOf).
func (s *server) hypervisors(ctx context.Context, detail bool) ([]hypervisorJSON, error) {
	ns, err := s.cfg.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	hs := make([]hypervisorJSON, 0, len(ns))
	for _, n := range ns {
		h, err := s.hypervisorOf(ctx, n, detail)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// showHypervisor is GET os-hypervisors/{id} (admin).
func (s *server) showHypervisor(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r) {
		return
	}
	id := mux.Vars(r)["hypervisor"]
	n, err := s.cfg.Store.Node(r.Context(), id)
	if err != nil {
		fail(w, r, fmt.Errorf("hypervisor %s: %w", id, err))
		return
	}
	h, err := s.hypervisorOf(r.Context(), n, true)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"hypervisor": h})
}

// novaStatus maps Nova's server statuses to instance states (§4.8).
var novaStatus = map[string]string{"ACTIVE": datastore.StateActive, "BUILD": datastore.StatePending, "SHUTOFF": datastore.StateExited}

// hypervisorStatistics is GET os-hypervisors/statistics (admin): the
// sums over the nodes.
func (s *server) hypervisorStatistics(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r) {
		return
	}
	hs, err := s.hypervisors(r.Context(), true)
	if err != nil {
		fail(w, r, err)
		return
	}
	keys := []string{"vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "free_ram_mb", "local_gb", "local_gb_used",
		"free_disk_gb", "disk_available_least", "running_vms", "current_workload"}
	sum := map[string]int{"count": len(hs)}
	for _, k := range keys {
		sum[k] = 0
	}
	for _, h := range hs {
		for k, v := range map[string]*int{"vcpus": h.VCPUs, "vcpus_used": h.VCPUsUsed, "memory_mb": h.MemoryMB,
			"memory_mb_used": h.MemoryMBUsed, "free_ram_mb": h.FreeRAMMB, "local_gb": h.LocalGB, "local_gb_used": h.LocalGBUsed,
			"free_disk_gb": h.FreeDiskGB, "disk_available_least": h.FreeDiskGB, "running_vms": h.RunningVMs} {
			sum[k] += *v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"hypervisor_statistics": sum})
}

// hypervisorUptime is GET os-hypervisors/{id}/uptime (admin): 501, which
// `openstack hypervisor show` expects from a hypervisor that does not
// report it; 404 for an unknown node.
func (s *server) hypervisorUptime(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r) {
		return
	}
	id := mux.Vars(r)["hypervisor"]
	if _, err := s.cfg.Store.Node(r.Context(), id); err != nil {
		fail(w, r, fmt.Errorf("hypervisor %s: %w", id, err))
		return
	}
	writeError(w, http.StatusNotImplemented, "launchers do not report their uptime")
}

// listAggregates is GET os-aggregates (admin): there are no host
// aggregates.
func (s *server) listAggregates(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"aggregates": []any{}})
}

// serverFilter is the filter of a server listing, nil for none: ?name= is
// a regular expression matched anywhere in the name, as in Nova;
// ?status= an instance state or its Nova name (ACTIVE, BUILD, SHUTOFF),
// any case; ?flavor= a workload id. Other filters OpenStack clients send
// (image, changes-since, all_tenants, …) are ignored.
func serverFilter(r *http.Request) (func(datastore.Instance) bool, error) {
	q := r.URL.Query()
	name, status, flavor := q.Get("name"), q.Get("status"), q.Get("flavor")
	if name == "" && status == "" && flavor == "" {
		return nil, nil
	}
	re, err := regexp.Compile(name)
	if err != nil {
		return nil, fmt.Errorf("name=%q is not a regular expression: %v", name, err)
	}
	if st, ok := novaStatus[strings.ToUpper(status)]; ok {
		status = st
	}
	return func(in datastore.Instance) bool {
		return re.MatchString(in.Name) && (status == "" || strings.EqualFold(in.State, status)) &&
			(flavor == "" || in.WorkloadID == flavor)
	}, nil
}

// listServerRefs is GET /servers: {"servers":[{"id","name","links"}]},
// with the filters and paging of servers/detail.
func (s *server) listServerRefs(w http.ResponseWriter, r *http.Request) {
	match, err := serverFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := datastore.InstanceQuery{TenantID: mux.Vars(r)["tenant"]}
	if allTenants(r) {
		q.TenantID = ""
	}
	ins, _, ok := s.matching(w, r, q, match)
	if !ok {
		return
	}
	type ref struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Links []any  `json:"links"`
	}
	out := make([]ref, 0, len(ins))
	for _, in := range ins {
		out = append(out, ref{ID: in.ID, Name: in.Name, Links: []any{}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": out})
}

// allTenants reports whether an admin asked for every tenant's servers
// (all_tenants, as `openstack server list --all-projects` sends it); a
// member's all_tenants is ignored.
func allTenants(r *http.Request) bool {
	return caller(r).IsAdmin() && truthy(r.URL.Query().Get("all_tenants"))
}

// truthy reports whether a boolean query parameter is set: given, and
// not "0" or "false" (any case).
func truthy(v string) bool {
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// matching reads q's instances (every tenant's, tenant by tenant, when
// q.TenantID is ""), keeps those match keeps (all when nil) and
// applies marker, offset and limit (query parameters; an unknown marker
// is 400) to them; total counts the kept ones (after the marker, if any:
// §6.2.2). Without a match function, a query the store answers in one
// read (a tenant, node or workload) is paged by the store. On false the
// error is written.
func (s *server) matching(w http.ResponseWriter, r *http.Request, q datastore.InstanceQuery, match func(datastore.Instance) bool) (ins []datastore.Instance, total int, ok bool) {
	if match == nil && (q.TenantID != "" || q.NodeID != "" || q.WorkloadID != "") {
		var err error
		q.Limit, err = intParam(r, "limit")
		if err == nil {
			q.Offset, err = intParam(r, "offset")
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return nil, 0, false
		}
		q.Marker = r.URL.Query().Get("marker")
		p, err := s.cfg.Store.Instances(r.Context(), q)
		if err != nil {
			if q.Marker != "" && errors.Is(err, datastore.ErrNotFound) {
				writeError(w, http.StatusBadRequest, "marker "+q.Marker+" not found")
			} else {
				fail(w, r, err)
			}
			return nil, 0, false
		}
		return p.Instances, p.Total, true
	}
	var all []datastore.Instance
	tenants := []string{q.TenantID}
	if q.TenantID == "" {
		ts, err := s.cfg.Store.Tenants(r.Context())
		if err != nil {
			fail(w, r, err)
			return nil, 0, false
		}
		tenants = tenants[:0]
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	}
	for _, t := range tenants {
		q.TenantID = t
		p, err := s.cfg.Store.Instances(r.Context(), q)
		if err != nil {
			fail(w, r, err)
			return nil, 0, false
		}
		all = append(all, p.Instances...)
	}
	if len(tenants) > 1 { // page's marker search needs one id order
		sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	}
	ids := make([]string, 0, len(all))
	kept := make([]datastore.Instance, 0, len(all))
	for _, in := range all {
		if match == nil || match(in) {
			ids = append(ids, in.ID)
			kept = append(kept, in)
		}
	}
	lo, hi, ok := page(w, r, ids)
	if !ok {
		return nil, 0, false
	}
	total = len(kept)
	if r.URL.Query().Get("marker") != "" {
		total -= lo
	}
	return kept[lo:hi], total, true
}

// serveMatching answers a server listing (servers/detail) of the
// instances matching returns.
func (s *server) serveMatching(w http.ResponseWriter, r *http.Request, q datastore.InstanceQuery, match func(datastore.Instance) bool) {
	ins, total, ok := s.matching(w, r, q, match)
	if !ok {
		return
	}
	img := imageOf{s: s.cfg.Store}
	writeServers(w, total, ins, func(wl string) string { return img.get(r.Context(), wl) })
}
