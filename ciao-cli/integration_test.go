package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeController mimics the JSON of ciao-controller's compute API
// (ciao-controller/internal/api) and a Keystone v3 token endpoint. Token
// "tok" is tenant T1's, "admin" is an admin token; Keystone user
// "demo"/"secret" gets token "ks-tok", scoped to T1.
type fakeController struct {
	mu      sync.Mutex
	servers []map[string]any // guarded by mu, in creation order
	shows   map[string]int   // guarded by mu: GETs per server
	logins  int              // guarded by mu: POST /v3/auth/tokens
	next    int              // guarded by mu
}

func (f *fakeController) handler() http.Handler {
	m := http.NewServeMux()
	tenant := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			tok := r.Header.Get("X-Auth-Token")
			if !(tok == "admin" || (tok == "tok" || tok == "ks-tok") && r.PathValue("tenant") == "T1") {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			h(w, r)
		})
	}
	m.HandleFunc("POST /v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string } `json:"user"`
					} `json:"password"`
				} `json:"identity"`
			} `json:"auth"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		u := req.Auth.Identity.Password.User
		if u.Name != "demo" || u.Password != "secret" {
			writeErr(w, http.StatusUnauthorized, "The request you have made requires authentication.")
			return
		}
		f.mu.Lock()
		f.logins++
		f.mu.Unlock()
		w.Header().Set("X-Subject-Token", "ks-tok")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":{"expires_at":%q,"project":{"id":"T1","name":"demo"},"user":{"id":"u1","name":"demo"}}}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	})
	m.HandleFunc("GET /v3/users/{user}/projects", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "ks-tok" || r.PathValue("user") != "u1" {
			writeErr(w, http.StatusUnauthorized, "bad token")
			return
		}
		writeJSONResp(w, 200, map[string]any{"projects": []map[string]string{{"id": "T1", "name": "demo"}}})
	})
	tenant("GET /v2.1/tenants", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "admin" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		writeJSONResp(w, 200, map[string]any{"tenants": []map[string]string{{"id": "T1", "name": "demo"}, {"id": "T2", "name": "other"}}})
	})
	tenant("GET /v2.1/{tenant}/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"events": []map[string]string{
			{"time_stamp": "2016-10-18T10:21:07Z", "tenant_id": "T1", "type": "info", "message": "Started"}}})
	})
	tenant("GET /v2.1/{tenant}/quotas", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"id": "T1", "instances_limit": 5, "instances_usage": len(f.servers),
			"cpus_limit": -1, "cpus_usage": 4, "ram_limit": -1, "ram_usage": 256, "disk_limit": -1, "disk_usage": 0})
	})
	tenant("GET /v2.1/{tenant}/flavors/detail", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"flavors": []map[string]any{
			{"id": "e35ed972-c46c-4aad-a1e7-ef103ae079a2", "name": "Clear Cloud", "disk": "df3768da-31f5-4ba6-82f0-127a1a705169", "vcpus": 2, "ram": 128}}})
	})
	tenant("POST /v2.1/{tenant}/servers", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Server struct {
				FlavorRef string `json:"flavorRef"`
				MaxCount  int    `json:"max_count"`
			} `json:"server"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if req.Server.FlavorRef != "e35ed972-c46c-4aad-a1e7-ef103ae079a2" {
			writeErr(w, http.StatusNotFound, "workload "+req.Server.FlavorRef+" not found")
			return
		}
		var out []map[string]any
		for i := 0; i < max(req.Server.MaxCount, 1); i++ {
			f.next++
			s := map[string]any{"id": fmt.Sprintf("%08d-0000-4000-8000-000000000000", f.next), "status": "pending",
				"tenant_id": "T1", "flavor": map[string]any{"id": req.Server.FlavorRef}, "hostId": "",
				"addresses": map[string]any{"private": []map[string]any{{"addr": fmt.Sprintf("172.16.0.%d", f.next+1), "OS-EXT-IPS-MAC:mac_addr": "02:00:ac:10:00:02"}}}}
			f.servers = append(f.servers, s)
			out = append(out, s)
		}
		writeJSONResp(w, http.StatusAccepted, map[string]any{"total_servers": len(out), "servers": out})
	})
	tenant("GET /v2.1/{tenant}/servers/detail", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"total_servers": len(f.servers), "servers": append([]map[string]any{}, f.servers...)})
	})
	find := func(id string) int {
		for i, s := range f.servers {
			if s["id"] == id {
				return i
			}
		}
		return -1
	}
	tenant("GET /v2.1/{tenant}/servers/{server}", func(w http.ResponseWriter, r *http.Request) {
		i := find(r.PathValue("server"))
		if i < 0 {
			writeErr(w, http.StatusNotFound, "server "+r.PathValue("server")+": datastore: not found")
			return
		}
		s := f.servers[i]
		// Instances become active on their second look, for -wait.
		if f.shows[s["id"].(string)]++; f.shows[s["id"].(string)] > 1 {
			s["status"], s["hostId"] = "active", "cn-1"
		}
		writeJSONResp(w, 200, map[string]any{"server": s})
	})
	tenant("DELETE /v2.1/{tenant}/servers/{server}", func(w http.ResponseWriter, r *http.Request) {
		i := find(r.PathValue("server"))
		if i < 0 {
			writeErr(w, http.StatusNotFound, "server not found")
			return
		}
		f.servers = append(f.servers[:i], f.servers[i+1:]...)
		w.WriteHeader(http.StatusNoContent)
	})
	return m
}

