package api

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
)

func TestQuotaSets(t *testing.T) {
	e := newEnv(t)
	base := "/v2.1/" + tenantA + "/os-quota-sets/" + tenantA
	type set struct {
		QuotaSet map[string]any `json:"quota_set"`
	}
	var q set
	// A project the controller does not know yet has no limits, as in Nova.
	decodeJSON(t, e.expect(t, "GET", base, "tokA", "", 200), &q)
	if fmt.Sprint(q.QuotaSet) != fmt.Sprintf("map[cores:-1 id:%s instances:-1 ram:-1]", tenantA) {
		t.Errorf("quota set %v", q.QuotaSet)
	}
	e.create(t, tenantA, "tokA", 2)
	decodeJSON(t, e.expect(t, "GET", base+"/detail", "tokA", "", 200), &q)
	if fmt.Sprint(q.QuotaSet["instances"]) != "map[in_use:2 limit:-1 reserved:0]" || fmt.Sprint(q.QuotaSet["cores"]) != "map[in_use:4 limit:-1 reserved:0]" {
		t.Errorf("detail %v", q.QuotaSet)
	}

	// Only an admin sets quotas, and only the three Nova has and we map.
	e.expect(t, "PUT", base, "tokA", `{"quota_set":{"instances":5}}`, 403)
	for _, body := range []string{
		`{"quota_set":{"key_pairs":5}}`,   // not ours
		`{"quota_set":{"instances":"x"}}`, // not a count
		`{"quota_set":{"instances":-2}}`,
		`{"quota_set":{"instances":0}}`, // "none" to Nova, unlimited to the admission check
		`{"quota_set":{"instances":1.5}}`,
		`{"quota_set":{"instances":5,"cookies":1}}`, // checked whole: instances is not set either
		`{"quota_set":{"force":true}}`,              // nothing to set
		`{"quota_set":{}}`,
		`{}`,
		`{"quota_set":`,
	} {
		e.expect(t, "PUT", "/v2.1/"+tenantA+"/os-quota-sets/"+tenantA, "admin", body, 400)
	}
	e.expect(t, "PUT", base+"?user_id=u1", "admin", `{"quota_set":{"instances":5}}`, 400)
	e.expect(t, "GET", base+"?user_id=u1", "tokA", "", 400)
	decodeJSON(t, e.expect(t, "PUT", base, "admin", `{"quota_set":{"instances":"3","cores":8,"ram":-1,"force":true,"tenant_id":"x"}}`, 200), &q)
	if q.QuotaSet["instances"] != 3.0 || q.QuotaSet["cores"] != 8.0 || q.QuotaSet["ram"] != -1.0 {
		t.Errorf("after PUT %v", q.QuotaSet)
	}
	// The same limits as the named and legacy quotas.
	if out := e.expect(t, "GET", "/v2.1/tenants/"+tenantA+"/quotas", "tokA", "", 200); !strings.Contains(out, `{"name":"tenant-instances-quota","value":"3","usage":"2"}`) {
		t.Errorf("named quotas %s", out)
	}
	e.create(t, tenantA, "tokA", 1)
	e.expect(t, "POST", "/v2.1/"+tenantA+"/servers", "tokA", `{"server":{"flavorRef":"`+controller.WorkloadClear+`"}}`, 403)
	// Defaults: what a new project gets, whatever this one has.
	decodeJSON(t, e.expect(t, "GET", base+"/defaults", "tokA", "", 200), &q)
	if q.QuotaSet["instances"] != -1.0 {
		t.Errorf("defaults %v", q.QuotaSet)
	}

	if out := e.expect(t, "GET", "/v2.1/"+tenantA+"/os-quota-class-sets/default", "tokA", "", 200); out !=
		`{"quota_class_set":{"cores":-1,"id":"default","instances":-1,"ram":-1}}`+"\n" {
		t.Errorf("quota class %s", out)
	}
	e.expect(t, "PUT", "/v2.1/"+tenantA+"/os-quota-class-sets/default", "admin", `{"quota_class_set":{"cores":1}}`, 405)
	// Another project's quotas: only for an admin.
	e.expect(t, "GET", "/v2.1/"+tenantB+"/os-quota-sets/"+tenantA, "tokB", "", 403)
	e.expect(t, "GET", "/v2.1/"+tenantB+"/os-quota-sets/"+tenantA+"/detail", "tokB", "", 403)
	e.expect(t, "GET", "/v2.1/"+tenantA+"/os-quota-sets/"+tenantA, "tokB", "", 401) // not B's path
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantB+"/os-quota-sets/"+tenantA, "admin", "", 200), &q)
	if q.QuotaSet["instances"] != 3.0 {
		t.Errorf("admin's view %v", q.QuotaSet)
	}
	e.expect(t, "DELETE", base, "admin", "", 405)
	// A project whose id is "detail" is not the /detail route.
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-quota-sets/detail", "admin", "", 200), &q)
	if q.QuotaSet["id"] != "detail" || q.QuotaSet["instances"] != -1.0 {
		t.Errorf("project detail: %v", q.QuotaSet)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t)
	e.create(t, tenantA, "tokA", 2)
	e.expect(t, "PUT", "/v2.1/"+tenantA+"/os-quota-sets/"+tenantA, "admin", `{"quota_set":{"ram":1024}}`, 200)
	var l struct {
		Limits struct {
			Rate     []any          `json:"rate"`
			Absolute map[string]int `json:"absolute"`
		} `json:"limits"`
	}
	for _, c := range []struct{ path, token string }{
		{"/v2.1/" + tenantA + "/limits", "tokA"},
		{"/v2.1/" + tenantA + "/limits?tenant_id=" + tenantA, "tokA"},
		{"/v2.1/" + tenantB + "/limits?tenant_id=" + tenantA, "admin"},
	} {
		decodeJSON(t, e.expect(t, "GET", c.path, c.token, "", 200), &l)
		a := l.Limits.Absolute
		if a["maxTotalInstances"] != -1 || a["totalInstancesUsed"] != 2 || a["totalCoresUsed"] != 4 ||
			a["maxTotalRAMSize"] != 1024 || a["totalRAMUsed"] != 256 || l.Limits.Rate == nil {
			t.Errorf("%s: %+v", c.path, l.Limits)
		}
	}
	e.expect(t, "GET", "/v2.1/"+tenantB+"/limits?tenant_id="+tenantA, "tokB", "", 403)
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantB+"/limits", "tokB", "", 200), &l)
	if l.Limits.Absolute["totalInstancesUsed"] != 0 {
		t.Errorf("B's limits %+v", l.Limits)
	}
}

