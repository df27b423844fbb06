package datastore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// NewTestSQLite opens a store in t.TempDir, closed by t.Cleanup.
func NewTestSQLite(t testing.TB, mod func(*Config)) *SQLite {
	t.Helper()
	cfg := NewConfig(filepath.Join(t.TempDir(), "ciao.db"))
	if mod != nil {
		mod(&cfg)
	}
	s, err := OpenSQLite(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type impl struct {
	name string
	open func(t testing.TB) Store
}

var impls = []impl{
	{"memory", func(t testing.TB) Store { return NewMemory() }},
	{"sqlite", func(t testing.TB) Store { return NewTestSQLite(t, nil) }},
}

const (
	wlFedora = "69e84267-ed01-4738-b15f-b47de06b62e7"
	wlCNCI   = "eba04826-62a5-48bd-876f-9119667b1487"
)

func shippedWorkloads() []Workload {
	def := func(v, m, d int) []RequestedResource {
		return []RequestedResource{{ResVCPUs, v, true}, {ResMemMB, m, true}, {ResDiskMB, d, true}}
	}
	return []Workload{
		{ID: wlFedora, Description: "Fedora 23 Cloud", Filename: "test.yaml", FWType: "legacy", VMType: "qemu",
			ImageID: "73a86d7e-93c0-480e-9c41-ab42f69b7799", Config: "---\n#cloud-config\n...\n", Defaults: def(2, 128, 80)},
		{ID: wlCNCI, Description: "CNCI", Filename: "test.yaml", FWType: "efi", VMType: "qemu", Internal: true,
			ImageID:  "4e16e743-265a-4bf2-9fd1-57ada0b28904",
			Defaults: append(def(4, 2048, 2048), RequestedResource{ResNetworkNode, 1, true})},
		{ID: "ca957444-fa46-11e5-94f9-38607786d9ec", Description: "Docker Ubuntu latest", VMType: "docker",
			ImageName: "ubuntu:latest", Defaults: def(2, 128, 80)},
	}
}

// seed creates tenant T and the shipped workloads.
func seed(t testing.TB, s Store, tenants ...string) {
	t.Helper()
	ctx := context.Background()
	for _, w := range shippedWorkloads() {
		if err := s.CreateWorkload(ctx, w); err != nil {
			t.Fatalf("create workload: %v", err)
		}
	}
	for _, id := range tenants {
		if err := s.CreateTenant(ctx, Tenant{ID: id, CNCIMAC: "02:11:22:33:44:55"}); err != nil {
			t.Fatalf("create tenant: %v", err)
		}
	}
}

func mustCreate(t testing.TB, s Store, reqs ...InstanceRequest) []Instance {
	t.Helper()
	ins, err := s.CreateInstances(context.Background(), reqs)
	if err != nil {
		t.Fatalf("create instances: %v", err)
	}
	return ins
}

func req(id, tenant string) InstanceRequest {
	return InstanceRequest{ID: id, TenantID: tenant, WorkloadID: wlFedora}
}

func usageOf(t testing.TB, s Store, tenant string) map[string]Quota {
	t.Helper()
	qs, err := s.Quotas(context.Background(), tenant)
	if err != nil {
		t.Fatalf("quotas: %v", err)
	}
	m := map[string]Quota{}
	for _, q := range qs {
		m[q.Resource] = q
	}
	return m
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// TestConformance runs the shared suite against every implementation.
func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"tenants", testTenants},
		{"workloads", testWorkloads},
		{"instances", testInstances},
		{"addresses", testAddresses},
		{"quota", testQuota},
		{"pagination", testPagination},
		{"cnci", testCNCI},
		{"stats", testStats},
		{"events", testEvents},
		{"traces", testTraces},
		{"concurrency", testConcurrency},
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.fn(t, im.open(t)) })
			}
		})
	}
}

