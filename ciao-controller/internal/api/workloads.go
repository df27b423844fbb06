package api

// The workloads API (controller.md §14, 2017): public workloads under
// /workloads (admin only), a tenant's private workloads under
// /{tenant}/workloads (that tenant, or an admin acting for it):
//
//	GET    /workloads                      every workload but internal ones (admin)
//	POST   /workloads                      create a public workload (admin)
//	GET    /workloads/{workload}           show any workload but internal ones (admin)
//	DELETE /workloads/{workload}           delete one (admin)
//	GET    /{tenant}/workloads             public ones plus the tenant's private ones
//	POST   /{tenant}/workloads             create a private workload of the tenant
//	GET    /{tenant}/workloads/{workload}  show a public or own private workload
//	DELETE /{tenant}/workloads/{workload}  delete an own private workload
//
// Bodies are controller.WorkloadSpec (POST) and controller.WorkloadView
// in {"workload": ...} or {"workloads": [...]}. A create answers 201 with
// a Location header. Errors: 400 a refused definition (the message says
// which field and why), 403 deleting a public workload through a tenant
// path or an internal one, or a tenant's private workload beyond
// controller.MaxPrivateWorkloads, 404 unknown or another tenant's private
// workload, 409 deleting a workload that instances still use (nothing is
// deleted), 413 oversized body.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// WorkloadPolicy is the workloads API's policy; *controller.Controller
// implements it. A Compute that does not has no workloads API.
type WorkloadPolicy interface {
	CreateWorkload(ctx context.Context, tenantID string, spec controller.WorkloadSpec) (datastore.Workload, error)
	VisibleWorkload(ctx context.Context, tenantID, id string) (datastore.Workload, error)
	DeleteWorkload(ctx context.Context, tenantID, id string) error
}

var _ WorkloadPolicy = (*controller.Controller)(nil)

// workloadRoutes adds the workloads API with the router's tenant and
// admin route helpers.
func (s *server) workloadRoutes(tenant, admin func(path, method string, h http.HandlerFunc)) {
	wp, ok := s.cfg.Compute.(WorkloadPolicy)
	if !ok {
		return
	}
	h := workloadHandlers{s: s, wp: wp}
	admin("/workloads", http.MethodGet, h.list)
	admin("/workloads", http.MethodPost, h.create)
	admin("/workloads/{workload}", http.MethodGet, h.show)
	admin("/workloads/{workload}", http.MethodDelete, h.delete)
	tenant("/{tenant}/workloads", http.MethodGet, h.list)
	tenant("/{tenant}/workloads", http.MethodPost, h.create)
	tenant("/{tenant}/workloads/{workload}", http.MethodGet, h.show)
	tenant("/{tenant}/workloads/{workload}", http.MethodDelete, h.delete)
}

type workloadHandlers struct {
	s  *server
	wp WorkloadPolicy
}

// list answers {"workloads": [...]}: for a tenant path the public
// workloads and the tenant's own, for /workloads every tenant's too.
func (h workloadHandlers) list(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant, all := mux.Vars(r)["tenant"], false
	tenants := []string{tenant}
	if tenant == "" {
		ts, err := h.s.cfg.Store.Tenants(ctx)
		if err != nil {
			fail(w, r, err)
			return
		}
		all = true
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	}
	out := []controller.WorkloadView{}
	for i, t := range tenants {
		ws, err := h.s.cfg.Store.Workloads(ctx, datastore.WorkloadFilter{TenantID: t})
		if err != nil {
			fail(w, r, err)
			return
		}
		for _, wl := range ws {
			if !all || i == 0 || wl.TenantID == t { // public ones once
				out = append(out, controller.ViewOf(wl))
			}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Workloads []controller.WorkloadView `json:"workloads"`
	}{out})
}

// create makes a public (/workloads) or private (/{tenant}/workloads)
// workload.
func (h workloadHandlers) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, r, fmt.Errorf("create workload: %w", err))
		return
	}
	spec, err := controller.ParseWorkloadSpec(body)
	if err != nil {
		fail(w, r, err)
		return
	}
	tenant := mux.Vars(r)["tenant"]
	wl, err := h.wp.CreateWorkload(r.Context(), tenant, spec)
	if err != nil {
		fail(w, r, err)
		return
	}
	loc := "/workloads/" + wl.ID
	if tenant != "" {
		loc = "/" + tenant + loc
	}
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, struct {
		Workload controller.WorkloadView `json:"workload"`
	}{controller.ViewOf(wl)})
}

func (h workloadHandlers) show(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	wl, err := h.wp.VisibleWorkload(r.Context(), v["tenant"], v["workload"])
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Workload controller.WorkloadView `json:"workload"`
	}{controller.ViewOf(wl)})
}

func (h workloadHandlers) delete(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if err := h.wp.DeleteWorkload(r.Context(), v["tenant"], v["workload"]); err != nil {
		if errors.Is(err, datastore.ErrInUse) {
			err = fmt.Errorf("workload %s is used by instances; delete them first (%v): %w", v["workload"], err, datastore.ErrInUse)
		}
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
