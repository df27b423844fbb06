package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
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

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Service over a memory store with users:
//
//	admin/secret: admin on project "admin"
//	alice/apw:    member on project "A"
//	bob/bpw:      member on project "B"
type env struct {
	svc   *Service
	store *datastore.Memory
	clock *clock
	srv   *httptest.Server
	proj  map[string]string // name → id
}

// fakeCompute satisfies api.Compute for the middleware tests.
type fakeCompute struct{}

func (fakeCompute) Launch(context.Context, string, string, int, string) ([]datastore.Instance, error) {
	return nil, errors.New("not here")
}
func (fakeCompute) Stop(context.Context, string, string) error    { return nil }
func (fakeCompute) Restart(context.Context, string, string) error { return nil }
func (fakeCompute) Delete(context.Context, string, string) error  { return nil }
func (fakeCompute) ConfirmTenant(context.Context, string) error   { return nil }

func newTestEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	store := datastore.NewMemory()
	t.Cleanup(func() { store.Close() })
	for _, u := range [][4]string{{"admin", "secret", "admin", "admin"}, {"alice", "apw", "A", "member"}, {"bob", "bpw", "B", "member"}} {
		if err := Bootstrap(ctx, store, u[0], u[1], u[2], u[3], bcrypt.MinCost); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{store: store, clock: &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)}, proj: map[string]string{}}
	for _, n := range []string{"admin", "A", "B"} {
		p, err := store.ProjectByName(ctx, DefaultDomainID, n)
		if err != nil {
			t.Fatal(err)
		}
		e.proj[n] = p.ID
	}
	cfg := NewConfig(store)
	cfg.Now = e.clock.Now
	cfg.BcryptCost = bcrypt.MinCost
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	h, err := api.New(api.Config{Compute: fakeCompute{}, Store: store, Auth: svc})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(svc.Mount(h))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func passwordAuth(user, pw, projectScope string) string {
	scope := ""
	if projectScope != "" {
		scope = `,"scope":{"project":` + projectScope + `}`
	}
	return `{"auth":{"identity":{"methods":["password"],"password":{"user":` +
		`{"name":"` + user + `","domain":{"id":"default"},"password":"` + pw + `"}}}` + scope + `}}`
}

func byName(p string) string { return `{"name":"` + p + `","domain":{"name":"Default"}}` }

// login returns a token for user scoped to project name p.
func (e *env) login(t *testing.T, user, pw, p string) string {
	t.Helper()
	resp, b := e.do(t, "POST", "/v3/auth/tokens", passwordAuth(user, pw, byName(p)))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login %s: %d %s", user, resp.StatusCode, b)
	}
	return resp.Header.Get("X-Subject-Token")
}

