package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// TestNodes covers /v2.1/nodes, /nodes/summary and
// /nodes/{node}/servers/detail from the STATS the controller recorded.
func TestNodes(t *testing.T) {
	e := newEnv(t)
	cr := e.create(t, tenantA, "tokA", 2)
	id0, id1 := cr.Servers[0].ID, cr.Servers[1].ID
	e.activate(t, id0) // id1 stays pending: never reported
	node := e.agent.UUID().String()

	var nl struct {
		Nodes []nodeJSON `json:"nodes"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/nodes", "admin", "", 200), &nl)
	if len(nl.Nodes) != 1 {
		t.Fatalf("nodes %+v", nl.Nodes)
	}
	n := nl.Nodes[0]
	if n.ID != node || n.Status != "READY" || n.MemTotal != 3896 || n.DiskAvailable != 256000 || n.OnlineCPUs != 4 ||
		n.TotalInstances != 1 || n.TotalRunningInstances != 1 || n.Hostname != "n1" || n.Updated.IsZero() {
		t.Errorf("node %+v", n)
	}
	// paging: a marker past the only node leaves none; an unknown marker is 400
	if out := e.expect(t, "GET", "/v2.1/nodes?marker="+node, "admin", "", 200); out != "{\"nodes\":[]}\n" {
		t.Errorf("after marker: %s", out)
	}
	e.expect(t, "GET", "/v2.1/nodes?marker="+unknown, "admin", "", 400)
	e.expect(t, "GET", "/v2.1/nodes?limit=x", "admin", "", 400)

	if out := e.expect(t, "GET", "/v2.1/nodes/summary", "admin", "", 200); out !=
		`{"cluster":{"total_nodes":1,"total_nodes_ready":1,"total_nodes_full":0,"total_nodes_offline":0,"total_nodes_maintenance":0}}`+"\n" {
		t.Errorf("summary %s", out)
	}

	var ns struct {
		Total   int              `json:"total_servers"`
		Servers []nodeServerJSON `json:"servers"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/nodes/"+node+"/servers/detail", "admin", "", 200), &ns)
	if ns.Total != 1 || len(ns.Servers) != 1 || ns.Servers[0].ID != id0 || ns.Servers[0].TenantID != tenantA ||
		ns.Servers[0].IPv4 != cr.Servers[0].Addresses["private"][0].Addr || ns.Servers[0].Status != "active" {
		t.Errorf("node servers %+v", ns)
	}
	if out := e.expect(t, "GET", "/v2.1/nodes/"+unknown+"/servers/detail", "admin", "", 200); out != "{\"total_servers\":0,\"servers\":[]}\n" {
		t.Errorf("unknown node: %s", out)
	}

	// -workload listing is across tenants
	crB := e.create(t, tenantB, "tokB", 1)
	var fl createResp
	decodeJSON(t, e.expect(t, "GET", "/v2.1/flavors/"+cr.Servers[0].Flavor.ID+"/servers/detail", "admin", "", 200), &fl)
	got := map[string]bool{}
	for _, s := range fl.Servers {
		got[s.ID] = true
	}
	if fl.TotalServers != 3 || !got[id0] || !got[id1] || !got[crB.Servers[0].ID] {
		t.Errorf("flavor servers %+v", fl)
	}
	e.expect(t, "GET", "/v2.1/flavors/"+unknown+"/servers/detail?limit=-1", "admin", "", 400)
	// evacuate: EVACUATE goes to the node (through the scheduler)
	e.expect(t, "POST", "/v2.1/nodes/"+unknown+"/evacuate", "admin", "", 404)
	e.expect(t, "POST", "/v2.1/nodes/"+node+"/evacuate", "tokA", "", 401)
	e.expect(t, "POST", "/v2.1/nodes/"+node+"/evacuate", "admin", "", 202)
	if out := e.expect(t, "GET", "/v2.1/events", "admin", "", 200); !strings.Contains(out, "EVACUATE sent to node "+node) {
		t.Errorf("no evacuate event: %s", out)
	}
	for _, p := range []string{"/v2.1/nodes", "/v2.1/nodes/summary", "/v2.1/cncis", "/v2.1/traces"} {
		e.expect(t, "GET", p, "tokA", "", 401)
	}
}

func TestCNCIs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if out := e.expect(t, "GET", "/v2.1/cncis", "admin", "", 200); out != "{\"cncis\":[]}\n" {
		t.Errorf("no cncis: %s", out)
	}
	for _, tn := range []string{tenantA, tenantB} {
		if _, _, err := e.store.EnsureTenant(ctx, datastore.Tenant{ID: tn}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.AllocateAddress(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	cnci := "c0c0c0c0-0000-4000-8000-000000000001"
	if err := e.store.PutCNCI(ctx, datastore.CNCI{TenantID: tenantA, ID: cnci, IP: "198.51.100.20", State: "active"}); err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + cnci + `","tenant_id":"` + tenantA + `","IPv4":"198.51.100.20","geography":"","subnets":[{"subnet_cidr":"Subnet 172.16.0.0/24"}]}`
	if out := e.expect(t, "GET", "/v2.1/cncis", "admin", "", 200); out != `{"cncis":[`+want+"]}\n" {
		t.Errorf("cncis %s", out)
	}
	if out := e.expect(t, "GET", "/v2.1/cncis/"+cnci+"/detail", "admin", "", 200); out != want+"\n" {
		t.Errorf("cnci detail %s", out)
	}
	e.expect(t, "GET", "/v2.1/cncis/"+unknown+"/detail", "admin", "", 404)
}

// TestTraces sends a TraceReport to the controller and checks the
// statistics of §4.13 on hand-computed times.
func TestTraces(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(n int) string {
		if n < 0 {
			return ""
		}
		return t0.Add(time.Duration(n) * time.Millisecond).Format(payloads.TimestampLayout)
	}
	// frame: start, controller tx, scheduler rx/tx, launcher rx, end (ms)
	frame := func(label string, v ...int) payloads.FrameTrace {
		return payloads.FrameTrace{Label: label, Type: "COMMAND", Operand: "START", StartTimestamp: ms(v[0]), EndTimestamp: ms(v[5]),
			Nodes: []payloads.SSNTPNode{
				{SSNTPUUID: "c", SSNTPRole: "Controller", TxTimestamp: ms(v[1]), RxTimestamp: ""},
				{SSNTPUUID: "s", SSNTPRole: "Scheduler", RxTimestamp: ms(v[2]), TxTimestamp: ms(v[3])},
				{SSNTPUUID: "l", SSNTPRole: "Agent", RxTimestamp: ms(v[4]), TxTimestamp: ""},
			}}
	}
	tr := payloads.Trace{Frames: []payloads.FrameTrace{
		frame("boot", 0, 100, 110, 130, 140, 1140),   // ctl .1, sched .02, launcher 1
		frame("boot", 500, 800, 810, 850, 860, 3860), // ctl .3, sched .04, launcher 3
		frame("other", 0, 1, 2, 3, 4, 5),
	}}
	e.fs.SendEvent(t, uuid.MustParse(e.ctl.UUID()), ssntp.TraceReport, testutil.Marshal(t, tr))

	var tl struct {
		Summaries []traceSummaryJSON `json:"summaries"`
	}
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		decodeJSON(t, e.expect(t, "GET", "/v2.1/traces", "admin", "", 200), &tl)
		if len(tl.Summaries) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // poll interval: the report is handled asynchronously
	}
	if fmt.Sprint(tl.Summaries) != "[{boot 2} {other 1}]" {
		t.Fatalf("summaries %+v", tl.Summaries)
	}
	var st struct {
		Summary traceStats `json:"summary"`
		Frames  []any      `json:"frames"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/traces/boot", "admin", "", 200), &st)
	s := st.Summary
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if s.NumInstances != 2 || !near(s.TotalElapsed, 3.86) || !near(s.AverageElapsed, (1.14+3.36)/2) ||
		!near(s.AverageControllerElapsed, 0.2) || !near(s.VarianceController, 0.01) ||
		!near(s.AverageSchedulerElapsed, 0.03) || !near(s.VarianceScheduler, 0.0001) ||
		!near(s.AverageLauncherElapsed, 2) || !near(s.VarianceLauncher, 1) {
		t.Errorf("boot summary %+v", s)
	}
	if out := e.expect(t, "GET", "/v2.1/traces/"+url.PathEscape("no such"), "admin", "", 200); !strings.Contains(out, `"num_instances":0`) {
		t.Errorf("unknown label: %s", out)
	}
}

// TestResources checks the usage history rebuilt from instance STATS.
func TestResources(t *testing.T) {
	e := newEnv(t)
	cr := e.create(t, tenantA, "tokA", 2)
	node := e.agent.UUID().String()
	st := []payloads.InstanceStat{
		{InstanceUUID: cr.Servers[0].ID, State: payloads.InstanceActive, CPUUsage: 10, MemoryUsageMB: 100, DiskUsageMB: 1000},
		{InstanceUUID: cr.Servers[1].ID, State: payloads.InstanceActive, CPUUsage: 5, MemoryUsageMB: 50, DiskUsageMB: 500},
	}
	e.fs.SendCommand(t, uuid.MustParse(e.ctl.UUID()), ssntp.STATS, testutil.StatsPayload(node, "n1", st...))
	now := time.Now()
	q := "?start_date=" + url.QueryEscape(now.Add(-15*time.Minute).Format(time.RFC3339)) + "&end_date=" + url.QueryEscape(now.Add(time.Minute).Format(time.RFC3339))
	var u struct {
		Usage []usageJSON `json:"usage"`
	}
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/resources"+q, "tokA", "", 200), &u)
		if (len(u.Usage) > 0 && u.Usage[len(u.Usage)-1].VCPU == 15) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // poll interval: STATS are recorded asynchronously
	}
	if n := len(u.Usage); n == 0 || u.Usage[n-1].VCPU != 15 || u.Usage[n-1].Memory != 150 || u.Usage[n-1].Disk != 1500 {
		t.Errorf("usage %+v", u.Usage)
	}
	if out := e.expect(t, "GET", "/v2.1/"+tenantB+"/resources"+q, "tokB", "", 200); out != "{\"usage\":null}\n" {
		t.Errorf("tenant B usage %s", out)
	}
	e.expect(t, "GET", "/v2.1/"+tenantA+"/resources", "tokA", "", 400)
	e.expect(t, "GET", "/v2.1/"+tenantA+"/resources?start_date=yesterday&end_date=now", "tokA", "", 400)
}

// TestBulkAction covers POST /v2.1/{tenant}/servers/action.
func TestBulkAction(t *testing.T) {
	e := newEnv(t)
	cr := e.create(t, tenantA, "tokA", 2)
	crB := e.create(t, tenantB, "tokB", 1)
	e.activate(t, cr.Servers[0].ID, cr.Servers[1].ID)
	base := "/v2.1/" + tenantA + "/servers/action"
	e.expect(t, "POST", base, "tokA", `{"action":"os-reboot"}`, 503)
	e.expect(t, "POST", base, "tokA", `{"action":`, 400)
	e.expect(t, "POST", base, "tokA", `{"action":"os-stop","servers":["`+unknown+`"]}`, 404)
	e.expect(t, "POST", base, "tokA", `{"action":"os-stop","servers":["`+crB.Servers[0].ID+`"]}`, 403)
	e.expect(t, "POST", base, "tokB", `{"action":"os-delete"}`, 401)

	// os-delete with no list: every instance of A gets a DELETE, B's none.
	e.expect(t, "POST", base, "tokA", `{"action":"os-delete","servers":null}`, 202)
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		in, err := e.store.Instances(context.Background(), datastore.InstanceQuery{TenantID: tenantA})
		if err == nil && len(in.Instances) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant A instances left after os-delete: %+v %v", in, err)
		}
		time.Sleep(5 * time.Millisecond) // poll: the fake launcher confirms with InstanceDeleted
	}
	if _, err := e.store.Instance(context.Background(), crB.Servers[0].ID); err != nil {
		t.Errorf("tenant B's instance: %v", err)
	}
}

// TestNamedQuotas covers GET/PUT /v2.1/tenants/{tenant}/quotas and that
// the limits set there are enforced.
func TestNamedQuotas(t *testing.T) {
	e := newEnv(t)
	base := "/v2.1/tenants/" + tenantA + "/quotas"
	want := `{"quotas":[{"name":"tenant-instances-quota","value":"unlimited","usage":"0"},{"name":"tenant-vcpu-quota","value":"unlimited","usage":"0"},` +
		`{"name":"tenant-mem-quota","value":"unlimited","usage":"0"},{"name":"tenant-disk-quota","value":"unlimited","usage":"0"}]}` + "\n"
	if out := e.expect(t, "GET", base, "tokA", "", 200); out != want {
		t.Errorf("quotas %s", out)
	}
	e.expect(t, "PUT", base, "tokA", `{"quotas":[{"name":"tenant-instances-quota","value":"1"}]}`, 401)
	e.expect(t, "PUT", base, "admin", `{"quotas":[{"name":"tenant-cookies-quota","value":"1"}]}`, 400)
	e.expect(t, "PUT", base, "admin", `{"quotas":[{"name":"tenant-instances-quota","value":"lots"}]}`, 400)
	e.expect(t, "PUT", base, "admin", `{"quotas":[]}`, 400)
	out := e.expect(t, "PUT", base, "admin", `{"quotas":[{"name":"tenant-instances-quota","value":"1"},{"name":"tenant-mem-quota","value":"-1"}]}`, 200)
	if !strings.Contains(out, `{"name":"tenant-instances-quota","value":"1","usage":"0"}`) {
		t.Errorf("after PUT: %s", out)
	}
	e.create(t, tenantA, "tokA", 1)
	e.expect(t, "POST", "/v2.1/"+tenantA+"/servers", "tokA", `{"server":{"flavorRef":"`+controller.WorkloadClear+`"}}`, 403)
	var q map[string]any
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/quotas", "tokA", "", 200), &q)
	if q["instances_limit"] != 1.0 || q["instances_usage"] != 1.0 {
		t.Errorf("legacy quotas %v", q)
	}
	e.expect(t, "PUT", base, "admin", `{"quotas":[{"name":"tenant-instances-quota","value":"unlimited"}]}`, 200)
	e.create(t, tenantA, "tokA", 1)
}
