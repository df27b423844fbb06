package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	tenantA = "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"
	tenantB = "2491851d-dce9-48d6-b83a-a717417072ce"
	unknown = "00000000-0000-4000-8000-000000000000"
)

var tokens = StaticTokens{
	"tokA":  {TenantID: tenantA, ProjectName: "a", Roles: []string{"user"}},
	"tokB":  {TenantID: tenantB, ProjectName: "b", Roles: []string{"user"}},
	"admin": {TenantID: "f452bbc7-5076-44d5-922c-3b9d2ce1503f", ProjectName: "admin", Roles: []string{"admin"}},
}

type env struct {
	fs    *testutil.FakeServer
	agent *testutil.FakeAgent
	store datastore.Store
	ctl   *controller.Controller
	srv   *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := datastore.NewMemory()
	t.Cleanup(func() { store.Close() })
	return newEnvStore(t, store)
}

// newEnvStore is newEnv on the given store.
func newEnvStore(t testing.TB, store datastore.Store) *env {
	t.Helper()
	fs := testutil.NewFakeServer(t)
	ctx := context.Background()
	if err := controller.SeedWorkloads(ctx, store); err != nil {
		t.Fatal(err)
	}
	sc := testutil.TestCerts(t).Config(t, ssntp.Controller)
	sc.Port = fs.Port()
	ctl, err := controller.New(ctx, controller.NewConfig(store, sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	fs.NextConnect(t)
	agent := testutil.NewFakeAgent(t, fs.Port(), ssntp.AGENT)
	fs.NextConnect(t)
	h, err := New(Config{Compute: ctl, Store: store, Auth: tokens, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{fs: fs, agent: agent, store: store, ctl: ctl, srv: srv}
}

// do sends a request and returns the status and body.
func (e *env) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) expect(t *testing.T, method, path, token, body string, want int) string {
	t.Helper()
	code, out := e.do(t, method, path, token, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	if code >= 400 && code != http.StatusUnauthorized {
		var eb errorBody
		if err := json.Unmarshal([]byte(out), &eb); err != nil || eb.Error.Code != code || eb.Error.Name != http.StatusText(code) {
			t.Errorf("error body %q: %v", out, err)
		}
	}
	return out
}

type createResp struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	TotalServers int             `json:"total_servers"`
	Servers      []serverDetails `json:"servers"`
}

func (e *env) create(t *testing.T, tenant, token string, n int) createResp {
	t.Helper()
	out := e.expect(t, "POST", "/v2.1/"+tenant+"/servers", token,
		fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":%d}}`, controller.WorkloadClear, n), http.StatusAccepted)
	var r createResp
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.TotalServers != n || len(r.Servers) != n || r.Server.ID != r.Servers[0].ID {
		t.Fatalf("create response %+v", r)
	}
	return r
}

// activate reports the instances active on the agent's node and waits
// until the store has it.
func (e *env) activate(t *testing.T, ids ...string) {
	t.Helper()
	var st []payloads.InstanceStat
	for _, id := range ids {
		st = append(st, payloads.InstanceStat{InstanceUUID: id, State: payloads.InstanceActive})
	}
	node := e.agent.UUID().String()
	e.fs.SendCommand(t, uuid.MustParse(e.ctl.UUID()), ssntp.STATS, testutil.StatsPayload(node, "n1", st...))
	deadline := time.Now().Add(testutil.WaitTimeout)
	for _, id := range ids {
		for {
			in, err := e.store.Instance(context.Background(), id)
			if err == nil && in.State == datastore.StateActive && in.NodeID == node {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never active: %+v %v", id, in, err)
			}
			time.Sleep(5 * time.Millisecond) // poll interval
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v2.1/" + tenantA + "/flavors", "", 401},
		{"GET", "/v2.1/" + tenantA + "/flavors", "nope", 401},
		{"GET", "/v2.1/" + tenantB + "/servers/detail", "tokA", 401},
		{"GET", "/v2.1/tenants", "tokA", 401},
		{"GET", "/v2.1/events", "tokA", 401},
		{"DELETE", "/v2.1/events", "tokA", 401},
		{"GET", "/v2.1/" + tenantA + "/servers/detail", "tokA", 200},
		{"GET", "/v2.1/" + tenantB + "/servers/detail", "admin", 200},
		{"GET", "/v2.1/tenants", "admin", 200},
		{"GET", "/v2.1/nowhere", "admin", 404},
	}
	for _, c := range cases {
		if code, body := e.do(t, c.method, c.path, c.token, ""); code != c.want {
			t.Errorf("%s %s token %q: %d %s, want %d", c.method, c.path, c.token, code, body, c.want)
		}
	}
}

func TestCreateServers(t *testing.T) {
	e := newEnv(t)
	base := "/v2.1/" + tenantA + "/servers"
	r := e.create(t, tenantA, "tokA", 3)
	for i, s := range r.Servers {
		if s.Status != "pending" || s.HostID != "" || s.TenantID != tenantA || s.Flavor.ID != controller.WorkloadClear ||
			s.Image.ID != "df3768da-31f5-4ba6-82f0-127a1a705169" || s.Addresses["private"][0].Addr != fmt.Sprintf("172.16.0.%d", i+2) {
			t.Errorf("server %d: %+v", i, s)
		}
	}
	for range 3 {
		e.fs.NextStart(t)
	}
	// min_count alone, and the default of 1.
	e.expect(t, "POST", base, "tokA", `{"server":{"flavorRef":"`+controller.WorkloadClear+`","min_count":2}}`, 202)
	e.expect(t, "POST", base, "tokA", `{"server":{"flavorRef":"`+controller.WorkloadClear+`"}}`, 202)

	bad := []struct {
		name, body string
		want       int
	}{
		{"malformed", `{"server":`, 400},
		{"not an object", `[1,2]`, 400},
		{"negative max", `{"server":{"flavorRef":"` + controller.WorkloadClear + `","max_count":-1}}`, 400},
		{"negative min", `{"server":{"flavorRef":"` + controller.WorkloadClear + `","min_count":-2}}`, 400},
		{"min over max", `{"server":{"flavorRef":"` + controller.WorkloadClear + `","min_count":3,"max_count":2}}`, 400},
		{"too many", `{"server":{"flavorRef":"` + controller.WorkloadClear + `","max_count":1000}}`, 400},
		{"no flavor", `{"server":{"max_count":1}}`, 400},
		{"unknown flavor", `{"server":{"flavorRef":"` + unknown + `"}}`, 404},
		{"CNCI flavor", `{"server":{"flavorRef":"` + controller.WorkloadCNCI + `"}}`, 404},
		{"oversized", `{"server":{"name":"` + strings.Repeat("x", 5000) + `"}}`, 413},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) { e.expect(t, "POST", base, "tokA", c.body, c.want) })
	}

	// Over quota: 403 and nothing created.
	if err := e.store.SetLimit(context.Background(), tenantA, datastore.ResInstances, 7); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "POST", base, "tokA", `{"server":{"flavorRef":"`+controller.WorkloadClear+`","max_count":2}}`, 403)
	p, _ := e.store.Instances(context.Background(), datastore.InstanceQuery{TenantID: tenantA})
	if p.Total != 6 {
		t.Errorf("%d instances after the refused request, want 6", p.Total)
	}
}

type listResp struct {
	TotalServers int             `json:"total_servers"`
	Servers      []serverDetails `json:"servers"`
}

func TestListServers(t *testing.T) {
	e := newEnv(t)
	e.create(t, tenantA, "tokA", 12)
	e.create(t, tenantB, "tokB", 1)
	all, _ := e.store.Instances(context.Background(), datastore.InstanceQuery{TenantID: tenantA})
	base := "/v2.1/" + tenantA + "/servers/detail"
	cases := []struct {
		query        string
		total, count int
		first        string
	}{
		{"", 12, 12, all.Instances[0].ID},
		{"?offset=10", 12, 2, all.Instances[10].ID},
		{"?limit=5", 12, 5, all.Instances[0].ID},
		{"?limit=5&offset=9", 12, 3, all.Instances[9].ID},
		{"?marker=" + all.Instances[4].ID, 7, 7, all.Instances[5].ID},
		{"?marker=" + all.Instances[4].ID + "&limit=2", 7, 2, all.Instances[5].ID},
		{"?offset=12", 12, 0, ""},
	}
	for _, c := range cases {
		var r listResp
		if err := json.Unmarshal([]byte(e.expect(t, "GET", base+c.query, "tokA", "", 200)), &r); err != nil {
			t.Fatal(err)
		}
		if r.TotalServers != c.total || len(r.Servers) != c.count || (c.count > 0 && r.Servers[0].ID != c.first) {
			t.Errorf("%s: total %d count %d, want %d %d", c.query, r.TotalServers, len(r.Servers), c.total, c.count)
		}
		for _, s := range r.Servers {
			if s.TenantID != tenantA {
				t.Errorf("%s lists tenant %s's server", c.query, s.TenantID)
			}
		}
	}
	e.expect(t, "GET", base+"?limit=-1", "tokA", "", 400)
	e.expect(t, "GET", base+"?offset=x", "tokA", "", 400)
	e.expect(t, "GET", base+"?marker="+unknown, "tokA", "", 400)
	// A tenant never seen has an empty list.
	out := e.expect(t, "GET", "/v2.1/"+unknown+"/servers/detail", "admin", "", 200)
	if !strings.Contains(out, `"total_servers":0`) || !strings.Contains(out, `"servers":[]`) {
		t.Errorf("unknown tenant: %s", out)
	}
}

func TestServerLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.create(t, tenantA, "tokA", 2)
	id, pending := r.Servers[0].ID, r.Servers[1].ID
	a := "/v2.1/" + tenantA + "/servers/"
	b := "/v2.1/" + tenantB + "/servers/"

	e.expect(t, "GET", a+id, "tokA", "", 200)
	e.expect(t, "GET", a+unknown, "tokA", "", 404)
	e.expect(t, "GET", b+id, "tokB", "", 403)
	e.expect(t, "DELETE", b+id, "tokB", "", 403)
	e.expect(t, "POST", b+id+"/action", "tokB", "os-stop", 403)
	e.expect(t, "DELETE", a+unknown, "tokA", "", 404)
	e.expect(t, "POST", a+unknown+"/action", "tokA", "os-stop", 404)
	e.expect(t, "DELETE", a+pending, "tokA", "", 500) // not on a node yet (§4.8)
	e.expect(t, "POST", a+pending+"/action", "tokA", "os-stop", 500)

	e.activate(t, id)
	var show struct {
		Server serverDetails `json:"server"`
	}
	if err := json.Unmarshal([]byte(e.expect(t, "GET", a+id, "tokA", "", 200)), &show); err != nil {
		t.Fatal(err)
	}
	if show.Server.Status != "active" || show.Server.HostID != e.agent.UUID().String() {
		t.Errorf("after STATS: %+v", show.Server)
	}
	e.expect(t, "POST", a+id+"/action", "tokA", `{"os-start": null}`, 500) // running already
	e.expect(t, "POST", a+id+"/action", "tokA", "os-reboot-please", 500)   // reboot = restart, refused while running
	e.expect(t, "POST", a+id+"/action", "tokA", `{"pause": null}`, 503)
	if out := e.expect(t, "POST", a+id+"/action", "tokA", "os-stop", 202); strings.TrimSpace(out) != "null" {
		t.Errorf("action body %q", out)
	}
	if s := e.fs.NextStop(t); s.InstanceUUID != id || s.WorkloadAgentUUID != e.agent.UUID().String() {
		t.Errorf("STOP %+v", s)
	}
	code, out := e.do(t, "DELETE", a+id, "tokA", "")
	if code != 204 || out != "" {
		t.Fatalf("delete: %d %q", code, out)
	}
	if d := e.fs.NextDelete(t); d.InstanceUUID != id || d.WorkloadAgentUUID != e.agent.UUID().String() {
		t.Errorf("DELETE %+v", d)
	}
	deadline := time.Now().Add(testutil.WaitTimeout)
	for code, _ := e.do(t, "GET", a+id, "tokA", ""); code != 404; code, _ = e.do(t, "GET", a+id, "tokA", "") {
		if time.Now().After(deadline) {
			t.Fatal("deleted server still listed")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func TestFlavors(t *testing.T) {
	e := newEnv(t)
	base := "/v2.1/" + tenantA + "/flavors"
	var list struct {
		Flavors []flavor `json:"flavors"`
	}
	if err := json.Unmarshal([]byte(e.expect(t, "GET", base, "tokA", "", 200)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Flavors) != 4 {
		t.Errorf("flavors %+v, want the 4 public ones", list.Flavors)
	}
	var det struct {
		Flavors []flavorDetails `json:"flavors"`
	}
	if err := json.Unmarshal([]byte(e.expect(t, "GET", base+"/detail", "tokA", "", 200)), &det); err != nil {
		t.Fatal(err)
	}
	for _, f := range det.Flavors {
		if f.VCPUs != 2 || f.RAM != 128 || f.Disk == "" {
			t.Errorf("flavor %+v", f)
		}
	}
	var one struct {
		Flavor flavorDetails `json:"flavor"`
	}
	if err := json.Unmarshal([]byte(e.expect(t, "GET", base+"/"+controller.WorkloadCNCI, "tokA", "", 200)), &one); err != nil {
		t.Fatal(err)
	}
	if one.Flavor.VCPUs != 4 || one.Flavor.RAM != 2048 {
		t.Errorf("CNCI flavor %+v", one.Flavor)
	}
	e.expect(t, "GET", base+"/"+unknown, "tokA", "", 404)
}

func TestTenantsQuotasEvents(t *testing.T) {
	e := newEnv(t)
	var q map[string]any
	if err := json.Unmarshal([]byte(e.expect(t, "GET", "/v2.1/"+tenantA+"/quotas", "tokA", "", 200)), &q); err != nil {
		t.Fatal(err)
	}
	if q["id"] != tenantA || q["instances_limit"] != -1.0 || q["instances_usage"] != 0.0 {
		t.Errorf("quotas %v", q)
	}
	e.create(t, tenantA, "tokA", 3)
	if err := json.Unmarshal([]byte(e.expect(t, "GET", "/v2.1/"+tenantA+"/quotas", "tokA", "", 200)), &q); err != nil {
		t.Fatal(err)
	}
	if q["instances_usage"] != 3.0 || q["cpus_usage"] != 6.0 || q["ram_usage"] != 384.0 || q["disk_usage"] != 240.0 {
		t.Errorf("quotas %v", q)
	}
	if out := e.expect(t, "GET", "/v2.1/tenants", "admin", "", 200); !strings.Contains(out, tenantA) {
		t.Errorf("tenants %s", out)
	}
	if out := e.expect(t, "GET", "/v2.1/"+tenantA+"/events", "tokA", "", 200); !strings.Contains(out, "Registered tenant") {
		t.Errorf("tenant events %s", out)
	}
	if out := e.expect(t, "GET", "/v2.1/"+tenantB+"/events", "tokB", "", 200); out != "{\"events\":[]}\n" {
		t.Errorf("tenant B events %q", out)
	}
	e.expect(t, "DELETE", "/v2.1/events", "admin", "", 202)
	if out := e.expect(t, "GET", "/v2.1/events", "admin", "", 200); out != "{\"events\":[]}\n" {
		t.Errorf("events after clear %q", out)
	}
}

// TestServerJSONMatchesEncodingJSON: the hand-written servers listing is
// byte-for-byte what encoding/json makes of the same objects, including
// strings that need escaping.
func TestServerJSONMatchesEncodingJSON(t *testing.T) {
	ins := []datastore.Instance{
		{ID: "a", TenantID: "t", WorkloadID: "w", Name: "web-1", State: "active", NodeID: "n", IP: "172.16.0.2", MAC: "02:00:ac:10:00:02",
			SSHIP: "198.51.100.1", SSHPort: 33002, CreatedAt: time.Date(2026, 11, 27, 7, 1, 2, 345678900, time.UTC)},
		{ID: "b<>&\"\\\n\r\t\b\f\x01\x7f", Name: "<n\u2028>", State: "é\u2028\u2029\xff", CreatedAt: time.Time{}},
		{ID: "c", State: "active", NodeID: "n", Deleting: time.Date(2026, 11, 27, 7, 1, 2, 0, time.UTC)},
	}
	for _, n := range []int{0, 1, 2, 3} {
		rec := httptest.NewRecorder()
		writeServers(rec, 7, ins[:n], func(w string) string { return "img-" + w })
		out := make([]serverDetails, n)
		for i, in := range ins[:n] {
			out[i] = details(in, "img-"+in.WorkloadID)
		}
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, struct {
			TotalServers int             `json:"total_servers"`
			Servers      []serverDetails `json:"servers"`
		}{7, out})
		if got := rec.Body.String(); got != want.Body.String() {
			t.Fatalf("%d servers:\ngot  %s\nwant %s", n, got, want.Body.String())
		}
		if rec.Header().Get("Content-Type") != "application/json" || rec.Code != http.StatusOK {
			t.Fatalf("header %v code %d", rec.Header(), rec.Code)
		}
	}
}

// BenchmarkCreateServerParallel is the create request inside the
// controller: HTTP (plain) → policy → SQLite (group commit) → START sent
// to a fake scheduler and agent, from 100 concurrent clients.
func BenchmarkCreateServerParallel(b *testing.B) {
	cfg := datastore.NewConfig(b.TempDir() + "/c.db")
	var commits atomic.Int64
	cfg.Observe = func(op string, _ time.Duration) {
		if op == "commit" {
			commits.Add(1)
		}
	}
	store, err := datastore.OpenSQLite(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	e := newEnvStore(b, store)
	body := fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":1}}`, controller.WorkloadClear)
	url := e.srv.URL + "/v2.1/" + tenantA + "/servers"
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	b.SetParallelism(50)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("X-Auth-Token", "tokA")
			resp, err := cl.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("HTTP %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(commits.Load()), "creates/commit")
}

// BenchmarkListServers10k is GET servers/detail of a tenant with 10,000
// instances inside the controller (plain HTTP, SQLite store).
func BenchmarkListServers10k(b *testing.B) {
	store, err := datastore.OpenSQLite(context.Background(), datastore.NewConfig(b.TempDir()+"/c.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	e := newEnvStore(b, store)
	ctx := context.Background()
	if _, _, err := store.EnsureTenant(ctx, datastore.Tenant{ID: tenantA, CNCIMAC: "02:11:22:33:44:55"}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i += 100 {
		reqs := make([]datastore.InstanceRequest, 100)
		for j := range reqs {
			reqs[j] = datastore.InstanceRequest{ID: uuid.Generate().String(), TenantID: tenantA, WorkloadID: controller.WorkloadClear}
		}
		if _, err := store.CreateInstances(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	url := e.srv.URL + "/v2.1/" + tenantA + "/servers/detail"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Auth-Token", "tokA")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 10000*900 {
			b.Fatalf("HTTP %d, %d bytes", resp.StatusCode, n)
		}
		b.SetBytes(n)
	}
}