// TestTokenShape checks the issued token field by field against
// Keystone's v3 JSON.
func TestTokenShape(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ImageURL = "https://img:9292/" })
	resp, b := e.do(t, "POST", "/v3/auth/tokens", passwordAuth("alice", "apw", byName("A")))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	tok := resp.Header.Get("X-Subject-Token")
	if len(tok) < 40 || strings.Contains(string(b), tok) {
		t.Fatalf("token %q (must be long and not in the body)", tok)
	}
	var body struct {
		Token map[string]json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	tk := body.Token
	for _, k := range []string{"methods", "user", "project", "roles", "catalog", "expires_at", "issued_at", "audit_ids", "is_domain"} {
		if _, ok := tk[k]; !ok {
			t.Errorf("token has no %q: %s", k, b)
		}
	}
	var methods []string
	json.Unmarshal(tk["methods"], &methods)
	if len(methods) != 1 || methods[0] != "password" {
		t.Errorf("methods %v", methods)
	}
	alice, _ := e.store.UserByName(context.Background(), "default", "alice")
	var user map[string]any
	json.Unmarshal(tk["user"], &user)
	want := map[string]any{"id": alice.ID, "name": "alice", "domain": map[string]any{"id": "default", "name": "Default"}, "password_expires_at": nil}
	if fmt.Sprint(user) != fmt.Sprint(want) {
		t.Errorf("user %v, want %v", user, want)
	}
	var project map[string]any
	json.Unmarshal(tk["project"], &project)
	want = map[string]any{"id": e.proj["A"], "name": "A", "domain": map[string]any{"id": "default", "name": "Default"}}
	if fmt.Sprint(project) != fmt.Sprint(want) {
		t.Errorf("project %v, want %v", project, want)
	}
	var roles []map[string]string
	json.Unmarshal(tk["roles"], &roles)
	if len(roles) != 1 || roles[0]["name"] != "member" || roles[0]["id"] == "" {
		t.Errorf("roles %v", roles)
	}
	var iat, exp string
	json.Unmarshal(tk["issued_at"], &iat)
	json.Unmarshal(tk["expires_at"], &exp)
	if iat != "2026-03-04T05:06:07.123456Z" || exp != "2026-03-04T06:06:07.123456Z" {
		t.Errorf("issued_at %s expires_at %s", iat, exp)
	}
	var catalog []struct {
		ID, Type, Name string
		Endpoints      []map[string]string
	}
	json.Unmarshal(tk["catalog"], &catalog)
	urls := map[string]string{
		"compute":  e.srv.URL + "/v2.1/" + e.proj["A"],
		"identity": e.srv.URL + "/v3",
		"image":    "https://img:9292",
	}
	names := map[string]string{"compute": "ciao", "identity": "keystone", "image": "glance"}
	if len(catalog) != len(urls) {
		t.Fatalf("catalog %+v", catalog)
	}
	for _, c := range catalog {
		if c.ID == "" || c.Name != names[c.Type] || len(c.Endpoints) != 3 {
			t.Errorf("catalog entry %+v", c)
		}
		ifaces := map[string]bool{}
		for _, ep := range c.Endpoints {
			ifaces[ep["interface"]] = true
			if ep["url"] != urls[c.Type] || ep["region"] != "RegionOne" || ep["region_id"] != "RegionOne" || ep["id"] == "" {
				t.Errorf("%s endpoint %v, want url %s", c.Type, ep, urls[c.Type])
			}
		}
		if !ifaces["public"] || !ifaces["internal"] || !ifaces["admin"] {
			t.Errorf("%s interfaces %v", c.Type, ifaces)
		}
	}
}