func TestSimpleTenantUsage(t *testing.T) {
	e := newEnv(t)
	before := time.Now().UTC().Add(-time.Hour)
	crA := e.create(t, tenantA, "tokA", 2)
	e.create(t, tenantB, "tokB", 1)
	after := time.Now().UTC().Add(time.Hour)
	period := "start=" + url.QueryEscape(before.Format("2006-01-02T15:04:05.000000")) + "&end=" + url.QueryEscape(after.Format("2006-01-02T15:04:05"))

	var one struct {
		Usage tenantUsage `json:"tenant_usage"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage/"+tenantA+"?"+period, "tokA", "", 200), &one)
	u := one.Usage
	if u.TenantID != tenantA || len(u.ServerUsages) != 2 || u.TotalHours <= 0 || u.TotalVCPUs != 2*u.TotalHours ||
		u.TotalMemoryMB != 128*u.TotalHours || u.Start != before.Format(usageTime) {
		t.Errorf("usage %+v", u)
	}
	for _, su := range u.ServerUsages {
		if su.TenantID != tenantA || su.VCPUs != 2 || su.MemoryMB != 128 || su.Flavor != controller.WorkloadClear || su.EndedAt != nil ||
			(su.InstanceID != crA.Servers[0].ID && su.InstanceID != crA.Servers[1].ID) {
			t.Errorf("server usage %+v", su)
		}
	}
	// A period before the servers existed, or an unknown project: zero.
	old := "start=2020-01-01&end=2020-02-01"
	one.Usage = tenantUsage{} // decoding into a used value keeps its slice elements
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage/"+tenantA+"?"+old, "tokA", "", 200), &one)
	if u := one.Usage; u.TenantID != tenantA || u.TotalHours != 0 || len(u.ServerUsages) != 0 || u.Start != "2020-01-01T00:00:00.000000" {
		t.Errorf("old period: %+v", u)
	}
	one.Usage = tenantUsage{}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantB+"/os-simple-tenant-usage/"+unknown, "admin", "", 200), &one)
	if u := one.Usage; u.TenantID != unknown || u.TotalHours != 0 || len(u.ServerUsages) != 0 {
		t.Errorf("unknown project: %+v", u)
	}
	// Bad periods.
	for _, q := range []string{"start=yesterday", "end=2020-13-01", "start=2021-01-01&end=2020-01-01"} {
		e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage/"+tenantA+"?"+q, "tokA", "", 400)
		e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage?"+q, "tokA", "", 400)
	}
	// Another project's: only for an admin (B's member: see below).
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantB+"/os-simple-tenant-usage/"+tenantA+"?"+period, "admin", "", 200), &one)
	if len(one.Usage.ServerUsages) != 2 {
		t.Errorf("admin's view %+v", one.Usage)
	}

	// The list: a member's own project only, every project for an admin.
	checkMemberBUsage(t, e, period)
	var list usageList
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage?"+period, "admin", "", 200), &list)
	if len(list.Usages) != 2 || list.Usages[0].ServerUsages != nil || list.Usages[0].TotalHours <= 0 {
		t.Errorf("admin's list %+v", list.Usages)
	}
	if out := e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage?"+old, "admin", "", 200); out != "{\"tenant_usages\":[]}\n" {
		t.Errorf("old period list: %s", out)
	}
}

func TestHypervisors(t *testing.T) {
	e := newEnv(t)
	cr := e.create(t, tenantA, "tokA", 2)
	e.activate(t, cr.Servers[0].ID)
	node := e.agent.UUID().String()
	var l struct {
		Hypervisors []map[string]any `json:"hypervisors"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors", "admin", "", 200), &l)
	if len(l.Hypervisors) != 1 || fmt.Sprint(l.Hypervisors[0]) != fmt.Sprintf("map[hypervisor_hostname:n1 id:%s state:up status:enabled]", node) {
		t.Errorf("hypervisors %v", l.Hypervisors)
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/detail", "admin", "", 200), &l)
	if len(l.Hypervisors) != 1 || l.Hypervisors[0]["vcpus"] != 4.0 || l.Hypervisors[0]["vcpus_used"] != 2.0 ||
		l.Hypervisors[0]["running_vms"] != 1.0 || l.Hypervisors[0]["memory_mb"] != 3896.0 {
		t.Errorf("hypervisors detail %v", l.Hypervisors)
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/detail?hypervisor_hostname_pattern=zz", "admin", "", 200), &l)
	if len(l.Hypervisors) != 0 {
		t.Errorf("filtered %v", l.Hypervisors)
	}
	var one struct {
		Hypervisor map[string]any `json:"hypervisor"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/"+node, "admin", "", 200), &one)
	if one.Hypervisor["id"] != node || one.Hypervisor["vcpus_used"] != 2.0 {
		t.Errorf("hypervisor %v", one.Hypervisor)
	}
	e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/"+unknown, "admin", "", 404)
	var st struct {
		Stats map[string]int `json:"hypervisor_statistics"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/statistics", "admin", "", 200), &st)
	if st.Stats["count"] != 1 || st.Stats["vcpus"] != 4 || st.Stats["vcpus_used"] != 2 || st.Stats["running_vms"] != 1 || st.Stats["memory_mb"] != 3896 {
		t.Errorf("statistics %v", st.Stats)
	}
	e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/"+node+"/uptime", "admin", "", 501)
	e.expect(t, "GET", "/v2.1/"+tenantA+"/os-hypervisors/"+unknown+"/uptime", "admin", "", 404)
	if out := e.expect(t, "GET", "/v2.1/"+tenantA+"/os-aggregates", "admin", "", 200); out != "{\"aggregates\":[]}\n" {
		t.Errorf("aggregates %s", out)
	}
	for _, p := range []string{"os-hypervisors", "os-hypervisors/detail", "os-hypervisors/" + node, "os-hypervisors/statistics",
		"os-hypervisors/" + node + "/uptime", "os-aggregates"} {
		e.expect(t, "GET", "/v2.1/"+tenantA+"/"+p, "tokA", "", 403)
	}
}

func TestServerNames(t *testing.T) {
	e := newEnv(t)
	create := func(tenant, token, name string, n int) {
		t.Helper()
		e.expect(t, "POST", "/v2.1/"+tenant+"/servers", token,
			fmt.Sprintf(`{"server":{"name":%q,"flavorRef":%q,"max_count":%d}}`, name, controller.WorkloadClear, n), 202)
	}
	create(tenantA, "tokA", "web", 2)
	create(tenantA, "tokA", "db", 1)
	create(tenantB, "tokB", "web", 1)
	type refs struct {
		Servers []struct{ ID, Name string } `json:"servers"`
	}
	names := func(path string) string {
		t.Helper()
		var r refs
		decodeJSON(t, e.expect(t, "GET", path, "tokA", "", 200), &r)
		var out []string
		for _, s := range r.Servers {
			if s.ID == "" {
				t.Errorf("%s: no id in %+v", path, r)
			}
			out = append(out, s.Name)
		}
		return strings.Join(out, ",")
	}
	base := "/v2.1/" + tenantA + "/servers"
	for _, c := range []struct{ query, want string }{
		{"", "3"},
		{"?name=web", "web,web"},
		{"?name=%5Edb%24", "db"}, // ^db$
		{"?name=nomatch", ""},
		{"?name=web&limit=1", "web"},
		// Status (Nova's names too) and flavor are honoured, the rest
		// the client may send ignored.
		{"?name=db&status=BUILD&flavor=" + controller.WorkloadClear + "&image=y&changes-since=2020-01-01T00:00:00Z&all_tenants=1", "db"},
		{"?name=db&status=pending", "db"},
		{"?name=db&status=ACTIVE", ""},
		{"?name=db&status=nonsense", ""},
		{"?flavor=" + unknown, ""},
	} {
		got := names(base + c.query)
		if c.want == "3" {
			if strings.Count(got, ",") != 2 || !strings.Contains(got, "db") {
				t.Errorf("%s: %q", c.query, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.query, got, c.want)
		}
	}
	var d struct {
		Total   int             `json:"total_servers"`
		Servers []serverDetails `json:"servers"`
	}
	decodeJSON(t, e.expect(t, "GET", base+"/detail?name=web", "tokA", "", 200), &d)
	if d.Total != 2 || len(d.Servers) != 2 || d.Servers[0].Name != "web" || d.Servers[0].TenantID != tenantA {
		t.Errorf("detail?name=web %+v", d)
	}
	decodeJSON(t, e.expect(t, "GET", base+"/detail?name=web&marker="+d.Servers[0].ID, "tokA", "", 200), &d)
	if d.Total != 1 || len(d.Servers) != 1 {
		t.Errorf("detail?name=web after marker %+v", d)
	}
	var one struct {
		Server serverDetails `json:"server"`
	}
	decodeJSON(t, e.expect(t, "GET", base+"/"+d.Servers[0].ID, "tokA", "", 200), &one)
	if one.Server.Name != "web" {
		t.Errorf("show %+v", one.Server)
	}
	e.expect(t, "GET", base+"?name=(", "tokA", "", 400)
	e.expect(t, "GET", base+"/detail?name=(", "tokA", "", 400)
	e.expect(t, "GET", base+"?marker="+unknown, "tokA", "", 400)
	e.expect(t, "GET", base+"?limit=-1", "tokA", "", 400)
	// all_tenants: every tenant's for an admin, ignored for a member.
	for _, c := range []struct{ path, token, want string }{
		{"/servers?all_tenants=1&name=web", "admin", "web,web,web"},
		{"/servers/detail?all_tenants=True&name=web", "admin", "web,web,web"},
		{"/servers?all_tenants=0&name=web", "admin", "web,web"}, // the path's tenant's
		{"/servers?all_tenants=1&name=web", "tokA", "web,web"},
	} {
		_, out := e.do(t, "GET", "/v2.1/"+tenantA+c.path, c.token, "")
		var r refs
		decodeJSON(t, out, &r)
		var got []string
		for _, s := range r.Servers {
			got = append(got, s.Name)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s as %s: %q, want %q", c.path, c.token, got, c.want)
		}
	}
	if out := e.expect(t, "GET", "/v2.1/"+tenantA+"/os-keypairs", "tokA", "", 200); out != "{\"keypairs\":[]}\n" {
		t.Errorf("keypairs %s", out)
	}
}
