package api

// Named quotas (the 2017 quota service, controller.md §14) over the
// datastore's limits: GET (the tenant itself or an admin) and PUT (admin)
// /v2.1/tenants/{tenant}/quotas with {"quotas":[{"name","value","usage"}]},
// values as strings and "unlimited" for -1. ciao-cli's quotas command
// uses them.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// quotaNames maps the 2017 quota names to datastore resources, in the
// order they are listed. tenant-disk-quota (MB) is ours: the 2017 storage
// quota counted volume gigabytes, which do not exist here.
var quotaNames = []struct{ name, resource string }{
	{"tenant-instances-quota", datastore.ResInstances},
	{"tenant-vcpu-quota", datastore.ResVCPUs},
	{"tenant-mem-quota", datastore.ResMemMB},
	{"tenant-disk-quota", datastore.ResDiskMB},
}

type namedQuota struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Usage string `json:"usage,omitempty"`
}

func quotaValue(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// writeQuotas answers with the tenant's named quotas.
func (s *server) writeQuotas(w http.ResponseWriter, r *http.Request, tenant string) {
	qs, err := s.cfg.Store.Quotas(r.Context(), tenant)
	if err != nil {
		fail(w, r, err)
		return
	}
	byRes := map[string]datastore.Quota{}
	for _, q := range qs {
		byRes[q.Resource] = q
	}
	out := make([]namedQuota, 0, len(quotaNames))
	for _, n := range quotaNames {
		q, ok := byRes[n.resource]
		if !ok {
			q.Limit = -1
		}
		out = append(out, namedQuota{Name: n.name, Value: quotaValue(q.Limit), Usage: strconv.Itoa(q.Usage)})
	}
	writeJSON(w, http.StatusOK, struct {
		Quotas []namedQuota `json:"quotas"`
	}{out})
}

// listQuotas is GET /v2.1/tenants/{tenant}/quotas; it registers the
// tenant, as /v2.1/{tenant}/quotas does.
func (s *server) listQuotas(w http.ResponseWriter, r *http.Request) {
	t := mux.Vars(r)["tenant"]
	if err := s.cfg.Compute.ConfirmTenant(r.Context(), t); err != nil {
		fail(w, r, err)
		return
	}
	s.writeQuotas(w, r, t)
}

// updateQuotas is PUT /v2.1/tenants/{tenant}/quotas (admin): every named
// quota in the body is set ("unlimited" or -1 removes the limit). The
// body is checked whole before anything changes: an unknown name or a
// bad value is 400.
func (s *server) updateQuotas(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Quotas []namedQuota `json:"quotas"`
	}
	if !decode(w, r, &req) {
		return
	}
	if len(req.Quotas) == 0 {
		writeError(w, http.StatusBadRequest, "no quotas in the request body")
		return
	}
	var sets []limitSet
	for _, q := range req.Quotas {
		res := resourceNamed(quotaNames, q.Name)
		if res == "" {
			names := make([]string, len(quotaNames))
			for i, n := range quotaNames {
				names[i] = n.name
			}
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown quota %q: want one of %v", q.Name, names))
			return
		}
		v := -1
		if q.Value != "unlimited" {
			var err error
			if v, err = strconv.Atoi(q.Value); err != nil || v < -1 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("quota %s: value %q is not a count, -1 or unlimited", q.Name, q.Value))
				return
			}
		}
		sets = append(sets, limitSet{res, v})
	}
	t := mux.Vars(r)["tenant"]
	if err := s.setLimits(r.Context(), t, sets); err != nil {
		fail(w, r, err)
		return
	}
	s.writeQuotas(w, r, t)
}

// limitSet is one checked limit of a quota update.
type limitSet struct {
	resource string
	value    int
}

// resourceNamed is the datastore resource of quota name in table, "" if
// the table has no such name.
func resourceNamed(table []struct{ name, resource string }, name string) string {
	for _, n := range table {
		if n.name == name {
			return n.resource
		}
	}
	return ""
}

// setLimits makes tenant known and sets its limits (both quota PUTs).
func (s *server) setLimits(ctx context.Context, tenant string, sets []limitSet) error {
	if err := s.cfg.Compute.ConfirmTenant(ctx, tenant); err != nil {
		return err
	}
	for _, st := range sets {
		if err := s.cfg.Store.SetLimit(ctx, tenant, st.resource, st.value); err != nil {
			return err
		}
	}
	return nil
}
