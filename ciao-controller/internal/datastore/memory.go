package datastore

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Memory is a Store kept in maps, for policy unit tests. Nothing is
// persisted. One mutex, mu, guards every field below it.
type Memory struct {
	mu        sync.Mutex
	closed    bool                       // guarded by mu
	tenants   map[string]Tenant          // guarded by mu
	limits    map[string]map[string]int  // tenant → resource → max; guarded by mu
	usage     map[string]map[string]int  // tenant → resource → usage; guarded by mu
	workloads map[string]Workload        // guarded by mu
	instances map[string]Instance        // guarded by mu
	subnets   map[int]string             // subnet number → owning tenant; guarded by mu
	addrs     map[netip.Addr]Address     // allocated addresses; guarded by mu
	cncis     map[string]CNCI            // by tenant; guarded by mu
	nodes     map[string]NodeStats       // latest per node; guarded by mu
	nodeHist  map[string][]NodeStats     // guarded by mu
	instStats map[string]InstanceStats   // latest per instance; guarded by mu
	instHist  map[string][]InstanceStats // guarded by mu
	events    []Event                    // guarded by mu
	nextEvent int64                      // guarded by mu
	frames    []TraceFrame               // guarded by mu
	ident     memIdentity                // identity_memory.go; guarded by mu
	lifetimes map[string]Lifetime        // by instance id (lifetimes.go); guarded by mu
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		tenants:   map[string]Tenant{},
		limits:    map[string]map[string]int{},
		usage:     map[string]map[string]int{},
		workloads: map[string]Workload{},
		instances: map[string]Instance{},
		subnets:   map[int]string{},
		addrs:     map[netip.Addr]Address{},
		cncis:     map[string]CNCI{},
		nodes:     map[string]NodeStats{},
		nodeHist:  map[string][]NodeStats{},
		instStats: map[string]InstanceStats{},
		instHist:  map[string][]InstanceStats{},
	}
}

var errClosed = fmt.Errorf("store closed: %w", ErrInvalid)

func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	return nil
}