func writeJSONResp(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSONResp(w, code, map[string]any{"error": map[string]any{"code": code, "name": http.StatusText(code), "message": msg}})
}

var (
	binDir   string // made by TestMain, removed after the tests
	cliOnce  sync.Once
	cliBin   string
	cliBuild error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "ciao-cli-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// buildCLI builds the real binary once per test run.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the ciao-cli binary")
	}
	cliOnce.Do(func() {
		cliBin = filepath.Join(binDir, "ciao-cli")
		if out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
			cliBuild = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBuild != nil {
		t.Fatal(cliBuild)
	}
	return cliBin
}

type result struct {
	stdout, stderr string
	code           int
}

func TestBinaryAgainstFakeController(t *testing.T) {
	bin := buildCLI(t)
	fc := &fakeController{shows: map[string]int{}}
	srv := httptest.NewTLSServer(fc.handler())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	baseEnv := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"CIAO_CONTROLLER=" + host, "CIAO_COMPUTEPORT=" + port, "CIAO_CA_CERT_FILE=" + caFile}
	tokEnv := append(append([]string{}, baseEnv...), "CIAO_TOKEN=tok", "CIAO_TENANT_ID=T1")

	cli := func(env []string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return result{o.String(), e.String(), code}
	}
	ok := func(env []string, args ...string) string {
		t.Helper()
		r := cli(env, args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}
	fails := func(env []string, want string, args ...string) {
		t.Helper()
		r := cli(env, args...)
		if r.code == 0 {
			t.Errorf("%q: exit 0, want failure", args)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "ciao-cli: ") || !strings.Contains(r.stderr, want) {
			t.Errorf("%q: stderr %q, want one line containing %q", args, r.stderr, want)
		}
		if r.stdout != "" {
			t.Errorf("%q: stdout %q, want none", args, r.stdout)
		}
	}

	got := ok(tokEnv, "workload", "list")
	want := "Workload 1\n\tName: Clear Cloud\n\tUUID:e35ed972-c46c-4aad-a1e7-ef103ae079a2\n\tImage UUID: df3768da-31f5-4ba6-82f0-127a1a705169\n\tCPUs: 2\n\tMemory: 128 MB\n"
	if got != want {
		t.Errorf("workload list:\n got %q\nwant %q", got, want)
	}

	got = ok(tokEnv, "instance", "add", "--workload=e35ed972-c46c-4aad-a1e7-ef103ae079a2", "--instances=2")
	want = "Created new instance: 00000001-0000-4000-8000-000000000000\nCreated new instance: 00000002-0000-4000-8000-000000000000\n"
	if got != want {
		t.Errorf("instance add:\n got %q\nwant %q", got, want)
	}

	got = ok(tokEnv, "instance", "list")
	want = "# UUID                                 Status  Private IP SSH IP SSH PORT\n" +
		"1 00000001-0000-4000-8000-000000000000 pending 172.16.0.2 N/A    N/A\n" +
		"2 00000002-0000-4000-8000-000000000000 pending 172.16.0.3 N/A N/A\n"
	if got != want {
		t.Errorf("instance list:\n got %q\nwant %q", got, want)
	}

	// -f as the Go BAT uses it, and -json.
	var ids []string
	out := ok(tokEnv, "instance", "list", "-f", `[{{range $i,$v := .}}{{if $i}},{{end}}"{{$v.ID | js}}"{{end}}]`)
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) != 2 {
		t.Errorf("instance list -f: %q: %v", out, err)
	}
	var recs []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if out := ok(tokEnv, "instance", "list", "-json"); json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 2 || recs[1].ID != ids[1] {
		t.Errorf("instance list -json: %q", out)
	}

	// show: the first look is pending, then active.
	if got := ok(tokEnv, "instance", "show", "-instance", ids[0], "-f", "{{.Status}}"); got != "pending" {
		t.Errorf("show -f: %q", got)
	}
	got = ok(tokEnv, "instance", "show", "-instance", ids[0])
	if !strings.HasPrefix(got, "\tUUID: "+ids[0]+"\n\tStatus: active\n\tPrivate IP: 172.16.0.2\n") || strings.Count(got, "\n") != 7 {
		t.Errorf("instance show:\n%s", got)
	}

	// add -wait: progress on stderr (not a TTY: plain lines), result by -f.
	r := cli(append(tokEnv, "X=1"), "instance", "add", "-workload", "e35ed972-c46c-4aad-a1e7-ef103ae079a2", "-wait", "-timeout", "20s", "-f", "{{range .}}{{.ID}} {{.Status}}{{end}}")
	if r.code != 0 || r.stdout != "00000003-0000-4000-8000-000000000000 active" || !strings.Contains(r.stderr, "1 active, 0 failed, 0 pending\n") {
		t.Errorf("add -wait: %+v", r)
	}

	if got := ok(tokEnv, "instance", "delete", "-instance", ids[0]); got != "Deleted instance: "+ids[0]+"\n" {
		t.Errorf("delete: %q", got)
	}
	if got := ok(tokEnv, "instance", "list", "-f", "{{len .}}"); got != "2" {
		t.Errorf("after delete: %q instances", got)
	}
	// The fake has no servers/action route: -all deletes one by one.
	if got := ok(tokEnv, "instance", "delete", "-all"); got != "os-delete all instances for tenant T1\n" {
		t.Errorf("delete -all: %q", got)
	}
	if got := ok(tokEnv, "instance", "list"); got != "" {
		t.Errorf("list after delete -all: %q", got)
	}

	if got := ok(tokEnv, "event", "list"); got != "1 Ciao event(s):\n\t[1] 2016-10-18 10:21:07 +0000 UTC: info:Started (Tenant T1)\n" {
		t.Errorf("event list: %q", got)
	}
	if got := ok(tokEnv, "tenant", "list", "-quotas"); got != "Quotas for tenant T1:\n\tInstances: 0 | 5\n\tCPUs:      4 | Unlimited\n\tMemory:    256 | Unlimited\n\tDisk:      0 | Unlimited\n" {
		t.Errorf("tenant list -quotas: %q", got)
	}
	if got := ok(tokEnv, "tenant", "list", "-quotas", "-f", "{{.InstanceLimit}}"); got != "5\n" {
		t.Errorf("tenant list -quotas -f: %q", got)
	}
	adminEnv := append(append([]string{}, baseEnv...), "CIAO_TOKEN=admin")
	if got := ok(adminEnv, "tenant", "list", "-all"); got != "Tenant [1]\n\tUUID: T1\n\tName: demo\nTenant [2]\n\tUUID: T2\n\tName: other\n" {
		t.Errorf("tenant list: %q", got)
	}

	// Keystone login, cached per user and project.
	ksEnv := append(append([]string{}, baseEnv...), "CIAO_IDENTITY="+srv.URL, "CIAO_USERNAME=demo", "CIAO_PASSWORD=secret")
	ok(ksEnv, "instance", "list")
	ok(ksEnv, "workload", "list")
	fc.mu.Lock()
	logins := fc.logins
	fc.mu.Unlock()
	if logins != 2 { // unscoped to find the project, then scoped; then cached
		t.Errorf("%d Keystone logins, want 2 (token cache)", logins)
	}

	// Failures: one line on stderr, nothing on stdout, non-zero exit.
	fails(baseEnv, "missing credentials", "instance", "list")
	fails(append(append([]string{}, baseEnv...), "CIAO_IDENTITY="+srv.URL, "CIAO_USERNAME=demo", "CIAO_PASSWORD=wrong"), "authentication failed", "instance", "list")
	fails(tokEnv, "HTTP 404", "instance", "show", "-instance", "no-such-id")
	fails(tokEnv, "HTTP 401", "tenant", "list")
	fails(tokEnv, "bad -f template", "workload", "list", "-f", "{{.Nope")
	fails(tokEnv, "bad -f template", "workload", "list", "-f", "{{.Nope}}")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	fails(append(tokEnv, "CIAO_COMPUTEPORT="+deadPort), "cannot reach", "instance", "list")
	r = cli(tokEnv, "instance", "add")
	if r.code != 2 || !strings.HasSuffix(r.stderr, "ciao-cli: missing required -workload parameter\n") || !strings.HasPrefix(r.stderr, "usage:") {
		t.Errorf("add without -workload: %+v", r)
	}
}