// TestImageOnBase: with ImageOnBase (the controller's own image API) the
// catalog's image endpoint is the base URL the client used; ImageURL,
// when set, wins.
func TestImageOnBase(t *testing.T) {
	for _, c := range []struct{ imageURL, want string }{{"", ""}, {"https://img:9292", "https://img:9292"}} {
		e := newTestEnv(t, func(cfg *Config) { cfg.ImageOnBase, cfg.ImageURL = true, c.imageURL })
		resp, b := e.do(t, "POST", "/v3/auth/tokens", passwordAuth("alice", "apw", byName("A")))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var body struct {
			Token struct {
				Catalog []struct {
					Type      string
					Endpoints []struct{ URL string }
				}
			}
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		want := c.want
		if want == "" {
			want = e.srv.URL
		}
		n := 0
		for _, s := range body.Token.Catalog {
			if s.Type != "image" {
				continue
			}
			n++
			for _, ep := range s.Endpoints {
				if ep.URL != want {
					t.Errorf("image endpoint %s, want %s", ep.URL, want)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d image services in %s", n, b)
		}
	}
}

func TestCreateTokenErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, _ := e.store.UserByName(context.Background(), "default", "alice")
	byID := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"` + alice.ID + `","password":"apw"}}},` +
		`"scope":{"project":{"id":"` + e.proj["A"] + `"}}}}`
	cases := []struct {
		name, body string
		code       int
	}{
		{"ok by name", passwordAuth("alice", "apw", byName("A")), 201},
		{"ok by id", byID, 201},
		{"ok unscoped", passwordAuth("alice", "apw", ""), 201},
		{"wrong password", passwordAuth("alice", "nope", byName("A")), 401},
		{"unknown user", passwordAuth("mallory", "apw", byName("A")), 401},
		{"unknown project", passwordAuth("alice", "apw", byName("Z")), 401},
		{"unknown project id", passwordAuth("alice", "apw", `{"id":"nope"}`), 401},
		{"no role on project", passwordAuth("alice", "apw", byName("B")), 401},
		{"project domain name in lower case", passwordAuth("alice", "apw", `{"name":"A","domain":{"name":"default"}}`), 201},
		{"unknown domain name", passwordAuth("alice", "apw", `{"name":"A","domain":{"name":"other"}}`), 401},
		{"unknown domain", strings.Replace(passwordAuth("alice", "apw", ""), `"id":"default"`, `"id":"other"`, 1), 401},
		{"domain scope", strings.Replace(passwordAuth("alice", "apw", ""), `}}}}`, `}}},"scope":{"domain":{"id":"default"}}}`, 1), 401},
		{"unsupported method", `{"auth":{"identity":{"methods":["totp"]}}}`, 401},
		{"malformed json", `{"auth":`, 400},
		{"not an object", `[1,2]`, 400},
		{"no identity", `{"auth":{}}`, 400},
		{"no user", `{"auth":{"identity":{"methods":["password"],"password":{}}}}`, 400},
		{"name without domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"alice","password":"apw"}}}}}`, 400},
		{"bad scope", strings.Replace(passwordAuth("alice", "apw", ""), `}}}}`, `}}},"scope":{"project":7}}`, 1), 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v3/auth/tokens", c.body)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.code, b)
			}
			if c.code == 201 {
				return
			}
			var eb struct {
				Error struct {
					Code           int
					Title, Message string
				}
			}
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code != c.code ||
				eb.Error.Title != http.StatusText(c.code) || eb.Error.Message == "" {
				t.Fatalf("error body %s (%v)", b, err)
			}
			if c.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Keystone uri=") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestValidateAndRevoke(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.login(t, "admin", "secret", "admin")
	alice := e.login(t, "alice", "apw", "A")
	bob := e.login(t, "bob", "bpw", "B")

	resp, b := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", alice)
	if resp.StatusCode != 200 || resp.Header.Get("X-Subject-Token") != alice || !bytes.Contains(b, []byte(`"name":"alice"`)) {
		t.Fatalf("validate: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(t, "HEAD", "/v3/auth/tokens", "", "X-Auth-Token", alice, "X-Subject-Token", alice); resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	if resp, b := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", "bogus"); resp.StatusCode != 404 {
		t.Fatalf("unknown subject: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", "bogus", "X-Subject-Token", alice); resp.StatusCode != 401 {
		t.Fatalf("unknown caller: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/v3/auth/tokens", "", "X-Subject-Token", alice); resp.StatusCode != 401 {
		t.Fatalf("no caller: %d", resp.StatusCode)
	}

	// Authenticator view.
	ctx := context.Background()
	id, err := e.svc.Authenticate(ctx, alice)
	if err != nil || id.TenantID != e.proj["A"] || id.ProjectName != "A" || id.IsAdmin() || len(id.Roles) != 1 {
		t.Fatalf("authenticate alice = %+v %v", id, err)
	}
	if id, err := e.svc.Authenticate(ctx, admin); err != nil || !id.IsAdmin() {
		t.Fatalf("authenticate admin = %+v %v", id, err)
	}

	// Bob may not revoke Alice's token; Alice may revoke her own.
	if resp, _ := e.do(t, "DELETE", "/v3/auth/tokens", "", "X-Auth-Token", bob, "X-Subject-Token", alice); resp.StatusCode != 403 {
		t.Fatalf("bob revokes alice: %d", resp.StatusCode)
	}
	if resp, b := e.do(t, "DELETE", "/v3/auth/tokens", "", "X-Auth-Token", alice, "X-Subject-Token", alice); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", alice); resp.StatusCode != 404 {
		t.Fatalf("revoked subject: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "DELETE", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", alice); resp.StatusCode != 404 {
		t.Fatalf("revoke twice: %d", resp.StatusCode)
	}
	if _, err := e.svc.Authenticate(ctx, alice); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	if resp, _ := e.do(t, "GET", "/v2.1/"+e.proj["A"]+"/servers/detail", "", "X-Auth-Token", alice); resp.StatusCode != 401 {
		t.Fatalf("revoked token on compute API: %d", resp.StatusCode)
	}
	// The admin may revoke anyone's token.
	if resp, _ := e.do(t, "DELETE", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", bob); resp.StatusCode != 204 {
		t.Fatalf("admin revokes bob: %d", resp.StatusCode)
	}
}

func TestExpiry(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TokenTTL = 10 * time.Minute })
	admin := e.login(t, "admin", "secret", "admin")
	e.clock.Add(5 * time.Minute)
	alice := e.login(t, "alice", "apw", "A")
	e.clock.Add(5 * time.Minute) // admin's token is exactly at its expiry
	if _, err := e.svc.Authenticate(context.Background(), admin); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("expired token authenticates: %v", err)
	}
	if resp, _ := e.do(t, "GET", "/v2.1/tenants", "", "X-Auth-Token", admin); resp.StatusCode != 401 {
		t.Fatalf("expired admin token on compute API: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", alice); resp.StatusCode != 401 {
		t.Fatalf("expired caller: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/v3/auth/tokens", "", "X-Auth-Token", alice, "X-Subject-Token", admin); resp.StatusCode != 404 {
		t.Fatalf("expired subject: %d", resp.StatusCode)
	}
	// Issuing prunes expired rows.
	e.login(t, "bob", "bpw", "B")
	if _, err := e.store.Token(context.Background(), hashToken(admin)); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("expired token not pruned: %v", err)
	}
}

