// This file is an external test package because it drives the API through
// the built-in identity service, which imports package api.
package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/identity"
	"github.com/ciao-project/ciao/ciao-controller/internal/images"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// authzClock is a settable clock for the identity service.
type authzClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *authzClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *authzClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authzFixture is the API with the built-in identity service in front of
// it (the production path), a real controller over an SQLite store, and
// tenant A's objects: a server, a private flavor and a private image.
type authzFixture struct {
	router *mux.Router
	srv    *httptest.Server
	tenant map[string]string // project name → id
	tokens map[string]string // caller → X-Auth-Token ("" = none)

	serverA, flavorA, imageA string
}

func (f *authzFixture) do(t *testing.T, method, path, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", images.PatchMediaType)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *authzFixture) must(t *testing.T, method, path, token, body string, want int) string {
	t.Helper()
	resp, out := f.do(t, method, path, token, body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}

// login returns a token of user, scoped to project by name ("" = unscoped).
func (f *authzFixture) login(t *testing.T, user, pw, project string) string {
	t.Helper()
	scope := ""
	if project != "" {
		scope = `,"scope":{"project":{"name":"` + project + `","domain":{"name":"Default"}}}`
	}
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":` +
		`{"name":"` + user + `","domain":{"id":"default"},"password":"` + pw + `"}}}` + scope + `}}`
	resp, out := f.do(t, "POST", "/v3/auth/tokens", "", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login %s/%s: %d %s", user, project, resp.StatusCode, out)
	}
	return resp.Header.Get("X-Subject-Token")
}

// newImage creates a private image of tenant A and returns its id.
func (f *authzFixture) newImage(t *testing.T) string {
	t.Helper()
	var img struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(f.must(t, "POST", "/v2/images", f.tokens["memberA"], `{"name":"a-private"}`, http.StatusCreated)), &img); err != nil {
		t.Fatal(err)
	}
	return img.ID
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	store, err := datastore.OpenSQLite(ctx, datastore.NewConfig(filepath.Join(tmp, "db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := controller.SeedWorkloads(ctx, store); err != nil {
		t.Fatal(err)
	}
	f := &authzFixture{tenant: map[string]string{}, tokens: map[string]string{}}
	for _, u := range [][4]string{{"root", "rpw", "admin", "admin"}, {"alice", "apw", "A", "member"}, {"bob", "bpw", "B", "member"}} {
		if err := identity.Bootstrap(ctx, store, u[0], u[1], u[2], u[3], bcrypt.MinCost); err != nil {
			t.Fatal(err)
		}
		p, err := store.ProjectByName(ctx, identity.DefaultDomainID, u[2])
		if err != nil {
			t.Fatal(err)
		}
		f.tenant[u[2]] = p.ID
	}
	clk := &authzClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	icfg := identity.NewConfig(store)
	icfg.Now, icfg.BcryptCost, icfg.TokenTTL = clk.Now, bcrypt.MinCost, time.Hour
	ids, err := identity.New(icfg)
	if err != nil {
		t.Fatal(err)
	}

	fs := testutil.NewFakeServer(t)
	sc := testutil.TestCerts(t).Config(t, ssntp.Controller)
	sc.Port = fs.Port()
	ctl, err := controller.New(ctx, controller.NewConfig(store, sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	fs.NextConnect(t)
	testutil.NewFakeAgent(t, fs.Port(), ssntp.AGENT) // START goes to it: servers stay pending
	fs.NextConnect(t)

	imgs, err := images.New(ctx, images.NewConfig(filepath.Join(tmp, "images"), store))
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Compute: ctl, Store: store, Auth: ids, MaxBody: 4096, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := h.(*mux.Router)
	if !ok {
		t.Fatalf("api.New returned %T, want *mux.Router to walk", h)
	}
	f.router = r
	f.srv = httptest.NewServer(ids.Mount(h))
	t.Cleanup(f.srv.Close)

	// The expired token is issued an hour and a minute before the others.
	f.tokens["expired"] = f.login(t, "alice", "apw", "A")
	clk.Add(time.Hour + time.Minute)
	f.tokens["memberA"] = f.login(t, "alice", "apw", "A")
	f.tokens["memberB"] = f.login(t, "bob", "bpw", "B")
	f.tokens["admin"] = f.login(t, "root", "rpw", "admin")
	f.tokens["unscoped"] = f.login(t, "alice", "apw", "")
	f.tokens["malformed"] = "not-a-token.%%$#@!"
	f.tokens["none"] = ""
	rev := f.login(t, "alice", "apw", "A")
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/v3/auth/tokens", nil)
	req.Header.Set("X-Auth-Token", rev)
	req.Header.Set("X-Subject-Token", rev)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	f.tokens["revoked"] = rev

	// Tenant A's objects (the quotas call registers the tenants).
	a, b := f.tenant["A"], f.tenant["B"]
	f.must(t, "GET", "/v2.1/"+a+"/quotas", f.tokens["memberA"], "", http.StatusOK)
	f.must(t, "GET", "/v2.1/"+b+"/quotas", f.tokens["memberB"], "", http.StatusOK)
	var cr struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	out := f.must(t, "POST", "/v2.1/"+a+"/servers", f.tokens["memberA"],
		`{"server":{"flavorRef":"`+controller.WorkloadClear+`"}}`, http.StatusAccepted)
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Server.ID == "" {
		t.Fatalf("create: %s %v", out, err)
	}
	f.serverA = cr.Server.ID
	f.must(t, "POST", "/v2.1/"+b+"/servers", f.tokens["memberB"],
		`{"server":{"flavorRef":"`+controller.WorkloadClear+`"}}`, http.StatusAccepted)
	f.flavorA = "a0a0a0a0-0000-4000-8000-00000000000a"
	if err := store.CreateWorkload(ctx, datastore.Workload{ID: f.flavorA, TenantID: a, Description: "A private",
		Defaults: []datastore.RequestedResource{{Type: datastore.ResVCPUs, Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	f.imageA = f.newImage(t)
	return f
}

// authzRoute is one row of the matrix: a registered route, how to build
// its path for a tenant segment, and the status each valid caller gets.
// Every invalid caller (no, malformed, expired, revoked or unscoped
// token) gets 401 on every route.
type authzRoute struct {
	method, template string
	body             string
	// path builds the request path; tenant is the {tenant} segment.
	path func(t *testing.T, f *authzFixture, tenant string) string
	// Status for tenant A's member, tenant B's member and an admin, all
	// on tenant A's path and objects.
	memberA, memberB, admin int
	// bOwn is the status for B's member reaching A's object through B's
	// own tenant path (0: the route has no tenant segment).
	bOwn int
	// leak, if set, is checked on every 2xx body B's member gets.
	leak bool
	// public routes (version discovery) take no token: every caller,
	// even without a valid token, gets memberA's status.
	public bool
}

func TestAuthzMatrix(t *testing.T) {
	f := newAuthzFixture(t)
	fixed := func(p string) func(*testing.T, *authzFixture, string) string {
		return func(_ *testing.T, _ *authzFixture, tenant string) string {
			return strings.ReplaceAll(p, "{tenant}", tenant)
		}
	}
	server := func(suffix string) func(*testing.T, *authzFixture, string) string {
		return func(_ *testing.T, f *authzFixture, tenant string) string {
			return "/v2.1/" + tenant + "/servers/" + f.serverA + suffix
		}
	}
	image := func(suffix string) func(*testing.T, *authzFixture, string) string {
		return func(_ *testing.T, f *authzFixture, _ string) string { return "/v2/images/" + f.imageA + suffix }
	}
	freshImage := func(suffix string) func(*testing.T, *authzFixture, string) string {
		return func(t *testing.T, f *authzFixture, _ string) string { return "/v2/images/" + f.newImage(t) + suffix }
	}
	project := func(prefix, suffix string) func(*testing.T, *authzFixture, string) string {
		return func(_ *testing.T, f *authzFixture, tenant string) string {
			return "/v2.1/" + tenant + "/" + prefix + f.tenant["A"] + suffix
		}
	}
	const usagePeriod = "start=2020-01-01T00:00:00&end=2100-01-01T00:00:00&detailed=1"
	const (
		ok, accepted, created, noContent = http.StatusOK, http.StatusAccepted, http.StatusCreated, http.StatusNoContent
		unauth, forbidden, notFound      = http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound
		internal                         = http.StatusInternalServerError // A's server is pending: no node (§4.8)
	)
	create := `{"server":{"flavorRef":"` + controller.WorkloadClear + `"}}`
	workloadDef := `{"description":"d","vm_type":"docker","image_name":"debian:latest","requirements":{"vcpus":1,"mem_mb":64},"config":"a: 1"}`
	// workload is A's private workload under prefix ("" or "/{tenant}").
	workload := func(prefix string) func(*testing.T, *authzFixture, string) string {
		return func(_ *testing.T, f *authzFixture, tenant string) string {
			return strings.ReplaceAll(prefix, "{tenant}", tenant) + "/workloads/" + f.flavorA
		}
	}
	// freshWorkload makes a new workload to delete: public for
	// "/workloads", else one of A's private ones under /{tenant}.
	freshWorkload := func(prefix string) func(*testing.T, *authzFixture, string) string {
		return func(t *testing.T, f *authzFixture, tenant string) string {
			path, tok := "/workloads", f.tokens["admin"]
			if prefix != "/workloads" {
				path, tok = "/"+f.tenant["A"]+"/workloads", f.tokens["memberA"]
			}
			var r struct {
				Workload struct {
					ID string `json:"id"`
				} `json:"workload"`
			}
			if err := json.Unmarshal([]byte(f.must(t, "POST", path, tok, workloadDef, http.StatusCreated)), &r); err != nil {
				t.Fatal(err)
			}
			if prefix == "/workloads" {
				return "/workloads/" + r.Workload.ID
			}
			return "/" + tenant + "/workloads/" + r.Workload.ID
		}
	}
	routes := []authzRoute{
		{method: "GET", template: "/v2.1/tenants", path: fixed("/v2.1/tenants"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/events", path: fixed("/v2.1/events"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "POST", template: "/v2.1/{tenant}/servers", body: create, path: fixed("/v2.1/{tenant}/servers"),
			memberA: accepted, memberB: unauth, admin: accepted, bOwn: accepted},
		{method: "GET", template: "/v2.1/{tenant}/servers/detail", path: fixed("/v2.1/{tenant}/servers/detail"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/servers/{server}", path: server(""),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "DELETE", template: "/v2.1/{tenant}/servers/{server}", path: server(""),
			memberA: internal, memberB: unauth, admin: internal, bOwn: forbidden},
		{method: "POST", template: "/v2.1/{tenant}/servers/{server}/action", body: "os-stop", path: server("/action"),
			memberA: internal, memberB: unauth, admin: internal, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/flavors", path: fixed("/v2.1/{tenant}/flavors"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/flavors/detail", path: fixed("/v2.1/{tenant}/flavors/detail"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/flavors/{flavor}",
			path: func(_ *testing.T, f *authzFixture, tenant string) string {
				return "/v2.1/" + tenant + "/flavors/" + f.flavorA
			},
			memberA: ok, memberB: unauth, admin: ok, bOwn: notFound},
		{method: "GET", template: "/v2.1/{tenant}/flavors/{flavor}/os-extra_specs",
			path: func(_ *testing.T, f *authzFixture, tenant string) string {
				return "/v2.1/" + tenant + "/flavors/" + f.flavorA + "/os-extra_specs"
			},
			memberA: ok, memberB: unauth, admin: ok, bOwn: notFound},
		{method: "GET", template: "/", path: fixed("/"), memberA: ok, public: true},
		{method: "GET", template: "/v2.1", path: fixed("/v2.1"), memberA: ok, public: true},
		{method: "GET", template: "/v2.1/", path: fixed("/v2.1/"), memberA: ok, public: true},
		{method: "GET", template: "/v2.1/{tenant}/quotas", path: fixed("/v2.1/{tenant}/quotas"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/events", path: fixed("/v2.1/{tenant}/events"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "POST", template: "/v2/images", body: `{"name":"x"}`, path: fixed("/v2/images"),
			memberA: created, memberB: created, admin: created},
		{method: "GET", template: "/v2/images", path: fixed("/v2/images"), memberA: ok, memberB: ok, admin: ok, leak: true},
		{method: "GET", template: "/v2/images/{id}", path: image(""), memberA: ok, memberB: forbidden, admin: ok},
		{method: "PATCH", template: "/v2/images/{id}", body: `[{"op":"add","path":"/k","value":"v"}]`, path: image(""),
			memberA: ok, memberB: forbidden, admin: ok},
		{method: "DELETE", template: "/v2/images/{id}", path: freshImage(""), memberA: noContent, memberB: forbidden, admin: noContent},
		{method: "PUT", template: "/v2/images/{id}/file", body: "data", path: freshImage("/file"),
			memberA: noContent, memberB: forbidden, admin: noContent},
		{method: "GET", template: "/v2/images/{id}/file", path: image("/file"), memberA: noContent, memberB: forbidden, admin: noContent},
		// ciao-cli's admin and legacy endpoints (admin.go).
		{method: "GET", template: "/v2.1/nodes", path: fixed("/v2.1/nodes"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/nodes/summary", path: fixed("/v2.1/nodes/summary"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/nodes/{node}/servers/detail", path: fixed("/v2.1/nodes/" + f.tenant["A"] + "/servers/detail"),
			memberA: unauth, memberB: unauth, admin: ok},
		{method: "POST", template: "/v2.1/nodes/{node}/evacuate", path: fixed("/v2.1/nodes/" + f.tenant["A"] + "/evacuate"),
			memberA: unauth, memberB: unauth, admin: notFound}, // no such node: nothing is evacuated
		{method: "GET", template: "/v2.1/tenants/{tenant}/quotas", path: fixed("/v2.1/tenants/{tenant}/quotas"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "PUT", template: "/v2.1/tenants/{tenant}/quotas", body: `{"quotas":[{"name":"tenant-vcpu-quota","value":"unlimited"}]}`,
			path: fixed("/v2.1/tenants/{tenant}/quotas"), memberA: unauth, memberB: unauth, admin: ok, bOwn: unauth},
		{method: "GET", template: "/v2.1/cncis", path: fixed("/v2.1/cncis"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/cncis/{cnci}/detail", path: fixed("/v2.1/cncis/" + f.serverA + "/detail"),
			memberA: unauth, memberB: unauth, admin: notFound},
		{method: "GET", template: "/v2.1/traces", path: fixed("/v2.1/traces"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/traces/{label}", path: fixed("/v2.1/traces/boot"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/flavors/{flavor}/servers/detail", path: fixed("/v2.1/flavors/" + controller.WorkloadClear + "/servers/detail"),
			memberA: unauth, memberB: unauth, admin: ok},
		{method: "GET", template: "/v2.1/{tenant}/resources",
			path:    fixed("/v2.1/{tenant}/resources?start_date=2026-01-01T00:00:00Z&end_date=2036-01-01T00:00:00Z"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "POST", template: "/v2.1/{tenant}/servers/action", body: `{"action":"os-stop","servers":["` + f.serverA + `"]}`,
			path: fixed("/v2.1/{tenant}/servers/action"), memberA: accepted, memberB: unauth, admin: accepted, bOwn: forbidden},
		// The OpenStack-client endpoints (openstack.go): {project} is A.
		{method: "GET", template: "/v2.1/{tenant}/servers", path: fixed("/v2.1/{tenant}/servers"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/os-quota-sets/{project}", path: project("os-quota-sets/", ""),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-quota-sets/{project}/detail", path: project("os-quota-sets/", "/detail"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-quota-sets/{project}/defaults", path: project("os-quota-sets/", "/defaults"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "PUT", template: "/v2.1/{tenant}/os-quota-sets/{project}", path: project("os-quota-sets/", ""),
			body: `{"quota_set":{"cores":-1}}`, memberA: forbidden, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-quota-class-sets/{class}", path: fixed("/v2.1/{tenant}/os-quota-class-sets/default"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok},
		{method: "GET", template: "/v2.1/{tenant}/limits", path: project("limits?tenant_id=", ""),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-simple-tenant-usage", path: fixed("/v2.1/{tenant}/os-simple-tenant-usage?" + usagePeriod),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "GET", template: "/v2.1/{tenant}/os-simple-tenant-usage/{project}", path: project("os-simple-tenant-usage/", "?"+usagePeriod),
			memberA: ok, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-keypairs", path: fixed("/v2.1/{tenant}/os-keypairs"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok},
		{method: "GET", template: "/v2.1/{tenant}/os-hypervisors", path: fixed("/v2.1/{tenant}/os-hypervisors"),
			memberA: forbidden, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-hypervisors/detail", path: fixed("/v2.1/{tenant}/os-hypervisors/detail"),
			memberA: forbidden, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-hypervisors/{hypervisor}", path: fixed("/v2.1/{tenant}/os-hypervisors/nonode"),
			memberA: forbidden, memberB: unauth, admin: notFound, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-hypervisors/statistics", path: fixed("/v2.1/{tenant}/os-hypervisors/statistics"),
			memberA: forbidden, memberB: unauth, admin: ok, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-hypervisors/{hypervisor}/uptime", path: fixed("/v2.1/{tenant}/os-hypervisors/nonode/uptime"),
			memberA: forbidden, memberB: unauth, admin: notFound, bOwn: forbidden},
		{method: "GET", template: "/v2.1/{tenant}/os-aggregates", path: fixed("/v2.1/{tenant}/os-aggregates"),
			memberA: forbidden, memberB: unauth, admin: ok, bOwn: forbidden},
		// The workloads API (workloads.go).
		{method: "GET", template: "/workloads", path: fixed("/workloads"), memberA: unauth, memberB: unauth, admin: ok},
		{method: "POST", template: "/workloads", body: workloadDef, path: fixed("/workloads"), memberA: unauth, memberB: unauth, admin: created},
		{method: "GET", template: "/workloads/{workload}", path: workload(""), memberA: unauth, memberB: unauth, admin: ok},
		{method: "DELETE", template: "/workloads/{workload}", path: freshWorkload("/workloads"), memberA: unauth, memberB: unauth, admin: noContent},
		{method: "GET", template: "/{tenant}/workloads", path: fixed("/{tenant}/workloads"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: ok, leak: true},
		{method: "POST", template: "/{tenant}/workloads", body: workloadDef, path: fixed("/{tenant}/workloads"),
			memberA: created, memberB: unauth, admin: created, bOwn: created},
		{method: "GET", template: "/{tenant}/workloads/{workload}", path: workload("/{tenant}"),
			memberA: ok, memberB: unauth, admin: ok, bOwn: notFound},
		{method: "DELETE", template: "/{tenant}/workloads/{workload}", path: freshWorkload("/{tenant}"),
			memberA: noContent, memberB: unauth, admin: noContent, bOwn: notFound},
		// Last: it clears the events the listings above look at.
		{method: "DELETE", template: "/v2.1/events", path: fixed("/v2.1/events"), memberA: unauth, memberB: unauth, admin: accepted},
	}

	// Every registered route has exactly one row, and every row is a
	// registered route.
	rows := map[string]bool{}
	for _, r := range routes {
		k := r.method + " " + r.template
		if rows[k] {
			t.Fatalf("duplicate row %s", k)
		}
		rows[k] = true
	}
	registered := map[string]bool{}
	err := f.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return err
		}
		ms, err := rt.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no method matcher: %w", tpl, err)
		}
		for _, m := range ms {
			k := m + " " + tpl
			registered[k] = true
			if !rows[k] {
				t.Errorf("route %s has no row in the authorization matrix", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range rows {
		if !registered[k] {
			t.Errorf("row %s is not a registered route", k)
		}
	}

	a, b := f.tenant["A"], f.tenant["B"]
	type caller struct {
		name, token, tenant string
		want                func(authzRoute) int
	}
	invalid := func(authzRoute) int { return unauth }
	callers := []caller{
		{"memberA", f.tokens["memberA"], a, func(r authzRoute) int { return r.memberA }},
		{"memberB", f.tokens["memberB"], a, func(r authzRoute) int { return r.memberB }},
		{"memberB-own-path", f.tokens["memberB"], b, func(r authzRoute) int { return r.bOwn }},
		{"admin", f.tokens["admin"], a, func(r authzRoute) int { return r.admin }},
		{"none", "", a, invalid},
		{"malformed", f.tokens["malformed"], a, invalid},
		{"expired", f.tokens["expired"], a, invalid},
		{"revoked", f.tokens["revoked"], a, invalid},
		{"unscoped", f.tokens["unscoped"], a, invalid},
	}
	cases := 0
	for _, r := range routes {
		for _, c := range callers {
			want := c.want(r)
			if r.public {
				want = r.memberA
			}
			if want == 0 {
				continue // no tenant segment: the own-path variant does not exist
			}
			cases++
			t.Run(r.method+" "+r.template+"/"+c.name, func(t *testing.T) {
				path := r.path(t, f, c.tenant)
				resp, body := f.do(t, r.method, path, c.token, r.body)
				if resp.StatusCode != want {
					t.Fatalf("%s %s: %d %q, want %d", r.method, path, resp.StatusCode, body, want)
				}
				if want == unauth && (body != "Unauthorized\n" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8") {
					t.Errorf("401 body %q, content-type %q (§3.3)", body, resp.Header.Get("Content-Type"))
				}
				if strings.HasPrefix(c.name, "memberB") && resp.StatusCode < 300 && r.leak {
					for what, id := range map[string]string{"tenant": a, "server": f.serverA, "flavor": f.flavorA, "image": f.imageA} {
						if strings.Contains(body, id) {
							t.Errorf("tenant B sees tenant A's %s %s: %s", what, id, body)
						}
					}
				}
			})
		}
	}
	t.Logf("%d authorization cases over %d routes", cases, len(routes))

	// The listings B gets above would pass vacuously if A had nothing to
	// hide: A's own view shows every one of A's objects.
	for _, c := range []struct{ path, id string }{
		{"/v2.1/" + a + "/servers/detail", f.serverA},
		{"/v2.1/" + a + "/flavors", f.flavorA},
		{"/" + a + "/workloads", f.flavorA},
		{"/v2.1/" + a + "/quotas", a},
		{"/v2.1/" + a + "/servers", f.serverA},
		{"/v2.1/" + a + "/os-simple-tenant-usage?" + usagePeriod, f.serverA},
		{"/v2/images", f.imageA},
	} {
		if out := f.must(t, "GET", c.path, f.tokens["memberA"], "", ok); !strings.Contains(out, c.id) {
			t.Errorf("%s for tenant A lacks %s: %s", c.path, c.id, out)
		}
	}
}
