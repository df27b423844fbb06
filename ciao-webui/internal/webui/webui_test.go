package webui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUpstream is a controller with a Keystone v3 subset: user "u"
// (password "p") is a member of project "demo"; user "multi" of two
// projects. It records the last compute request.
type fakeUpstream struct {
	mu      sync.Mutex
	revoked map[string]bool
	last    *http.Request // guarded by mu
	lastHdr http.Header   // guarded by mu
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tokenBody := func(project string) map[string]any {
		t := map[string]any{"expires_at": time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"),
			"user": map[string]string{"name": "u"}, "roles": []map[string]string{{"name": "member"}}}
		if project != "" {
			t["project"] = map[string]string{"id": "P-" + project, "name": project}
		}
		return map[string]any{"token": t}
	}
	switch {
	case r.URL.Path == "/v3/auth/tokens" && r.Method == http.MethodPost:
		var req struct {
			Auth struct {
				Identity struct {
					Methods  []string
					Password struct {
						User struct{ Name, Password string }
					}
					Token struct{ ID string }
				}
				Scope *struct{ Project struct{ ID, Name string } }
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		id := req.Auth.Identity
		if id.Methods[0] == "password" && (id.Password.User.Password != "p" || (id.Password.User.Name != "u" && id.Password.User.Name != "multi")) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":401,"message":"The request you have made requires authentication."}}`)
			return
		}
		project := ""
		if req.Auth.Scope != nil {
			project = req.Auth.Scope.Project.Name + strings.TrimPrefix(req.Auth.Scope.Project.ID, "P-")
		}
		w.Header().Set("X-Subject-Token", "tok-"+id.Password.User.Name+"-"+project)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(tokenBody(project))
	case r.URL.Path == "/v3/auth/projects":
		ps := []map[string]string{{"id": "P-demo", "name": "demo"}}
		if strings.HasPrefix(r.Header.Get("X-Auth-Token"), "tok-multi") {
			ps = append(ps, map[string]string{"id": "P-other", "name": "other"})
		}
		json.NewEncoder(w).Encode(map[string]any{"projects": ps})
	case r.URL.Path == "/v3/auth/tokens" && r.Method == http.MethodGet:
		if f.revoked[r.Header.Get("X-Subject-Token")] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(tokenBody("demo"))
	case r.URL.Path == "/v3/auth/tokens" && r.Method == http.MethodDelete:
		f.revoked[r.Header.Get("X-Subject-Token")] = true
		w.WriteHeader(http.StatusNoContent)
	default:
		f.last, f.lastHdr = r, r.Header.Clone()
		if f.revoked[r.Header.Get("X-Auth-Token")] {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"code":403,"name":"Forbidden","message":"over tenant limits"}}`)
	}
}

func newTest(t *testing.T) (*httptest.Server, *fakeUpstream) {
	t.Helper()
	up := &fakeUpstream{revoked: map[string]bool{}}
	ctl := httptest.NewServer(up)
	t.Cleanup(ctl.Close)
	srv, err := New(NewConfig(ctl.URL))
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewTLSServer(srv)
	t.Cleanup(web.Close)
	return web, up
}

type answer struct {
	code    int
	body    map[string]any
	cookies []*http.Cookie
}

func (a answer) message() string {
	e, _ := a.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func call(t *testing.T, web *httptest.Server, method, path, body, cookie string, csrf bool) answer {
	t.Helper()
	req, _ := http.NewRequest(method, web.URL+path, strings.NewReader(body))
	if csrf {
		req.Header.Set("X-Ciao-Webui", "1")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	}
	resp, err := web.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, cookies: resp.Cookies()}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &a.body)
	return a
}

func TestSignIn(t *testing.T) {
	web, _ := newTest(t)
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string // in the error message
		project    string
	}{
		{"ok", `{"user":"u","password":"p","project":"demo"}`, 201, "", "demo"},
		{"only project", `{"user":"u","password":"p"}`, 201, "", "demo"},
		{"several projects", `{"user":"multi","password":"p"}`, 400, "enter one of: demo, other", ""},
		{"wrong password", `{"user":"u","password":"x","project":"demo"}`, 401, "the user name, password or project is wrong", ""},
		{"missing password", `{"user":"u"}`, 400, "Enter a user name and a password", ""},
		{"not JSON", `user=u`, 400, "not valid JSON", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, web, http.MethodPost, "/session", tc.body, "", true)
			if a.code != tc.code || !strings.Contains(a.message(), tc.msg) {
				t.Fatalf("got %d %q, want %d %q", a.code, a.message(), tc.code, tc.msg)
			}
			if tc.code != 201 {
				if len(a.cookies) != 0 {
					t.Errorf("cookie set on failure: %v", a.cookies)
				}
				return
			}
			if a.body["project_name"] != tc.project || a.body["project_id"] != "P-"+tc.project {
				t.Errorf("session %v", a.body)
			}
			if len(a.cookies) != 1 {
				t.Fatalf("cookies %v", a.cookies)
			}
			c := a.cookies[0]
			if c.Name != CookieName || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Expires.IsZero() {
				t.Errorf("cookie %+v", c)
			}
			if _, ok := a.body["token"]; ok || strings.Contains(strings.ToLower(strings.Join(keys(a.body), ",")), "tok") {
				t.Errorf("the token leaked into the body: %v", a.body)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRelayAndSession(t *testing.T) {
	web, up := newTest(t)
	// No cookie: refused by the webui, nothing reaches the controller.
	if a := call(t, web, http.MethodGet, "/api/v2.1/P-demo/servers/detail", "", "", false); a.code != 401 || !strings.Contains(a.message(), "not signed in") {
		t.Errorf("no cookie: %d %q", a.code, a.message())
	}
	if up.last != nil {
		t.Errorf("request reached the controller: %v", up.last.URL)
	}
	// A state change without the header is refused (CSRF).
	if a := call(t, web, http.MethodPost, "/api/v2.1/P-demo/servers", `{}`, "tok-u-demo", false); a.code != 403 || !strings.Contains(a.message(), "X-Ciao-Webui") {
		t.Errorf("no CSRF header: %d %q", a.code, a.message())
	}
	// The relay: path mapped, token in X-Auth-Token, no cookie forwarded,
	// and the controller's error passed on.
	a := call(t, web, http.MethodPost, "/api/v2.1/P-demo/servers", `{}`, "tok-u-demo", true)
	if a.code != 403 || a.message() != "over tenant limits" {
		t.Errorf("relayed error: %d %q", a.code, a.message())
	}
	up.mu.Lock()
	if up.last.URL.Path != "/v2.1/P-demo/servers" || up.lastHdr.Get("X-Auth-Token") != "tok-u-demo" || up.lastHdr.Get("Cookie") != "" || up.lastHdr.Get("X-Ciao-Webui") != "" {
		t.Errorf("relayed request: %s %v", up.last.URL.Path, up.lastHdr)
	}
	up.mu.Unlock()
	// Only the compute, workloads and image APIs are relayed.
	if a := call(t, web, http.MethodGet, "/api/v3/auth/tokens", "", "tok-u-demo", false); a.code != 404 {
		t.Errorf("/api/v3: %d", a.code)
	}
	call(t, web, http.MethodDelete, "/api/P-demo/workloads/W1", "", "tok-u-demo", true)
	up.mu.Lock()
	if up.last.URL.Path != "/P-demo/workloads/W1" || up.last.Method != http.MethodDelete || up.lastHdr.Get("X-Auth-Token") != "tok-u-demo" {
		t.Errorf("relayed workload delete: %s %s %v", up.last.Method, up.last.URL.Path, up.lastHdr)
	}
	up.mu.Unlock()
	// Who am I, then sign out: the token is revoked, the cookie cleared,
	// and the session is gone.
	if a := call(t, web, http.MethodGet, "/session", "", "tok-u-demo", false); a.code != 200 || a.body["project_id"] != "P-demo" {
		t.Errorf("session: %d %v", a.code, a.body)
	}
	a = call(t, web, http.MethodDelete, "/session", "", "tok-u-demo", true)
	if a.code != 204 || len(a.cookies) != 1 || a.cookies[0].MaxAge >= 0 {
		t.Errorf("sign out: %d %v", a.code, a.cookies)
	}
	if a := call(t, web, http.MethodGet, "/session", "", "tok-u-demo", false); a.code != 401 || !strings.Contains(a.message(), "expired or was revoked") {
		t.Errorf("session after sign-out: %d %q", a.code, a.message())
	}
	if a := call(t, web, http.MethodGet, "/api/v2.1/P-demo/servers/detail", "", "tok-u-demo", false); a.code != 401 {
		t.Errorf("API after sign-out: %d", a.code)
	}
}

func TestControllerDown(t *testing.T) {
	ctl := httptest.NewServer(http.NotFoundHandler())
	url := ctl.URL
	ctl.Close()
	srv, err := New(NewConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewTLSServer(srv)
	defer web.Close()
	if a := call(t, web, http.MethodGet, "/api/v2.1/T/servers/detail", "", "tok", false); a.code != 502 || !strings.Contains(a.message(), "cannot be reached") {
		t.Errorf("relay: %d %q", a.code, a.message())
	}
	if a := call(t, web, http.MethodPost, "/session", `{"user":"u","password":"p"}`, "", true); a.code != 502 || !strings.Contains(a.message(), "identity service") {
		t.Errorf("sign in: %d %q", a.code, a.message())
	}
}

func TestAssetsAndHeaders(t *testing.T) {
	web, _ := newTest(t)
	for _, path := range []string{"/", "/app.js", "/vendor/uPlot.iife.min.js"} {
		resp, err := web.Client().Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if !strings.Contains(mustRead(t, "vendor/uPlot.iife.min.js")[:400], "MIT License") {
		t.Error("uPlot's licence header is missing")
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	f, err := Assets().Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{NewConfig(""), NewConfig("ftp://x"), NewConfig("https://"), {ControllerURL: "https://x"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	bad := NewConfig("https://x")
	bad.AssetsDir = t.TempDir()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("assets directory without index.html: %v", err)
	}
	if _, _, err := LoadOrGenerateCert("a.pem", "", nil); err == nil {
		t.Error("cert without key accepted")
	}
	if c, fp, err := LoadOrGenerateCert("", "", []string{"localhost", "127.0.0.1"}); err != nil || fp == "" || len(c.Certificate) != 1 {
		t.Errorf("generated cert: %v %q", err, fp)
	}
}

func TestAssetsDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>dev copy</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig("https://127.0.0.1:1")
	cfg.AssetsDir = dir
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewTLSServer(srv)
	defer web.Close()
	resp, err := web.Client().Get(web.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "<p>dev copy</p>" {
		t.Errorf("GET / served %q, want the directory's copy", b)
	}
}

func TestRelayable(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v2.1/P/servers/detail": true,
		"/api/workloads":             true,
		"/api/workloads/W":           true,
		"/api/P-demo/workloads":      true,
		"/api/P-demo/workloads/W":    true,
		"/api/v2/images":             true,
		"/api/v2/images/I":           true,
		"/api/v2/imagesX":            false,
		"/api/v3/auth/tokens":        false,
		"/api/v3/workloads":          false,
		"/api/P/servers":             false,
		"/api/P/workloadsX":          false,
		"/api//workloads":            false,
		"/api/a/b/workloads":         false,
		"/api/":                      false,
		"/session":                   false,
	} {
		if got := relayable(path); got != want {
			t.Errorf("relayable(%q) = %v, want %v", path, got, want)
		}
	}
}