func testTenants(t *testing.T, s Store) {
	ctx := context.Background()
	wantErr(t, s.CreateTenant(ctx, Tenant{}), ErrInvalid)
	if err := s.CreateTenant(ctx, Tenant{ID: "b", Name: "bee"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateTenant(ctx, Tenant{ID: "b"}), ErrExists)
	got, created, err := s.EnsureTenant(ctx, Tenant{ID: "a", CNCIMAC: "02:01:02:03:04:05"})
	if err != nil || !created || got.CNCIMAC != "02:01:02:03:04:05" || got.CreatedAt.IsZero() {
		t.Fatalf("ensure new = %+v %v %v", got, created, err)
	}
	got2, created, err := s.EnsureTenant(ctx, Tenant{ID: "a", CNCIMAC: "other"})
	if err != nil || created || got2.CNCIMAC != got.CNCIMAC || !got2.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("ensure existing = %+v %v %v", got2, created, err)
	}
	b, err := s.Tenant(ctx, "b")
	if err != nil || b.Name != "bee" {
		t.Fatalf("get = %+v %v", b, err)
	}
	_, err = s.Tenant(ctx, "zz")
	wantErr(t, err, ErrNotFound)
	ts, err := s.Tenants(ctx)
	if err != nil || len(ts) != 2 || ts[0].ID != "a" || ts[1].ID != "b" {
		t.Fatalf("list = %+v %v", ts, err)
	}
	// Limits and quotas.
	q := usageOf(t, s, "a")
	for _, r := range Resources {
		if q[r].Limit != -1 || q[r].Usage != 0 {
			t.Fatalf("quota %s = %+v", r, q[r])
		}
	}
	if err := s.SetLimit(ctx, "a", ResInstances, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimit(ctx, "a", ResInstances, 3); err != nil { // upsert, not a duplicate
		t.Fatal(err)
	}
	if q := usageOf(t, s, "a"); q[ResInstances].Limit != 3 {
		t.Fatalf("limit = %+v", q[ResInstances])
	}
	if err := s.SetLimit(ctx, "a", ResInstances, -1); err != nil {
		t.Fatal(err)
	}
	if q := usageOf(t, s, "a"); q[ResInstances].Limit != -1 {
		t.Fatalf("limit after removal = %+v", q[ResInstances])
	}
	wantErr(t, s.SetLimit(ctx, "zz", ResInstances, 1), ErrNotFound)
	_, err = s.Quotas(ctx, "zz")
	wantErr(t, err, ErrNotFound)
	// Delete: refused while instances exist.
	seed(t, s)
	mustCreate(t, s, req("i1", "a"))
	wantErr(t, s.DeleteTenant(ctx, "a"), ErrInUse)
	if _, err := s.DeleteInstance(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTenant(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteTenant(ctx, "a"), ErrNotFound)
	if subs, _ := s.Subnets(ctx, "a"); len(subs) != 0 {
		t.Fatalf("subnets survive tenant delete: %v", subs)
	}
}

func testWorkloads(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T", "U")
	wantErr(t, s.CreateWorkload(ctx, shippedWorkloads()[0]), ErrExists)
	wantErr(t, s.CreateWorkload(ctx, Workload{ID: "p", TenantID: "nobody"}), ErrNotFound)
	if err := s.CreateWorkload(ctx, Workload{ID: "private", TenantID: "T", Description: "mine",
		Defaults: []RequestedResource{{ResVCPUs, 1, false}}}); err != nil {
		t.Fatal(err)
	}
	ids := func(ws []Workload) (out []string) {
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	pub, err := s.Workloads(ctx, WorkloadFilter{})
	if err != nil || len(pub) != 2 {
		t.Fatalf("public = %v %v", ids(pub), err)
	}
	mine, _ := s.Workloads(ctx, WorkloadFilter{TenantID: "T"})
	if len(mine) != 3 {
		t.Fatalf("T sees %v", ids(mine))
	}
	other, _ := s.Workloads(ctx, WorkloadFilter{TenantID: "U", Internal: true})
	if len(other) != 3 { // 2 public + CNCI, not T's
		t.Fatalf("U sees %v", ids(other))
	}
	c, err := s.Workload(ctx, wlCNCI)
	if err != nil || !c.Internal || !c.IsCNCI() || len(c.Defaults) != 4 || c.Defaults[3].Type != ResNetworkNode {
		t.Fatalf("cnci = %+v %v", c, err)
	}
	f, _ := s.Workload(ctx, wlFedora)
	if f.IsCNCI() || f.Defaults[1] != (RequestedResource{ResMemMB, 128, true}) || f.Config == "" {
		t.Fatalf("fedora = %+v", f)
	}
	_, err = s.Workload(ctx, "nope")
	wantErr(t, err, ErrNotFound)
	// U may not use T's workload.
	_, err = s.CreateInstances(ctx, []InstanceRequest{{ID: "x", TenantID: "U", WorkloadID: "private"}})
	wantErr(t, err, ErrNotFound)
	mustCreate(t, s, InstanceRequest{ID: "y", TenantID: "T", WorkloadID: "private"})
	wantErr(t, s.DeleteWorkload(ctx, "private"), ErrInUse)
	s.DeleteInstance(ctx, "y")
	if err := s.DeleteWorkload(ctx, "private"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteWorkload(ctx, "private"), ErrNotFound)
}

func testInstances(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T")
	_, err := s.CreateInstances(ctx, nil)
	wantErr(t, err, ErrInvalid)
	_, err = s.CreateInstances(ctx, []InstanceRequest{req("a", "nobody")})
	wantErr(t, err, ErrNotFound)
	_, err = s.CreateInstances(ctx, []InstanceRequest{{ID: "a", TenantID: "T", WorkloadID: "nope"}})
	wantErr(t, err, ErrNotFound)

	ins := mustCreate(t, s, req("a", "T"), req("b", "T"), req("c", "T"))
	want := []struct{ ip, mac string }{
		{"172.16.0.2", "02:00:ac:10:00:02"}, {"172.16.0.3", "02:00:ac:10:00:03"}, {"172.16.0.4", "02:00:ac:10:00:04"},
	}
	for i, in := range ins {
		if in.State != StatePending || in.IP != want[i].ip || in.MAC != want[i].mac || in.NodeID != "" {
			t.Fatalf("instance %d = %+v", i, in)
		}
	}
	_, err = s.CreateInstances(ctx, []InstanceRequest{req("d", "T"), req("a", "T")})
	wantErr(t, err, ErrExists)
	if _, err := s.Instance(ctx, "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-created batch left d: %v", err)
	}
	got, err := s.Instance(ctx, "b")
	if err != nil || got.IP != "172.16.0.3" || got.Usage[ResVCPUs] != 2 || got.Usage[ResInstances] != 1 {
		t.Fatalf("get = %+v %v", got, err)
	}
	q := usageOf(t, s, "T")
	if q[ResInstances].Usage != 3 || q[ResVCPUs].Usage != 6 || q[ResMemMB].Usage != 384 || q[ResDiskMB].Usage != 240 {
		t.Fatalf("usage = %+v", q)
	}
	n, err := s.UpdateInstances(ctx, []InstanceUpdate{
		{ID: "a", State: StateActive, NodeID: "N", SSHIP: "198.51.100.75", SSHPort: 33002},
		{ID: "ghost", State: StateActive},
	})
	if err != nil || n != 1 {
		t.Fatalf("update = %d %v", n, err)
	}
	got, _ = s.Instance(ctx, "a")
	if got.State != StateActive || got.NodeID != "N" || got.SSHIP != "198.51.100.75" || got.SSHPort != 33002 {
		t.Fatalf("updated = %+v", got)
	}
	onN, _ := s.Instances(ctx, InstanceQuery{NodeID: "N"})
	if onN.Total != 1 || onN.Instances[0].ID != "a" {
		t.Fatalf("by node = %+v", onN)
	}
	del, err := s.DeleteInstance(ctx, "b")
	if err != nil || del.IP != "172.16.0.3" {
		t.Fatalf("delete = %+v %v", del, err)
	}
	_, err = s.DeleteInstance(ctx, "b")
	wantErr(t, err, ErrNotFound)
	q = usageOf(t, s, "T")
	if q[ResInstances].Usage != 2 || q[ResVCPUs].Usage != 4 {
		t.Fatalf("usage after delete = %+v", q)
	}
	// The freed address comes back (acceptance 7).
	again := mustCreate(t, s, req("e", "T"))
	if again[0].IP != "172.16.0.3" {
		t.Fatalf("freed address not reused: %s", again[0].IP)
	}
	// CNCI-style instance: no address, no limit.
	c := mustCreate(t, s, InstanceRequest{ID: "cnci", TenantID: "T", WorkloadID: wlCNCI, NoAddress: true, NoLimits: true})
	if c[0].IP != "" || c[0].MAC != "" || c[0].Usage[ResNetworkNode] != 1 {
		t.Fatalf("cnci instance = %+v", c[0])
	}
}

func testAddresses(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T", "U")
	_, err := s.AllocateAddress(ctx, "nobody")
	wantErr(t, err, ErrNotFound)
	// Fill T's first /24 (253 hosts), then spill into a second.
	var last Address
	for i := 0; i < hostsPerNet; i++ {
		if last, err = s.AllocateAddress(ctx, "T"); err != nil {
			t.Fatal(err)
		}
	}
	if last.IP != "172.16.0.254" || last.Subnet != "172.16.0.0/24" {
		t.Fatalf("last of first subnet = %+v", last)
	}
	u, _ := s.AllocateAddress(ctx, "U")
	if u.IP != "172.16.1.2" || u.MAC != "02:00:ac:10:01:02" {
		t.Fatalf("U got %+v (subnets are per tenant)", u)
	}
	next, _ := s.AllocateAddress(ctx, "T")
	if next.IP != "172.16.2.2" {
		t.Fatalf("T spill = %+v", next)
	}
	subs, _ := s.Subnets(ctx, "T")
	if fmt.Sprint(subs) != "[172.16.0.0/24 172.16.2.0/24]" {
		t.Fatalf("subnets = %v", subs)
	}
	// Release in the first subnet: the last non-full subnet is still the
	// second, so allocation continues there (spec §4.9 step 1).
	if err := s.ReleaseAddress(ctx, "T", "172.16.0.10"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.ReleaseAddress(ctx, "T", "172.16.0.10"), ErrNotFound)
	wantErr(t, s.ReleaseAddress(ctx, "U", "172.16.0.11"), ErrNotFound)
	wantErr(t, s.ReleaseAddress(ctx, "T", "bogus"), ErrInvalid)
	if a, _ := s.AllocateAddress(ctx, "T"); a.IP != "172.16.2.3" {
		t.Fatalf("after release = %+v", a)
	}
	ins := mustCreate(t, s, req("i", "T"))
	wantErr(t, s.ReleaseAddress(ctx, "T", ins[0].IP), ErrInUse)
	as, _ := s.Addresses(ctx, "T")
	if len(as) != hostsPerNet-1+3 || as[len(as)-1].InstanceID != "i" {
		t.Fatalf("addresses: %d, last %+v", len(as), as[len(as)-1])
	}
}

func testQuota(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T")
	if err := s.SetLimit(ctx, "T", ResInstances, 2); err != nil {
		t.Fatal(err)
	}
	// Acceptance 10, with all-or-nothing admission: a batch of 3 fails
	// and creates nothing.
	_, err := s.CreateInstances(ctx, []InstanceRequest{req("a", "T"), req("b", "T"), req("c", "T")})
	wantErr(t, err, ErrQuota)
	if p, _ := s.Instances(ctx, InstanceQuery{TenantID: "T"}); p.Total != 0 {
		t.Fatalf("refused batch left %d instances", p.Total)
	}
	if as, _ := s.Addresses(ctx, "T"); len(as) != 0 {
		t.Fatalf("refused batch left addresses %v", as)
	}
	mustCreate(t, s, req("a", "T"), req("b", "T"))
	_, err = s.CreateInstances(ctx, []InstanceRequest{req("c", "T")})
	wantErr(t, err, ErrQuota)
	q := usageOf(t, s, "T")
	if q[ResInstances] != (Quota{ResInstances, 2, 2}) || q[ResVCPUs].Limit != -1 {
		t.Fatalf("quotas = %+v", q)
	}
	// CNCIs are always admitted; a limit of 0 means unlimited.
	mustCreate(t, s, InstanceRequest{ID: "cnci", TenantID: "T", WorkloadID: wlCNCI, NoAddress: true, NoLimits: true})
	s.SetLimit(ctx, "T", ResInstances, 0)
	s.SetLimit(ctx, "T", ResVCPUs, 10)
	mustCreate(t, s, req("d", "T"))                                   // vcpus 2+2 + cnci 4 + 2 = 10: at the limit is fine
	_, err = s.CreateInstances(ctx, []InstanceRequest{req("e", "T")}) // 12 > 10
	wantErr(t, err, ErrQuota)
}

func testPagination(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T", "U")
	var reqs []InstanceRequest
	for i := 12; i >= 1; i-- {
		reqs = append(reqs, req(fmt.Sprintf("i%02d", i), "T"))
	}
	mustCreate(t, s, reqs...)
	mustCreate(t, s, req("u1", "U"))
	ids := func(p InstancePage) (out []string) {
		for _, in := range p.Instances {
			out = append(out, in.ID)
		}
		return out
	}
	for _, c := range []struct {
		q     InstanceQuery
		total int
		first string
		n     int
	}{
		{InstanceQuery{TenantID: "T"}, 12, "i01", 12},
		{InstanceQuery{TenantID: "T", Offset: 10}, 12, "i11", 2},
		{InstanceQuery{TenantID: "T", Marker: "i05"}, 7, "i06", 7},
		{InstanceQuery{TenantID: "T", Marker: "i05", Offset: 3, Limit: 2}, 7, "i06", 2},
		{InstanceQuery{TenantID: "T", Limit: 5}, 12, "i01", 5},
		{InstanceQuery{TenantID: "T", Offset: 40}, 12, "", 0},
		{InstanceQuery{TenantID: "nobody"}, 0, "", 0},
	} {
		p, err := s.Instances(ctx, c.q)
		if err != nil || p.Total != c.total || len(p.Instances) != c.n || (c.n > 0 && p.Instances[0].ID != c.first) {
			t.Fatalf("%+v → total %d %v %v", c.q, p.Total, ids(p), err)
		}
		if !sort.StringsAreSorted(ids(p)) {
			t.Fatalf("%+v not sorted: %v", c.q, ids(p))
		}
	}
	_, err := s.Instances(ctx, InstanceQuery{TenantID: "T", Marker: "u1"})
	wantErr(t, err, ErrNotFound)
}

func testCNCI(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T", "U")
	wantErr(t, s.PutCNCI(ctx, CNCI{TenantID: "nobody", ID: "c"}), ErrNotFound)
	if err := s.PutCNCI(ctx, CNCI{TenantID: "T", ID: "c1", MAC: "02:11:22:33:44:55", State: StatePending}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCNCI(ctx, CNCI{TenantID: "T", ID: "c1", MAC: "02:11:22:33:44:55", IP: "198.51.100.20", State: StateActive}); err != nil {
		t.Fatal(err)
	}
	c, err := s.CNCI(ctx, "T")
	if err != nil || c.IP != "198.51.100.20" || c.State != StateActive || c.UpdatedAt.IsZero() {
		t.Fatalf("cnci = %+v %v", c, err)
	}
	_, err = s.CNCI(ctx, "U")
	wantErr(t, err, ErrNotFound)
	s.PutCNCI(ctx, CNCI{TenantID: "U", ID: "c2"})
	cs, _ := s.CNCIs(ctx)
	if len(cs) != 2 || cs[0].TenantID != "T" {
		t.Fatalf("cncis = %+v", cs)
	}
	if err := s.DeleteCNCI(ctx, "T"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteCNCI(ctx, "T"), ErrNotFound)
}

func testStats(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T")
	mustCreate(t, s, req("a", "T"), req("b", "T"))
	t0 := time.Date(2016, 10, 18, 10, 0, 0, 0, time.UTC)
	node := &NodeStats{Hostname: "n1", Status: "READY", MemTotalMB: 3896, MemAvailableMB: 3896,
		DiskTotalMB: 500000, DiskAvailableMB: 256000, Load: 0, CPUsOnline: 4}
	for i := 0; i < 3; i++ {
		err := s.RecordStats(ctx, StatsReport{NodeID: "N", Node: node, Time: t0.Add(time.Duration(i) * 6 * time.Second),
			Instances: []InstanceStats{
				{InstanceID: "a", State: StateActive, SSHIP: "198.51.100.75", SSHPort: 33002, CPUUsage: 50 + i, MemoryUsageMB: 100, DiskUsageMB: 10},
				{InstanceID: "cnci-unknown", State: StateActive, CPUUsage: -1},
			}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Instance-only report (no node part) from another node.
	if err := s.RecordStats(ctx, StatsReport{NodeID: "M", Time: t0.Add(time.Minute),
		Instances: []InstanceStats{{InstanceID: "b", State: StateExited}}}); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Instance(ctx, "a")
	if a.State != StateActive || a.NodeID != "N" || a.SSHPort != 33002 {
		t.Fatalf("a = %+v", a)
	}
	nodes, _ := s.Nodes(ctx)
	if len(nodes) != 1 || nodes[0].NodeID != "N" || nodes[0].CPUsOnline != 4 || !nodes[0].Time.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("nodes = %+v", nodes)
	}
	_, err := s.Node(ctx, "M")
	wantErr(t, err, ErrNotFound)
	h, _ := s.NodeHistory(ctx, "N", 2)
	if len(h) != 2 || !h[1].Time.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("node history = %+v", h)
	}
	st, err := s.InstanceStats(ctx, "a")
	if err != nil || st.CPUUsage != 52 || st.NodeID != "N" {
		t.Fatalf("latest = %+v %v", st, err)
	}
	onN, _ := s.NodeInstanceStats(ctx, "N")
	if len(onN) != 2 || onN[0].InstanceID != "a" || onN[1].InstanceID != "cnci-unknown" {
		t.Fatalf("on N = %+v", onN)
	}
	hist, _ := s.InstanceHistory(ctx, "a", t0.Add(time.Second))
	if len(hist) != 2 || hist[0].CPUUsage != 51 {
		t.Fatalf("history = %+v", hist)
	}
	if err := s.DeleteNode(ctx, "N"); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
		t.Fatalf("nodes after delete = %+v", nodes)
	}
	if a, _ := s.Instance(ctx, "a"); a.State != StateActive { // keeps its last state
		t.Fatalf("a after node delete = %+v", a)
	}
	s.DeleteInstance(ctx, "a")
	_, err = s.InstanceStats(ctx, "a")
	wantErr(t, err, ErrNotFound)
}

func testEvents(t *testing.T, s Store) {
	ctx := context.Background()
	e1, err := s.AddEvent(ctx, Event{TenantID: "T", Type: EventInfo, Message: "Deleted Instance x"})
	if err != nil || e1.ID == 0 || e1.Time.IsZero() {
		t.Fatalf("add = %+v %v", e1, err)
	}
	s.AddEvent(ctx, Event{TenantID: "U", Type: EventError, Message: "Start Failure y: Cloud is full"})
	s.AddEvent(ctx, Event{TenantID: "T", Type: EventError, Message: "m3"})
	all, _ := s.Events(ctx, "")
	if len(all) != 3 || all[0].Message != "Deleted Instance x" || all[2].Message != "m3" || !all[0].Time.Equal(e1.Time) {
		t.Fatalf("all = %+v", all)
	}
	tt, _ := s.Events(ctx, "T")
	if len(tt) != 2 || tt[1].Type != EventError {
		t.Fatalf("T = %+v", tt)
	}
	if err := s.ClearEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Events(ctx, ""); all == nil || len(all) != 0 {
		t.Fatalf("after clear = %#v (want empty, non-nil)", all)
	}
}

func testTraces(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2016, 10, 18, 17, 0, 0, 0, time.UTC)
	f := TraceFrame{Label: "trace1", Type: "COMMAND", Operand: "START", Start: t0, End: t0.Add(900 * time.Millisecond),
		Hops: []TraceHop{
			{NodeUUID: "c", Role: "Controller-", Tx: t0.Add(time.Millisecond)},
			{NodeUUID: "s", Role: "Scheduler-", Rx: t0.Add(2 * time.Millisecond), Tx: t0.Add(3 * time.Millisecond)},
			{NodeUUID: "a", Role: "CNAgent-", Rx: t0.Add(4 * time.Millisecond)},
		}}
	if err := s.AddTraces(ctx, []TraceFrame{f, {Label: "other"}, f}); err != nil {
		t.Fatal(err)
	}
	sum, _ := s.TraceSummaries(ctx)
	if fmt.Sprint(sum) != "[{other 1} {trace1 2}]" {
		t.Fatalf("summaries = %v", sum)
	}
	fs, _ := s.TraceFrames(ctx, "trace1")
	if len(fs) != 2 || len(fs[0].Hops) != 3 || !fs[0].Hops[0].Rx.IsZero() || !fs[0].Hops[1].Tx.Equal(f.Hops[1].Tx) ||
		!fs[1].End.Equal(f.End) {
		t.Fatalf("frames = %+v", fs)
	}
}

// testConcurrency: 50 goroutines create instances (and raw addresses) for
// two tenants at once; no address is handed out twice and usage is exact.
func testConcurrency(t *testing.T, s Store) {
	ctx := context.Background()
	seed(t, s, "T", "U")
	const workers, each = 50, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tenant := []string{"T", "U"}[w%2]
			for i := 0; i < each; i++ {
				var err error
				if i == each-1 {
					_, err = s.AllocateAddress(ctx, tenant)
				} else {
					_, err = s.CreateInstances(ctx, []InstanceRequest{req(fmt.Sprintf("w%02d-%d", w, i), tenant)})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, tenant := range []string{"T", "U"} {
		as, _ := s.Addresses(ctx, tenant)
		if len(as) != workers/2*each {
			t.Fatalf("%s has %d addresses, want %d", tenant, len(as), workers/2*each)
		}
		for _, a := range as {
			if prev, dup := seen[a.IP]; dup {
				t.Fatalf("address %s given to %s and %s", a.IP, prev, tenant)
			}
			seen[a.IP] = tenant
		}
		q := usageOf(t, s, tenant)
		n := workers / 2 * (each - 1)
		if q[ResInstances].Usage != n || q[ResVCPUs].Usage != 2*n {
			t.Fatalf("%s usage = %+v, want %d instances", tenant, q, n)
		}
		p, _ := s.Instances(ctx, InstanceQuery{TenantID: tenant})
		if p.Total != n {
			t.Fatalf("%s has %d instances", tenant, p.Total)
		}
	}
}
