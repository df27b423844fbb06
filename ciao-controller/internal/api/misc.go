package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

type flavor struct {
	ID    string `json:"id"`
	Links []any  `json:"links"`
	Name  string `json:"name"`
}

// flavorDetails is FlavorDetails of §6.2.9.
type flavorDetails struct {
	Disabled  bool   `json:"OS-FLV-DISABLED:disabled"`
	Disk      any    `json:"disk"` // the image UUID as at the baseline; GB (an int) to microversioned clients
	Ephemeral int    `json:"OS-FLV-EXT-DATA:ephemeral"`
	IsPublic  bool   `json:"os-flavor-access:is_public"`
	ID        string `json:"id"`
	Links     []any  `json:"links"`
	Name      string `json:"name"`
	RAM       int    `json:"ram"`
	Swap      string `json:"swap"`
	VCPUs     int    `json:"vcpus"`
}

// flavorOf is a workload as a flavor. OpenStack clients (microversioned,
// versions.go) get "disk" as OpenStack defines it, the root disk in GB
// (the workload's disk_mb rounded up); the 2016 shape has the image UUID
// there, which OpenStack clients cannot parse.
func flavorOf(r *http.Request, wl datastore.Workload) flavorDetails {
	f := flavorDetails{Disk: wl.ImageID, IsPublic: wl.TenantID == "", ID: wl.ID, Name: wl.Description}
	diskMB := 0
	for _, d := range wl.Defaults {
		switch d.Type {
		case datastore.ResMemMB:
			f.RAM = d.Value
		case datastore.ResVCPUs:
			f.VCPUs = d.Value
		case datastore.ResDiskMB:
			diskMB = d.Value
		}
	}
	if microversioned(r) {
		f.Disk = (diskMB + 1023) / 1024
	}
	return f
}

func (s *server) listFlavors(w http.ResponseWriter, r *http.Request) {
	wls, err := s.cfg.Store.Workloads(r.Context(), datastore.WorkloadFilter{TenantID: mux.Vars(r)["tenant"]})
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]flavor, 0, len(wls))
	for _, wl := range wls {
		out = append(out, flavor{ID: wl.ID, Name: wl.Description})
	}
	writeJSON(w, http.StatusOK, struct {
		Flavors []flavor `json:"flavors"`
	}{out})
}

func (s *server) listFlavorDetails(w http.ResponseWriter, r *http.Request) {
	wls, err := s.cfg.Store.Workloads(r.Context(), datastore.WorkloadFilter{TenantID: mux.Vars(r)["tenant"]})
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]flavorDetails, 0, len(wls))
	for _, wl := range wls {
		if len(wl.Defaults) > 0 {
			out = append(out, flavorOf(r, wl))
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Flavors []flavorDetails `json:"flavors"`
	}{out})
}

// flavor is the workload {flavor} if {tenant} may see it (public, or its
// own); else it answers the error and returns false.
func (s *server) flavor(w http.ResponseWriter, r *http.Request) (datastore.Workload, bool) {
	v := mux.Vars(r)
	wl, err := s.cfg.Store.Workload(r.Context(), v["flavor"])
	if err == nil && wl.TenantID != "" && wl.TenantID != v["tenant"] {
		err = datastore.ErrNotFound
	}
	if err != nil {
		fail(w, r, fmt.Errorf("flavor %s: %w", v["flavor"], err))
		return datastore.Workload{}, false
	}
	return wl, true
}

// showFlavor shows one workload; internal ones (the CNCI) too, as at the
// baseline, but not another tenant's private workload.
func (s *server) showFlavor(w http.ResponseWriter, r *http.Request) {
	wl, ok := s.flavor(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Flavor flavorDetails `json:"flavor"`
	}{flavorOf(r, wl)})
}

// quotas is GET /v2.1/{tenant}/quotas (§6.3.4); it registers the tenant.
func (s *server) quotas(w http.ResponseWriter, r *http.Request) {
	t := mux.Vars(r)["tenant"]
	if err := s.cfg.Compute.ConfirmTenant(r.Context(), t); err != nil {
		fail(w, r, err)
		return
	}
	qs, err := s.cfg.Store.Quotas(r.Context(), t)
	if err != nil {
		fail(w, r, err)
		return
	}
	out := struct {
		ID             string    `json:"id"`
		Updated        time.Time `json:"updated"`
		InstancesLimit int       `json:"instances_limit"`
		InstancesUsage int       `json:"instances_usage"`
		CPUsLimit      int       `json:"cpus_limit"`
		CPUsUsage      int       `json:"cpus_usage"`
		RAMLimit       int       `json:"ram_limit"`
		RAMUsage       int       `json:"ram_usage"`
		DiskLimit      int       `json:"disk_limit"`
		DiskUsage      int       `json:"disk_usage"`
	}{ID: t, InstancesLimit: -1, CPUsLimit: -1, RAMLimit: -1, DiskLimit: -1}
	for _, q := range qs {
		switch q.Resource {
		case datastore.ResInstances:
			out.InstancesLimit, out.InstancesUsage = q.Limit, q.Usage
		case datastore.ResVCPUs:
			out.CPUsLimit, out.CPUsUsage = q.Limit, q.Usage
		case datastore.ResMemMB:
			out.RAMLimit, out.RAMUsage = q.Limit, q.Usage
		case datastore.ResDiskMB:
			out.DiskLimit, out.DiskUsage = q.Limit, q.Usage
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type tenantJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.cfg.Store.Tenants(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]tenantJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenantJSON{t.ID, t.Name})
	}
	writeJSON(w, http.StatusOK, struct {
		Tenants []tenantJSON `json:"tenants"`
	}{out})
}

type eventJSON struct {
	Time     time.Time `json:"time_stamp"`
	TenantID string    `json:"tenant_id"`
	Type     string    `json:"type"`
	Message  string    `json:"message"`
}

// listEvents serves GET /v2.1/events (all) and /v2.1/{tenant}/events.
func (s *server) listEvents(w http.ResponseWriter, r *http.Request) {
	es, err := s.cfg.Store.Events(r.Context(), mux.Vars(r)["tenant"])
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]eventJSON, 0, len(es))
	for _, e := range es {
		out = append(out, eventJSON{e.Time, e.TenantID, e.Type, e.Message})
	}
	writeJSON(w, http.StatusOK, struct {
		Events []eventJSON `json:"events"`
	}{out})
}

func (s *server) clearEvents(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Store.ClearEvents(r.Context()); err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, nil)
}