func TestRescopeAndProjects(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	alice, _ := e.store.UserByName(ctx, "default", "alice")
	bob, _ := e.store.UserByName(ctx, "default", "bob")
	if err := e.store.Grant(ctx, alice.ID, e.proj["B"], "member"); err != nil {
		t.Fatal(err)
	}
	resp, _ := e.do(t, "POST", "/v3/auth/tokens", passwordAuth("alice", "apw", ""))
	unscoped := resp.Header.Get("X-Subject-Token")
	if id, err := e.svc.Authenticate(ctx, unscoped); err != nil || id.TenantID != "" || id.IsAdmin() {
		t.Fatalf("unscoped = %+v %v", id, err)
	}
	if resp, _ := e.do(t, "GET", "/v2.1/"+e.proj["A"]+"/servers/detail", "", "X-Auth-Token", unscoped); resp.StatusCode != 401 {
		t.Fatalf("unscoped token on compute API: %d", resp.StatusCode)
	}

	resp, b := e.do(t, "GET", "/v3/auth/projects", "", "X-Auth-Token", unscoped)
	var list struct {
		Projects []struct {
			ID, Name string
			DomainID string `json:"domain_id"`
			Enabled  bool
		}
	}
	if err := json.Unmarshal(b, &list); resp.StatusCode != 200 || err != nil || len(list.Projects) != 2 {
		t.Fatalf("auth/projects: %d %s", resp.StatusCode, b)
	}
	resp, b2 := e.do(t, "GET", "/v3/projects", "", "X-Auth-Token", unscoped)
	if resp.StatusCode != 200 || !bytes.Equal(bytes.Replace(b2, []byte("/v3/projects"), []byte("/v3/auth/projects"), 1), b) {
		t.Fatalf("GET /v3/projects: %d %s, want the same as auth/projects %s", resp.StatusCode, b2, b)
	}

	// Rescope the unscoped token to B with the token method.
	body := `{"auth":{"identity":{"methods":["token"],"token":{"id":"` + unscoped + `"}},"scope":{"project":{"id":"` + e.proj["B"] + `"}}}}`
	resp, b = e.do(t, "POST", "/v3/auth/tokens", body)
	if resp.StatusCode != 201 {
		t.Fatalf("rescope: %d %s", resp.StatusCode, b)
	}
	if id, err := e.svc.Authenticate(ctx, resp.Header.Get("X-Subject-Token")); err != nil || id.TenantID != e.proj["B"] {
		t.Fatalf("rescoped = %+v %v", id, err)
	}
	bad := strings.Replace(body, unscoped, "bogus", 1)
	if resp, _ := e.do(t, "POST", "/v3/auth/tokens", bad); resp.StatusCode != 401 {
		t.Fatalf("rescope with bogus token: %d", resp.StatusCode)
	}

	if resp, _ := e.do(t, "GET", "/v3/users/"+alice.ID+"/projects", "", "X-Auth-Token", unscoped); resp.StatusCode != 200 {
		t.Fatalf("own projects: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/v3/users/"+bob.ID+"/projects", "", "X-Auth-Token", unscoped); resp.StatusCode != 403 {
		t.Fatalf("bob's projects as alice: %d", resp.StatusCode)
	}
	admin := e.login(t, "admin", "secret", "admin")
	resp, b = e.do(t, "GET", "/v3/users/"+bob.ID+"/projects", "", "X-Auth-Token", admin)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(e.proj["B"])) {
		t.Fatalf("bob's projects as admin: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(t, "GET", "/v3/users/nope/projects", "", "X-Auth-Token", admin); resp.StatusCode != 404 {
		t.Fatalf("unknown user's projects: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v3/auth/projects", "/v3/projects"} {
		if resp, _ := e.do(t, "GET", p, ""); resp.StatusCode != 401 {
			t.Fatalf("%s without token: %d", p, resp.StatusCode)
		}
	}
	if resp, b := e.do(t, "GET", "/v3", ""); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"v3.14"`)) {
		t.Fatalf("version: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(t, "GET", "/v3/nothing", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown route: %d", resp.StatusCode)
	}
}

// TestMiddleware drives the compute API's authorization (§3.3, §3.4)
// with tokens from this service.
func TestMiddleware(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.login(t, "admin", "secret", "admin")
	alice := e.login(t, "alice", "apw", "A")
	a, b := e.proj["A"], e.proj["B"]
	cases := []struct {
		name, path, token string
		code              int
	}{
		{"no token", "/v2.1/" + a + "/servers/detail", "", 401},
		{"own tenant", "/v2.1/" + a + "/servers/detail", alice, 200},
		{"other tenant", "/v2.1/" + b + "/servers/detail", alice, 401},
		{"admin any tenant", "/v2.1/" + b + "/servers/detail", admin, 200},
		{"member on admin route", "/v2.1/tenants", alice, 401},
		{"member on admin events", "/v2.1/events", alice, 401},
		{"admin on admin route", "/v2.1/tenants", admin, 200},
		{"bogus token", "/v2.1/" + a + "/servers/detail", "bogus", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.token != "" {
				hdr = []string{"X-Auth-Token", c.token}
			}
			resp, body := e.do(t, "GET", c.path, "", hdr...)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.code, body)
			}
		})
	}
}

// TestPersistence: tokens and users survive a reopen of the SQLite store.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	open := func() *datastore.SQLite {
		s, err := datastore.OpenSQLite(ctx, datastore.NewConfig(path))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if err := Bootstrap(ctx, s, "admin", "secret", "admin", "admin", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	svc, err := New(NewConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	resp, err := http.Post(srv.URL+"/v3/auth/tokens", "application/json", strings.NewReader(passwordAuth("admin", "secret", byName("admin"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Close()
	tok := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != 201 || tok == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	s.Close()

	s = open()
	defer s.Close()
	svc, err = New(NewConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := svc.Authenticate(ctx, tok); err != nil || !id.IsAdmin() {
		t.Fatalf("after reopen = %+v %v", id, err)
	}
	// Bootstrap again: the password changes, nothing is duplicated.
	if err := Bootstrap(ctx, s, "admin", "new", "admin", "admin", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	u, _ := s.UserByName(ctx, "default", "admin")
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("new")) != nil {
		t.Fatal("password not updated")
	}
	if ps, _ := s.UserProjects(ctx, u.ID); len(ps) != 1 {
		t.Fatalf("projects %+v", ps)
	}
}

func TestBootstrapAndConfig(t *testing.T) {
	ctx := context.Background()
	s := datastore.NewMemory()
	defer s.Close()
	for _, a := range [][4]string{{"", "p", "x", "admin"}, {"u", "", "x", "admin"}, {"u", "p", "", "admin"}, {"u", "p", "x", ""}} {
		if err := Bootstrap(ctx, s, a[0], a[1], a[2], a[3], bcrypt.MinCost); !errors.Is(err, ErrBadRequest) {
			t.Errorf("bootstrap %q: %v", a, err)
		}
	}
	bad := []func(*Config){
		func(c *Config) { c.Store = nil },
		func(c *Config) { c.TokenTTL = 0 },
		func(c *Config) { c.Region = "" },
		func(c *Config) { c.BcryptCost = 99 },
	}
	for i, m := range bad {
		c := NewConfig(s)
		m(&c)
		if _, err := New(c); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

// TestRemote validates tokens against this package's own service acting
// as the external Keystone, including a service token that expires.
func TestRemote(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TokenTTL = 10 * time.Minute })
	r, err := NewRemote(RemoteConfig{URL: e.srv.URL + "/", User: "admin", Password: "secret", Project: "admin", Client: e.srv.Client(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice := e.login(t, "alice", "apw", "A")
	id, err := r.Authenticate(ctx, alice)
	if err != nil || id.TenantID != e.proj["A"] || id.ProjectName != "A" || id.IsAdmin() {
		t.Fatalf("alice = %+v %v", id, err)
	}
	if _, err := r.Authenticate(ctx, "bogus"); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("bogus: %v", err)
	}
	// The service token expires (server-side, clock moved): Remote still
	// thinks it is good, gets 401 and logs in again.
	e.clock.Add(9 * time.Minute)
	alice = e.login(t, "alice", "apw", "A")
	r.mu.Lock()
	r.expires = time.Now().Add(time.Hour)
	r.mu.Unlock()
	e.clock.Add(2 * time.Minute)
	if id, err := r.Authenticate(ctx, alice); err != nil || id.TenantID != e.proj["A"] {
		t.Fatalf("after service token expiry = %+v %v", id, err)
	}
	if _, err := NewRemote(RemoteConfig{URL: "x"}); err == nil {
		t.Fatal("incomplete config accepted")
	}
	bad, _ := NewRemote(RemoteConfig{URL: e.srv.URL, User: "admin", Password: "wrong", Project: "admin", Client: e.srv.Client()})
	if _, err := bad.Authenticate(ctx, alice); err == nil || errors.Is(err, api.ErrBadToken) {
		t.Fatalf("wrong service password: %v", err)
	}
}

// TestAuthenticateCache: a validated token is answered from memory (the
// store is not read again within CacheTTL), still stops exactly at its
// expiry, is dropped at once when revoked, and a token deleted behind the
// service's back is refused after CacheTTL.
func TestAuthenticateCache(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TokenTTL = 10 * time.Minute; c.CacheTTL = time.Minute })
	ctx := context.Background()
	alice := e.login(t, "alice", "apw", "A")
	id, err := e.svc.Authenticate(ctx, alice)
	if err != nil || id.TenantID != e.proj["A"] {
		t.Fatalf("authenticate: %+v %v", id, err)
	}
	// Delete the token in the store behind the service's back (as
	// another process would): the cached answer holds for CacheTTL, then
	// the store is read again.
	if err := e.store.DeleteToken(ctx, hashToken(alice)); err != nil { // behind the service's back
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, alice); err != nil {
		t.Fatalf("within CacheTTL the cached answer should hold: %v", err)
	}
	e.clock.Add(time.Minute)
	if _, err := e.svc.Authenticate(ctx, alice); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("after CacheTTL the deleted token still authenticates: %v", err)
	}
	// Expiry is exact even when cached.
	bob := e.login(t, "bob", "bpw", "B")
	if _, err := e.svc.Authenticate(ctx, bob); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(10*time.Minute - time.Nanosecond)
	if _, err := e.svc.Authenticate(ctx, bob); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	e.clock.Add(time.Nanosecond)
	if _, err := e.svc.Authenticate(ctx, bob); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("cached token authenticates at its expiry: %v", err)
	}
	// Revocation through the service drops the cached answer at once.
	admin := e.login(t, "admin", "secret", "admin")
	if _, err := e.svc.Authenticate(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(t, "DELETE", "/v3/auth/tokens", "", "X-Auth-Token", admin, "X-Subject-Token", admin); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if _, err := e.svc.Authenticate(ctx, admin); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("revoked token still authenticates: %v", err)
	}
}
