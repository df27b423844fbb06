package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMetrics: a nil *Metrics records nothing without failing; a real one
// exports what it was told, the instance states from its callback, and
// the profiler only when asked.
func TestMetrics(t *testing.T) {
	var none *Metrics
	none.Request("r", "GET", 200, time.Millisecond)
	none.Launches(LaunchStarted, 1)
	none.Frame("command", "STATISTICS")
	none.StatsInstances(3)
	none.StoreOp("commit", time.Millisecond)
	none.SetInstanceStates(nil)

	m := New()
	m.Request("/v2.1/{tenant}/servers", "POST", 202, 3*time.Millisecond)
	m.Request("unmatched", "GET", 404, time.Millisecond)
	m.Launches(LaunchStarted, 3)
	m.Launches(LaunchRefused, 0) // nothing
	m.Frame("command", "STATISTICS")
	m.StatsInstances(7)
	m.StoreOp("commit", time.Millisecond)
	m.StoreOp("commit", 2*time.Millisecond)
	m.SetInstanceStates(func() map[string]int { return map[string]int{"active": 2, "pending": 1} })
	srv := httptest.NewServer(m.Mux(false))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`ciao_controller_http_requests_total{code="202",method="POST",route="/v2.1/{tenant}/servers"} 1`,
		`ciao_controller_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`ciao_controller_launches_total{result="started"} 3`,
		`ciao_controller_ssntp_frames_received_total{kind="command",operand="STATISTICS"} 1`,
		`ciao_controller_stats_instances_total 7`,
		`ciao_controller_datastore_duration_seconds_count{op="commit"} 2`,
		`ciao_controller_instances{state="active"} 2`,
		`ciao_controller_instances{state="pending"} 1`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `result="refused"`) {
		t.Error("a zero launch count created a series")
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Errorf("profiler served without -pprof: %d", code)
	}
	psrv := httptest.NewServer(m.Mux(true))
	defer psrv.Close()
	resp, err := psrv.Client().Get(psrv.URL + "/debug/pprof/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("profiler with -pprof: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}