// Close marks the store closed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// CreateTenant implements Store.
func (m *Memory) CreateTenant(_ context.Context, t Tenant) error {
	if t.ID == "" {
		return fmt.Errorf("create tenant: empty id: %w", ErrInvalid)
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[t.ID]; ok {
		return fmt.Errorf("create tenant %s: %w", t.ID, ErrExists)
	}
	m.createTenantLocked(t)
	return nil
}

func (m *Memory) createTenantLocked(t Tenant) Tenant {
	t.CreatedAt = stamp(t.CreatedAt)
	m.tenants[t.ID] = t
	return t
}

// EnsureTenant implements Store.
func (m *Memory) EnsureTenant(_ context.Context, t Tenant) (Tenant, bool, error) {
	if t.ID == "" {
		return Tenant{}, false, fmt.Errorf("ensure tenant: empty id: %w", ErrInvalid)
	}
	if err := m.lock(); err != nil {
		return Tenant{}, false, err
	}
	defer m.mu.Unlock()
	if old, ok := m.tenants[t.ID]; ok {
		return old, false, nil
	}
	return m.createTenantLocked(t), true, nil
}

// Tenant implements Store.
func (m *Memory) Tenant(_ context.Context, id string) (Tenant, error) {
	if err := m.lock(); err != nil {
		return Tenant{}, err
	}
	defer m.mu.Unlock()
	t, ok := m.tenants[id]
	if !ok {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// Tenants implements Store.
func (m *Memory) Tenants(context.Context) ([]Tenant, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Tenant, 0, len(m.tenants))
	for _, t := range m.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteTenant implements Store.
func (m *Memory) DeleteTenant(_ context.Context, id string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[id]; !ok {
		return fmt.Errorf("delete tenant %s: %w", id, ErrNotFound)
	}
	for _, in := range m.instances {
		if in.TenantID == id {
			return fmt.Errorf("delete tenant %s: has instances: %w", id, ErrInUse)
		}
	}
	for _, w := range m.workloads {
		if w.TenantID == id {
			return fmt.Errorf("delete tenant %s: has workloads: %w", id, ErrInUse)
		}
	}
	delete(m.tenants, id)
	delete(m.limits, id)
	delete(m.usage, id)
	delete(m.cncis, id)
	for s, owner := range m.subnets {
		if owner == id {
			delete(m.subnets, s)
		}
	}
	for ip, a := range m.addrs {
		if a.TenantID == id {
			delete(m.addrs, ip)
		}
	}
	return nil
}

// SetLimit implements Store.
func (m *Memory) SetLimit(_ context.Context, tenantID, resource string, max int) error {
	if resource == "" {
		return fmt.Errorf("set limit: empty resource: %w", ErrInvalid)
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[tenantID]; !ok {
		return fmt.Errorf("set limit for %s: %w", tenantID, ErrNotFound)
	}
	if max < 0 {
		delete(m.limits[tenantID], resource)
		return nil
	}
	if m.limits[tenantID] == nil {
		m.limits[tenantID] = map[string]int{}
	}
	m.limits[tenantID][resource] = max
	return nil
}

// Quotas implements Store.
func (m *Memory) Quotas(_ context.Context, tenantID string) ([]Quota, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("quotas for %s: %w", tenantID, ErrNotFound)
	}
	return quotaList(m.limits[tenantID], m.usage[tenantID]), nil
}

// CreateWorkload implements Store.
func (m *Memory) CreateWorkload(_ context.Context, w Workload) error {
	if w.ID == "" {
		return fmt.Errorf("create workload: empty id: %w", ErrInvalid)
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.workloads[w.ID]; ok {
		return fmt.Errorf("create workload %s: %w", w.ID, ErrExists)
	}
	if w.TenantID != "" {
		if _, ok := m.tenants[w.TenantID]; !ok {
			return fmt.Errorf("create workload %s: tenant %s: %w", w.ID, w.TenantID, ErrNotFound)
		}
	}
	w.Defaults = append([]RequestedResource(nil), w.Defaults...)
	if len(w.Storage) > 0 {
		w.Storage = append([]WorkloadDisk(nil), w.Storage...)
	} else {
		w.Storage = nil
	}
	m.workloads[w.ID] = w
	return nil
}

// Workload implements Store.
func (m *Memory) Workload(_ context.Context, id string) (Workload, error) {
	if err := m.lock(); err != nil {
		return Workload{}, err
	}
	defer m.mu.Unlock()
	w, ok := m.workloads[id]
	if !ok {
		return Workload{}, fmt.Errorf("get workload %s: %w", id, ErrNotFound)
	}
	w.Defaults = append([]RequestedResource(nil), w.Defaults...)
	if w.Storage != nil {
		w.Storage = append([]WorkloadDisk(nil), w.Storage...)
	}
	return w, nil
}

// Workloads implements Store.
func (m *Memory) Workloads(_ context.Context, f WorkloadFilter) ([]Workload, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Workload
	for _, w := range m.workloads {
		if w.TenantID != "" && w.TenantID != f.TenantID {
			continue
		}
		if w.Internal && !f.Internal {
			continue
		}
		w.Defaults = append([]RequestedResource(nil), w.Defaults...)
		if w.Storage != nil {
			w.Storage = append([]WorkloadDisk(nil), w.Storage...)
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteWorkload implements Store.
func (m *Memory) DeleteWorkload(_ context.Context, id string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.workloads[id]; !ok {
		return fmt.Errorf("delete workload %s: %w", id, ErrNotFound)
	}
	for _, in := range m.instances {
		if in.WorkloadID == id {
			return fmt.Errorf("delete workload %s: %w", id, ErrInUse)
		}
	}
	delete(m.workloads, id)
	return nil
}

// CreateInstances implements Store. Everything is checked before anything
// changes, so a failure leaves the store as it was.
func (m *Memory) CreateInstances(_ context.Context, reqs []InstanceRequest) ([]Instance, error) {
	if err := checkRequests(reqs); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	// Work on copies of usage and address state; commit at the end.
	usage := map[string]map[string]int{}
	claimed := map[int]string{}
	taken := map[netip.Addr]Address{}
	out := make([]Instance, 0, len(reqs))
	for _, r := range reqs {
		if _, ok := m.instances[r.ID]; ok {
			return nil, fmt.Errorf("create instance %s: %w", r.ID, ErrExists)
		}
		if _, ok := m.tenants[r.TenantID]; !ok {
			return nil, fmt.Errorf("create instance %s: tenant %s: %w", r.ID, r.TenantID, ErrNotFound)
		}
		w, ok := m.workloads[r.WorkloadID]
		if !ok || (w.TenantID != "" && w.TenantID != r.TenantID) {
			return nil, fmt.Errorf("create instance %s: workload %s: %w", r.ID, r.WorkloadID, ErrNotFound)
		}
		u, ok := usage[r.TenantID]
		if !ok {
			u = copyUsage(m.usage[r.TenantID])
			usage[r.TenantID] = u
		}
		req := request(w)
		if !r.NoLimits {
			if res, over := overLimit(m.limits[r.TenantID], u, req); over {
				return nil, fmt.Errorf("create instance %s: %s: %w", r.ID, res, ErrQuota)
			}
		}
		for k, v := range req {
			u[k] += v
		}
		in := Instance{
			ID: r.ID, TenantID: r.TenantID, WorkloadID: r.WorkloadID, Name: r.Name,
			State: StatePending, Usage: req, CreatedAt: now(),
		}
		if !r.NoAddress {
			a, err := m.allocLocked(r.TenantID, claimed, taken)
			if err != nil {
				return nil, fmt.Errorf("create instance %s: %w", r.ID, err)
			}
			a.InstanceID = r.ID
			taken[netip.MustParseAddr(a.IP)] = a
			in.IP, in.MAC = a.IP, a.MAC
		}
		out = append(out, in)
	}
	for t, u := range usage {
		m.usage[t] = u
	}
	for s, t := range claimed {
		m.subnets[s] = t
	}
	for ip, a := range taken {
		m.addrs[ip] = a
	}
	for _, in := range out {
		m.instances[in.ID] = in
		m.recordLifetimeLocked(in)
	}
	return cloneInstances(out), nil
}

// allocLocked picks the next address for tenantID, seeing pending claims
// and allocations of the current call as well as the committed ones.
func (m *Memory) allocLocked(tenantID string, claimed map[int]string, taken map[netip.Addr]Address) (Address, error) {
	var mine, all []int
	for s, t := range m.subnets {
		all = append(all, s)
		if t == tenantID {
			mine = append(mine, s)
		}
	}
	for s, t := range claimed {
		all = append(all, s)
		if t == tenantID {
			mine = append(mine, s)
		}
	}
	sort.Ints(mine)
	sort.Ints(all)
	used := map[int]map[int]bool{}
	mark := func(ip netip.Addr) {
		b := ip.As4()
		s := int(b[1])<<8 | int(b[2])
		if used[s] == nil {
			used[s] = map[int]bool{}
		}
		used[s][int(b[3])] = true
	}
	for ip, a := range m.addrs {
		if a.TenantID == tenantID {
			mark(ip)
		}
	}
	for ip, a := range taken {
		if a.TenantID == tenantID {
			mark(ip)
		}
	}
	s, h, claim := pickHost(mine, used)
	if claim {
		var err error
		if s, err = nextFreeSubnet(all); err != nil {
			return Address{}, fmt.Errorf("allocate address for %s: %w", tenantID, err)
		}
		claimed[s] = tenantID
	}
	return addrFor(tenantID, s, h), nil
}

// AllocateAddress implements Store.
func (m *Memory) AllocateAddress(_ context.Context, tenantID string) (Address, error) {
	if err := m.lock(); err != nil {
		return Address{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[tenantID]; !ok {
		return Address{}, fmt.Errorf("allocate address: tenant %s: %w", tenantID, ErrNotFound)
	}
	claimed := map[int]string{}
	a, err := m.allocLocked(tenantID, claimed, nil)
	if err != nil {
		return Address{}, err
	}
	for s, t := range claimed {
		m.subnets[s] = t
	}
	m.addrs[netip.MustParseAddr(a.IP)] = a
	return a, nil
}

// ReleaseAddress implements Store.
func (m *Memory) ReleaseAddress(_ context.Context, tenantID, ip string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("release address %q: %w", ip, ErrInvalid)
	}
	a, ok := m.addrs[addr]
	if !ok || a.TenantID != tenantID {
		return fmt.Errorf("release address %s: %w", ip, ErrNotFound)
	}
	if a.InstanceID != "" {
		return fmt.Errorf("release address %s: held by instance %s: %w", ip, a.InstanceID, ErrInUse)
	}
	delete(m.addrs, addr)
	return nil
}

// Addresses implements Store.
func (m *Memory) Addresses(_ context.Context, tenantID string) ([]Address, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var ips []netip.Addr
	for ip, a := range m.addrs {
		if a.TenantID == tenantID {
			ips = append(ips, ip)
		}
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
	out := make([]Address, len(ips))
	for i, ip := range ips {
		out[i] = m.addrs[ip]
	}
	return out, nil
}

// Subnets implements Store.
func (m *Memory) Subnets(_ context.Context, tenantID string) ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var ss []int
	for s, t := range m.subnets {
		if t == tenantID {
			ss = append(ss, s)
		}
	}
	sort.Ints(ss)
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = subnetCIDR(s)
	}
	return out, nil
}

func cloneInstances(in []Instance) []Instance {
	out := make([]Instance, len(in))
	for i, x := range in {
		x.Usage = copyUsage(x.Usage)
		out[i] = x
	}
	return out
}

// Instance implements Store.
func (m *Memory) Instance(_ context.Context, id string) (Instance, error) {
	if err := m.lock(); err != nil {
		return Instance{}, err
	}
	defer m.mu.Unlock()
	in, ok := m.instances[id]
	if !ok {
		return Instance{}, fmt.Errorf("get instance %s: %w", id, ErrNotFound)
	}
	in.Usage = copyUsage(in.Usage)
	return in, nil
}

// Instances implements Store.
func (m *Memory) Instances(_ context.Context, q InstanceQuery) (InstancePage, error) {
	if err := m.lock(); err != nil {
		return InstancePage{}, err
	}
	defer m.mu.Unlock()
	var ids []string
	for id, in := range m.instances {
		if (q.TenantID == "" || in.TenantID == q.TenantID) &&
			(q.NodeID == "" || in.NodeID == q.NodeID) &&
			(q.WorkloadID == "" || in.WorkloadID == q.WorkloadID) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	lo, hi, total, err := page(ids, q)
	if err != nil {
		return InstancePage{}, err
	}
	out := make([]Instance, 0, hi-lo)
	for _, id := range ids[lo:hi] {
		in := m.instances[id]
		in.Usage = copyUsage(in.Usage)
		out = append(out, in)
	}
	return InstancePage{Instances: out, Total: total}, nil
}

// UpdateInstances implements Store.
func (m *Memory) UpdateInstances(_ context.Context, ups []InstanceUpdate) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.updateLocked(ups), nil
}

func (m *Memory) updateLocked(ups []InstanceUpdate) int {
	n := 0
	for _, u := range ups {
		in, ok := m.instances[u.ID]
		if !ok {
			continue
		}
		in.State, in.NodeID, in.SSHIP, in.SSHPort = u.State, u.NodeID, u.SSHIP, u.SSHPort
		m.instances[u.ID] = in
		n++
	}
	return n
}

// DeleteInstance implements Store.
func (m *Memory) DeleteInstance(_ context.Context, id string) (Instance, error) {
	if err := m.lock(); err != nil {
		return Instance{}, err
	}
	defer m.mu.Unlock()
	in, ok := m.instances[id]
	if !ok {
		return Instance{}, fmt.Errorf("delete instance %s: %w", id, ErrNotFound)
	}
	delete(m.instances, id)
	m.endLifetimeLocked(id, now())
	u := m.usage[in.TenantID]
	for k, v := range in.Usage {
		u[k] -= v
		if u[k] == 0 {
			delete(u, k)
		}
	}
	if in.IP != "" {
		delete(m.addrs, netip.MustParseAddr(in.IP))
	}
	delete(m.instStats, id)
	delete(m.instHist, id)
	return in, nil
}

// PutCNCI implements Store.
func (m *Memory) PutCNCI(_ context.Context, c CNCI) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.tenants[c.TenantID]; !ok {
		return fmt.Errorf("put cnci: tenant %s: %w", c.TenantID, ErrNotFound)
	}
	c.UpdatedAt = now()
	m.cncis[c.TenantID] = c
	return nil
}

// CNCI implements Store.
func (m *Memory) CNCI(_ context.Context, tenantID string) (CNCI, error) {
	if err := m.lock(); err != nil {
		return CNCI{}, err
	}
	defer m.mu.Unlock()
	c, ok := m.cncis[tenantID]
	if !ok {
		return CNCI{}, fmt.Errorf("get cnci of %s: %w", tenantID, ErrNotFound)
	}
	return c, nil
}

// CNCIs implements Store.
func (m *Memory) CNCIs(context.Context) ([]CNCI, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]CNCI, 0, len(m.cncis))
	for _, c := range m.cncis {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantID < out[j].TenantID })
	return out, nil
}

// DeleteCNCI implements Store.
func (m *Memory) DeleteCNCI(_ context.Context, tenantID string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.cncis[tenantID]; !ok {
		return fmt.Errorf("delete cnci of %s: %w", tenantID, ErrNotFound)
	}
	delete(m.cncis, tenantID)
	return nil
}

// RecordStats implements Store.
func (m *Memory) RecordStats(_ context.Context, r StatsReport) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	t := stamp(r.Time)
	if r.Node != nil {
		n := *r.Node
		n.NodeID, n.Time = r.NodeID, t
		m.nodes[n.NodeID] = n
		h := append(m.nodeHist[n.NodeID], n)
		for len(h) > 0 && h[0].Time.Before(t.Add(-DefaultNodeHistory)) {
			h = h[1:]
		}
		m.nodeHist[n.NodeID] = h
	}
	ups := make([]InstanceUpdate, 0, len(r.Instances))
	for _, s := range r.Instances {
		s.NodeID, s.Time, s.Volumes = r.NodeID, t, nil
		m.instStats[s.InstanceID] = s
		h := append(m.instHist[s.InstanceID], s)
		for len(h) > 0 && h[0].Time.Before(t.Add(-DefaultInstanceHistory)) {
			h = h[1:]
		}
		m.instHist[s.InstanceID] = h
		ups = append(ups, InstanceUpdate{ID: s.InstanceID, State: s.State, NodeID: r.NodeID, SSHIP: s.SSHIP, SSHPort: s.SSHPort})
	}
	m.updateLocked(ups)
	return nil
}

// Nodes implements Store.
func (m *Memory) Nodes(context.Context) ([]NodeStats, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]NodeStats, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// Node implements Store.
func (m *Memory) Node(_ context.Context, nodeID string) (NodeStats, error) {
	if err := m.lock(); err != nil {
		return NodeStats{}, err
	}
	defer m.mu.Unlock()
	n, ok := m.nodes[nodeID]
	if !ok {
		return NodeStats{}, fmt.Errorf("get node %s: %w", nodeID, ErrNotFound)
	}
	return n, nil
}

// DeleteNode implements Store.
func (m *Memory) DeleteNode(_ context.Context, nodeID string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.nodes[nodeID]; !ok {
		return fmt.Errorf("delete node %s: %w", nodeID, ErrNotFound)
	}
	delete(m.nodes, nodeID)
	return nil
}

// NodeHistory implements Store: the newest limit entries, oldest first.
func (m *Memory) NodeHistory(_ context.Context, nodeID string, limit int) ([]NodeStats, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	h := m.nodeHist[nodeID]
	if limit > 0 && len(h) > limit {
		h = h[len(h)-limit:]
	}
	return append([]NodeStats(nil), h...), nil
}

// InstanceStats implements Store.
func (m *Memory) InstanceStats(_ context.Context, id string) (InstanceStats, error) {
	if err := m.lock(); err != nil {
		return InstanceStats{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.instStats[id]
	if !ok {
		return InstanceStats{}, fmt.Errorf("get stats of %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// NodeInstanceStats implements Store.
func (m *Memory) NodeInstanceStats(_ context.Context, nodeID string) ([]InstanceStats, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []InstanceStats
	for _, s := range m.instStats {
		if s.NodeID == nodeID {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}

// InstanceHistory implements Store.
func (m *Memory) InstanceHistory(_ context.Context, id string, since time.Time) ([]InstanceStats, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []InstanceStats
	for _, s := range m.instHist[id] {
		if !s.Time.Before(since) {
			out = append(out, s)
		}
	}
	return out, nil
}

// AddEvent implements Store.
func (m *Memory) AddEvent(_ context.Context, e Event) (Event, error) {
	if err := m.lock(); err != nil {
		return Event{}, err
	}
	defer m.mu.Unlock()
	m.nextEvent++
	e.ID, e.Time = m.nextEvent, stamp(e.Time)
	m.events = append(m.events, e)
	return e, nil
}

// Events implements Store.
func (m *Memory) Events(_ context.Context, tenantID string) ([]Event, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := []Event{}
	for _, e := range m.events {
		if tenantID == "" || e.TenantID == tenantID {
			out = append(out, e)
		}
	}
	return out, nil
}

// ClearEvents implements Store.
func (m *Memory) ClearEvents(context.Context) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.events = nil
	return nil
}

// AddTraces implements Store.
func (m *Memory) AddTraces(_ context.Context, frames []TraceFrame) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, f := range frames {
		f.Start, f.End = f.Start.UTC().Round(0), f.End.UTC().Round(0)
		hops := make([]TraceHop, len(f.Hops))
		for i, h := range f.Hops {
			h.Tx, h.Rx = h.Tx.UTC().Round(0), h.Rx.UTC().Round(0)
			hops[i] = h
		}
		f.Hops = hops
		m.frames = append(m.frames, f)
	}
	return nil
}

// TraceSummaries implements Store.
func (m *Memory) TraceSummaries(context.Context) ([]TraceSummary, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	count := map[string]int{}
	for _, f := range m.frames {
		count[f.Label]++
	}
	var out []TraceSummary
	for l, n := range count {
		out = append(out, TraceSummary{Label: l, Instances: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// TraceFrames implements Store.
func (m *Memory) TraceFrames(_ context.Context, label string) ([]TraceFrame, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []TraceFrame
	for _, f := range m.frames {
		if f.Label == label {
			f.Hops = append([]TraceHop(nil), f.Hops...)
			out = append(out, f)
		}
	}
	return out, nil
}
