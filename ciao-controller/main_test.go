package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(childMain(args))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tok, []byte("# comment\ntokA 1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a a user\nadm x admin admin,member\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-cacert", "ca.pem", "-cert", "c.pem", "-server", "sched", "-port", "9999", "-httpscert", "h.pem",
		"-httpskey", "k.pem", "-database", "/x.db", "-compute-port", "18774", "-tokens", tok,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != "sched" || cfg.Port != 9999 || cfg.ComputePort != 18774 || cfg.Database != "/x.db" || cfg.Network {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg.ResendPending != controller.DefaultResendPendingAfter || cfg.ResendDelete != controller.DefaultResendDeleteAfter {
		t.Errorf("re-send delays %v %v, want the defaults", cfg.ResendPending, cfg.ResendDelete)
	}
	// The two re-sends are set, and turned off, independently.
	base := []string{"-httpscert", "h", "-httpskey", "k", "-tokens", tok}
	for _, tc := range []struct {
		args                 []string
		wantPending, wantDel time.Duration
	}{
		{[]string{"-resend-pending-after", "0"}, 0, controller.DefaultResendDeleteAfter},
		{[]string{"-resend-delete-after", "0"}, controller.DefaultResendPendingAfter, 0},
		{[]string{"-resend-pending-after", "5s", "-resend-delete-after", "7s"}, 5 * time.Second, 7 * time.Second},
	} {
		cfg, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(append([]string{}, base...), tc.args...))
		if err != nil || cfg.ResendPending != tc.wantPending || cfg.ResendDelete != tc.wantDel {
			t.Errorf("%q: %v %v %v, want %v %v", tc.args, cfg.ResendPending, cfg.ResendDelete, err, tc.wantPending, tc.wantDel)
		}
	}
	// Negative delays are refused, naming the flag and the value.
	for _, tc := range []struct{ flag, want string }{
		{"-resend-pending-after", "-resend-pending-after -2s: must be >= 0 (0: never re-send STARTs)"},
		{"-resend-delete-after", "-resend-delete-after -2s: must be >= 0 (0: never re-send DELETEs)"},
	} {
		_, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(append([]string{}, base...), tc.flag, "-2s"))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s -2s: %v, want %q", tc.flag, err, tc.want)
		}
	}
	ts, err := loadTokens(tok)
	if err != nil || len(ts) != 2 || !ts["adm"].IsAdmin() || ts["tokA"].IsAdmin() {
		t.Errorf("tokens %+v: %v", ts, err)
	}
	for _, args := range [][]string{
		{"-tokens", tok},                                                    // no HTTPS material
		{"-create-user", "u", "-project", "p"},                              // no password
		{"-httpscert", "h", "-httpskey", "k", "-token-ttl", "0"},            // bad ttl
		{"-httpscert", "h", "-httpskey", "k", "-identity-url", "http://ks"}, // no service password
		{"-httpscert", "h", "-httpskey", "k", "-tokens", tok, "-network", "-cnci-timeout", "0"},
		{"-httpscert", "h", "-httpskey", "k", "-tokens", tok, "-network", "-cnci-idle", "-1s"},
		{"-httpscert", "h", "-httpskey", "k", "-tokens", tok, "extra"},
	} {
		if _, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

const (
	tenant = "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"
	token  = "tok"
)

// TestEndToEnd runs the real ciao-scheduler binary, the controller
// in-process (run, plain HTTP) and two fake launchers: five servers
// created through the API become active through relayed STATS, a delete
// goes through the node and removes the server, and a request over the
// tenant's instance limit gets 403 and starts nothing.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler")
	}
	sch := startScheduler(t)
	port := sch.port

	// The controller, in-process; Dial retries until the scheduler listens.
	cfg := sch.controllerConfig(t)
	cfg.tokens = api.StaticTokens{token: {TenantID: tenant, ProjectName: "demo", Roles: []string{"user"}}}
	cfg.seed = func(ctx context.Context, s datastore.Store) error {
		if _, _, err := s.EnsureTenant(ctx, datastore.Tenant{ID: tenant, CNCIMAC: "02:11:22:33:44:55"}); err != nil {
			return err
		}
		return s.SetLimit(ctx, tenant, datastore.ResInstances, 5)
	}
	cfg.MetricsAddr = "127.0.0.1:0"
	metricsAddr := make(chan net.Addr, 1)
	cfg.onMetrics = func(a net.Addr) { metricsAddr <- a }
	base := "http://" + startController(t, cfg).String() + "/v2.1/" + tenant

	agents := []*testutil.FakeAgent{
		testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(4096)),
		testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(4096)),
	}

	code, body := call(t, "POST", base+"/servers", fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":5}}`, controller.WorkloadClear))
	if code != http.StatusAccepted {
		t.Fatalf("create: %d %s", code, body)
	}
	// Launchers report periodically; here the test asks for each report.
	list := func() map[string]string {
		code, body := call(t, "GET", base+"/servers/detail", "")
		if code != http.StatusOK {
			t.Fatalf("list: %d %s", code, body)
		}
		var r struct {
			Servers []struct{ ID, Status, HostID string } `json:"servers"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, s := range r.Servers {
			m[s.ID] = s.Status + "@" + s.HostID
		}
		return m
	}
	var servers map[string]string
	poll(t, "5 servers active", func() bool {
		for _, a := range agents {
			a.SendStats(t)
		}
		servers = list()
		n := 0
		for _, s := range servers {
			if strings.HasPrefix(s, "active@") && len(s) > len("active@") {
				n++
			}
		}
		return n == 5
	})

	var victim string
	for id := range servers {
		victim = id
		break
	}
	if code, body := call(t, "DELETE", base+"/servers/"+victim, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, body)
	}
	poll(t, "deleted server gone", func() bool {
		code, _ := call(t, "GET", base+"/servers/"+victim, "")
		return code == http.StatusNotFound
	})

	// 4 running, limit 5: asking for 2 more is refused whole.
	code, body = call(t, "POST", base+"/servers", fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":2}}`, controller.WorkloadClear))
	if code != http.StatusForbidden {
		t.Fatalf("over quota: %d %s", code, body)
	}
	if n := len(list()); n != 4 {
		t.Errorf("%d servers after the refused request, want 4", n)
	}
	total := 0
	for _, a := range agents {
		total += len(a.Instances())
	}
	if total != 4 {
		t.Errorf("agents run %d instances, want 4", total)
	}

	// The metrics saw all of it.
	resp, err := http.Get("http://" + (<-metricsAddr).String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`ciao_controller_http_requests_total{code="202",method="POST",route="/v2.1/{tenant}/servers"} 1`,
		`ciao_controller_http_requests_total{code="403",method="POST",route="/v2.1/{tenant}/servers"} 1`,
		`ciao_controller_http_requests_total{code="204",method="DELETE",route="/v2.1/{tenant}/servers/{server}"} 1`,
		`ciao_controller_http_request_duration_seconds_count{method="GET",route="/v2.1/{tenant}/servers/detail"}`,
		`ciao_controller_launches_total{result="started"} 5`,
		`ciao_controller_launches_total{result="refused"} 2`,
		`ciao_controller_ssntp_frames_received_total{kind="command",operand="STATISTICS"}`,
		`ciao_controller_ssntp_frames_received_total{kind="event",operand="Instance Deleted"} 1`,
		`ciao_controller_stats_instances_total`,
		`ciao_controller_instances{state="active"} 4`,
		`ciao_controller_datastore_duration_seconds_count{op="commit"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", m)
	}
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunRefusesBadWorkloadFiles: a broken workload definition stops the
// daemon at start with the file and line in the error.
func TestRunRefusesBadWorkloadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "workload_template.csv"), []byte("# header\nid1, D, test.yaml, efi, kvm, img, \"\", 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig()
	cfg.PlainHTTP, cfg.Database, cfg.TablesPath = true, filepath.Join(dir, "c.db"), dir
	err := run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "workload_template.csv:2: vm_type \"kvm\"") {
		t.Fatalf("run = %v, want the bad line named", err)
	}
}
