package datastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// Tenants, workloads, instances and addresses of the SQLite store. Reads
// are served from the in-memory copy (sqlite_state.go); writes commit to
// SQLite first and then change the copy.

func orInUse(err error) error {
	if err != nil {
		return err
	}
	return ErrInUse
}

// ---- tenants ----

// CreateTenant implements Store.
func (s *SQLite) CreateTenant(ctx context.Context, t Tenant) error {
	if t.ID == "" {
		return fmt.Errorf("create tenant: empty id: %w", ErrInvalid)
	}
	_, _, err := s.ensureTenant(ctx, t, true)
	return err
}

// EnsureTenant implements Store.
func (s *SQLite) EnsureTenant(ctx context.Context, t Tenant) (Tenant, bool, error) {
	if t.ID == "" {
		return Tenant{}, false, fmt.Errorf("ensure tenant: empty id: %w", ErrInvalid)
	}
	if old, err := s.Tenant(ctx, t.ID); err == nil {
		return old, false, nil
	}
	return s.ensureTenant(ctx, t, false)
}

func (s *SQLite) ensureTenant(ctx context.Context, t Tenant, mustBeNew bool) (Tenant, bool, error) {
	t.CreatedAt = stamp(t.CreatedAt)
	var old Tenant
	exists := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		if mt := s.st.tenants[t.ID]; mt != nil { // wmu held: no writer changes it
			old, exists = mt.t, true
			return nil
		}
		// ON CONFLICT: an earlier write of the same batch may have
		// created it (not in st until the batch commits).
		res, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, cnci_mac, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, t.ID, t.Name, t.CNCIMAC, ns(t.CreatedAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var c int64
		if err := tx.QueryRowContext(ctx, `SELECT id, name, cnci_mac, created_at FROM tenants WHERE id = ?`, t.ID).
			Scan(&old.ID, &old.Name, &old.CNCIMAC, &c); err != nil {
			return err
		}
		old.CreatedAt, exists = fromNS(c), true
		return nil
	}, func() {
		if !exists {
			s.st.tenants[t.ID] = &memTenant{t: t, limits: map[string]int{}, usage: map[string]int{}, used: map[int]*hostSet{}}
		}
	}, nil)
	switch {
	case err != nil:
		return Tenant{}, false, fmt.Errorf("create tenant %s: %w", t.ID, err)
	case exists && mustBeNew:
		return Tenant{}, false, fmt.Errorf("create tenant %s: %w", t.ID, ErrExists)
	case exists:
		return old, false, nil
	}
	return t, true, nil
}

// Tenant implements Store.
func (s *SQLite) Tenant(_ context.Context, id string) (Tenant, error) {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	if t := s.st.tenants[id]; t != nil {
		return t.t, nil
	}
	return Tenant{}, fmt.Errorf("get tenant %s: %w", id, ErrNotFound)
}

// Tenants implements Store.
func (s *SQLite) Tenants(_ context.Context) ([]Tenant, error) {
	s.st.mu.RLock()
	out := make([]Tenant, 0, len(s.st.tenants))
	for _, t := range s.st.tenants {
		out = append(out, t.t)
	}
	s.st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteTenant implements Store.
func (s *SQLite) DeleteTenant(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		t := s.st.tenants[id]
		if t == nil {
			return fmt.Errorf("delete tenant %s: %w", id, ErrNotFound)
		}
		if len(t.ids) > 0 {
			return fmt.Errorf("delete tenant %s: has instances: %w", id, ErrInUse)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM workloads WHERE tenant_id = ? LIMIT 1`, id); err != nil || ok {
			return fmt.Errorf("delete tenant %s: has workloads: %w", id, orInUse(err))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		return nil
	}, func() {
		t := s.st.tenants[id]
		for _, sn := range t.subnets {
			delete(s.st.claimed, sn) // subnets rows go by cascade
		}
		delete(s.st.tenants, id)
	}, nil)
}

// SetLimit implements Store.
func (s *SQLite) SetLimit(ctx context.Context, tenantID, resource string, max int) error {
	if resource == "" {
		return fmt.Errorf("set limit: empty resource: %w", ErrInvalid)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if s.st.tenants[tenantID] == nil {
			return fmt.Errorf("set limit for %s: %w", tenantID, ErrNotFound)
		}
		var err error
		if max < 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM limits WHERE tenant_id = ? AND resource = ?`, tenantID, resource)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO limits (tenant_id, resource, max_value) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id, resource) DO UPDATE SET max_value = excluded.max_value`, tenantID, resource, max)
		}
		if err != nil {
			return fmt.Errorf("set limit for %s: %w", tenantID, err)
		}
		return nil
	}, func() {
		t := s.st.tenants[tenantID]
		l := copyUsage(t.limits)
		if max < 0 {
			delete(l, resource)
		} else {
			l[resource] = max
		}
		t.limits = l
	}, nil)
}

// Quotas implements Store.
func (s *SQLite) Quotas(_ context.Context, tenantID string) ([]Quota, error) {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	t := s.st.tenants[tenantID]
	if t == nil {
		return nil, fmt.Errorf("quotas for %s: %w", tenantID, ErrNotFound)
	}
	return quotaList(t.limits, t.usage), nil
}

// ---- workloads ----

// CreateWorkload implements Store.
func (s *SQLite) CreateWorkload(ctx context.Context, w Workload) error {
	if w.ID == "" {
		return fmt.Errorf("create workload: empty id: %w", ErrInvalid)
	}
	w.Defaults = append([]RequestedResource(nil), w.Defaults...)
	w.Storage = append([]WorkloadDisk(nil), w.Storage...)
	storage := ""
	if len(w.Storage) > 0 {
		b, err := json.Marshal(w.Storage)
		if err != nil {
			return fmt.Errorf("create workload %s: storage: %w", w.ID, err)
		}
		storage = string(b)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var tenant any
		if w.TenantID != "" {
			tenant = w.TenantID
			if s.st.tenants[w.TenantID] == nil {
				return fmt.Errorf("create workload %s: tenant %s: %w", w.ID, w.TenantID, ErrNotFound)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO workloads (id, tenant_id, description, filename, fw_type, vm_type,
			image_id, image_name, config, internal, storage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, tenant, w.Description, w.Filename, w.FWType, w.VMType, w.ImageID, w.ImageName, w.Config, w.Internal, storage)
		if isConstraint(err) {
			return fmt.Errorf("create workload %s: %w", w.ID, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create workload %s: %w", w.ID, err)
		}
		for i, d := range w.Defaults {
			if _, err := tx.ExecContext(ctx, `INSERT INTO workload_resources (workload_id, position, resource, value, mandatory)
				VALUES (?, ?, ?, ?, ?)`, w.ID, i, d.Type, d.Value, d.Mandatory); err != nil {
				return fmt.Errorf("create workload %s: resource %s: %w", w.ID, d.Type, err)
			}
		}
		return nil
	}, func() {
		if len(w.Defaults) == 0 {
			w.Defaults = nil
		}
		if len(w.Storage) == 0 {
			w.Storage = nil
		}
		s.st.workloads[w.ID] = w
	}, nil)
}

const workloadCols = `id, COALESCE(tenant_id, ''), description, filename, fw_type, vm_type, image_id, image_name, config, internal, storage`

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func scanWorkloads(ctx context.Context, q querier, where string, args ...any) ([]Workload, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+workloadCols+` FROM workloads `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	var out []Workload
	idx := map[string]int{}
	for rows.Next() {
		var w Workload
		var storage string
		if err := rows.Scan(&w.ID, &w.TenantID, &w.Description, &w.Filename, &w.FWType, &w.VMType,
			&w.ImageID, &w.ImageName, &w.Config, &w.Internal, &storage); err != nil {
			rows.Close()
			return nil, err
		}
		if storage != "" {
			if err := json.Unmarshal([]byte(storage), &w.Storage); err != nil {
				rows.Close()
				return nil, fmt.Errorf("workload %s: storage: %w", w.ID, err)
			}
		}
		idx[w.ID] = len(out)
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	res, err := q.QueryContext(ctx, `SELECT workload_id, resource, value, mandatory FROM workload_resources ORDER BY workload_id, position`)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	for res.Next() {
		var id string
		var d RequestedResource
		if err := res.Scan(&id, &d.Type, &d.Value, &d.Mandatory); err != nil {
			return nil, err
		}
		if i, ok := idx[id]; ok {
			out[i].Defaults = append(out[i].Defaults, d)
		}
	}
	return out, res.Err()
}

func cloneWorkload(w Workload) Workload {
	if w.Defaults != nil {
		w.Defaults = append([]RequestedResource(nil), w.Defaults...)
	}
	if w.Storage != nil {
		w.Storage = append([]WorkloadDisk(nil), w.Storage...)
	}
	return w
}

// Workload implements Store.
func (s *SQLite) Workload(_ context.Context, id string) (Workload, error) {
	s.st.mu.RLock()
	w, ok := s.st.workloads[id]
	s.st.mu.RUnlock()
	if !ok {
		return Workload{}, fmt.Errorf("get workload %s: %w", id, ErrNotFound)
	}
	return cloneWorkload(w), nil
}

// Workloads implements Store.
func (s *SQLite) Workloads(_ context.Context, f WorkloadFilter) ([]Workload, error) {
	s.st.mu.RLock()
	out := []Workload{}
	for _, w := range s.st.workloads {
		if (w.TenantID == "" || w.TenantID == f.TenantID) && (f.Internal || !w.Internal) {
			out = append(out, cloneWorkload(w))
		}
	}
	s.st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteWorkload implements Store.
func (s *SQLite) DeleteWorkload(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, ok := s.st.workloads[id]; !ok {
			return fmt.Errorf("delete workload %s: %w", id, ErrNotFound)
		}
		for _, in := range s.st.instances { // wmu held: no writer changes it
			if in.WorkloadID == id {
				return fmt.Errorf("delete workload %s: %w", id, ErrInUse)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM workloads WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete workload %s: %w", id, err)
		}
		return nil
	}, func() { delete(s.st.workloads, id) }, nil)
}

// ---- instances and addresses ----

// CreateInstances implements Store: admission is checked for the whole
// request against the in-memory usage first, then addresses are picked,
// then one transaction writes the instance rows, the addresses and the
// usage. Nothing is changed unless it commits.
func (s *SQLite) CreateInstances(ctx context.Context, reqs []InstanceRequest) ([]Instance, error) {
	if err := checkRequests(reqs); err != nil {
		return nil, err
	}
	var out []Instance
	type planned struct {
		subnet, host int
		claim        bool
	}
	plans := make([]planned, len(reqs))
	usage := map[string]map[string]int{} // tenant → usage after the request
	var done []int                       // requests whose address is allocated
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			p, r := plans[done[i]], reqs[done[i]]
			s.st.unalloc(s.st.tenants[r.TenantID], p.subnet, p.host, p.claim)
		}
		done = nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		t := now()
		// Admission first, so a refused request allocates nothing.
		for _, r := range reqs {
			mt := s.st.tenants[r.TenantID]
			if mt == nil {
				return fmt.Errorf("create instance %s: tenant %s: %w", r.ID, r.TenantID, ErrNotFound)
			}
			if _, dup := s.st.instances[r.ID]; dup {
				return fmt.Errorf("create instance %s: %w", r.ID, ErrExists)
			}
			w, ok := s.st.workloads[r.WorkloadID]
			if !ok || (w.TenantID != "" && w.TenantID != r.TenantID) {
				return fmt.Errorf("create instance %s: workload %s: %w", r.ID, r.WorkloadID, ErrNotFound)
			}
			u, ok := usage[r.TenantID]
			if !ok {
				u = copyUsage(s.usageOf(mt))
				usage[r.TenantID] = u
			}
			req := request(w)
			if !r.NoLimits {
				if res, over := overLimit(mt.limits, u, req); over {
					return fmt.Errorf("create instance %s: %s: %w", r.ID, res, ErrQuota)
				}
			}
			for k, v := range req {
				u[k] += v
			}
			out = append(out, Instance{ID: r.ID, TenantID: r.TenantID, WorkloadID: r.WorkloadID, Name: r.Name,
				State: StatePending, Usage: s.st.internUsage(req), CreatedAt: t})
		}
		insInstance := s.stmt(ctx, tx, "insInstance")
		insAddress := s.stmt(ctx, tx, "insAddress")
		insLifetime := s.stmt(ctx, tx, "insLifetime")
		for i, r := range reqs {
			in := &out[i]
			if !r.NoAddress {
				sn, host, claim, err := s.st.alloc(s.st.tenants[r.TenantID])
				if err != nil {
					return fmt.Errorf("create instance %s: allocate address for %s: %w", r.ID, r.TenantID, err)
				}
				plans[i] = planned{sn, host, claim}
				done = append(done, i)
				a := addrFor(r.TenantID, sn, host)
				in.IP, in.MAC = a.IP, a.MAC
				if claim {
					if _, err := tx.ExecContext(ctx, `INSERT INTO subnets (subnet, tenant_id) VALUES (?, ?)`, sn, r.TenantID); err != nil {
						return fmt.Errorf("create instance %s: claim subnet: %w", r.ID, err)
					}
				}
			}
			uj, _ := json.Marshal(in.Usage)
			if _, err := insInstance.ExecContext(ctx, in.ID, in.TenantID, in.WorkloadID, in.State, in.IP, in.MAC,
				string(uj), ns(in.CreatedAt), in.Name); err != nil {
				if isConstraint(err) {
					return fmt.Errorf("create instance %s: %w", r.ID, ErrExists)
				}
				return fmt.Errorf("create instance %s: insert: %w", r.ID, err)
			}
			if err := s.insertLifetime(ctx, insLifetime, in); err != nil {
				return fmt.Errorf("create instance %s: record lifetime: %w", r.ID, err)
			}
			if !r.NoAddress {
				if _, err := insAddress.ExecContext(ctx, plans[i].subnet, plans[i].host, r.TenantID, in.ID); err != nil {
					return fmt.Errorf("create instance %s: insert address: %w", r.ID, err)
				}
			}
		}
		for tenant, u := range usage {
			for k, v := range u {
				if v == 0 {
					delete(u, k)
				}
			}
			s.pendingUsage[tenant] = u
		}
		return nil
	}, func() {
		for tenant, u := range usage {
			s.st.tenants[tenant].usage = u
		}
		for _, in := range out {
			s.st.addInstanceLocked(in)
		}
	}, undo)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// internUsage returns a shared copy of a usage map (under wmu).
func (st *memState) internUsage(u map[string]int) map[string]int {
	b, _ := json.Marshal(u) // sorted keys: a canonical text
	if m, ok := st.usages[string(b)]; ok {
		return m
	}
	st.usages[string(b)] = u
	return u
}

// AllocateAddress implements Store.
func (s *SQLite) AllocateAddress(ctx context.Context, tenantID string) (Address, error) {
	var a Address
	var mt *memTenant
	var sn, host int
	var claim, allocated bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		mt = s.st.tenants[tenantID]
		if mt == nil {
			return fmt.Errorf("allocate address: tenant %s: %w", tenantID, ErrNotFound)
		}
		var err error
		if sn, host, claim, err = s.st.alloc(mt); err != nil {
			return fmt.Errorf("allocate address for %s: %w", tenantID, err)
		}
		allocated = true
		if claim {
			if _, err := tx.ExecContext(ctx, `INSERT INTO subnets (subnet, tenant_id) VALUES (?, ?)`, sn, tenantID); err != nil {
				return fmt.Errorf("allocate address: claim subnet: %w", err)
			}
		}
		if _, err := s.stmt(ctx, tx, "insAddress").ExecContext(ctx, sn, host, tenantID, nil); err != nil {
			return fmt.Errorf("allocate address: insert: %w", err)
		}
		a = addrFor(tenantID, sn, host)
		return nil
	}, nil, func() {
		if allocated {
			s.st.unalloc(mt, sn, host, claim)
			allocated = false
		}
	})
	return a, err
}

func splitIP(ip string) (subnet, host int, err error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return 0, 0, fmt.Errorf("address %q: %w", ip, ErrInvalid)
	}
	b := addr.As4()
	return int(b[1])<<8 | int(b[2]), int(b[3]), nil
}

// ReleaseAddress implements Store.
func (s *SQLite) ReleaseAddress(ctx context.Context, tenantID, ip string) error {
	sn, host, err := splitIP(ip)
	if err != nil {
		return fmt.Errorf("release address: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var owner string
		var inst sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT tenant_id, instance_id FROM addresses WHERE subnet = ? AND host = ?`, sn, host).
			Scan(&owner, &inst)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != tenantID) {
			return fmt.Errorf("release address %s: %w", ip, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("release address %s: %w", ip, err)
		}
		if inst.Valid {
			return fmt.Errorf("release address %s: held by instance %s: %w", ip, inst.String, ErrInUse)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM addresses WHERE subnet = ? AND host = ?`, sn, host); err != nil {
			return fmt.Errorf("release address %s: %w", ip, err)
		}
		return nil
	}, func() { s.st.free(tenantID, ip) }, nil)
}

// Addresses implements Store.
func (s *SQLite) Addresses(ctx context.Context, tenantID string) ([]Address, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT subnet, host, COALESCE(instance_id, '') FROM addresses
		WHERE tenant_id = ? ORDER BY subnet, host`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	defer rows.Close()
	var out []Address
	for rows.Next() {
		var sn, host int
		var inst string
		if err := rows.Scan(&sn, &host, &inst); err != nil {
			return nil, fmt.Errorf("list addresses: %w", err)
		}
		a := addrFor(tenantID, sn, host)
		a.InstanceID = inst
		out = append(out, a)
	}
	return out, rows.Err()
}

// Subnets implements Store.
func (s *SQLite) Subnets(ctx context.Context, tenantID string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT subnet FROM subnets WHERE tenant_id = ? ORDER BY subnet`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var sn int
		if err := rows.Scan(&sn); err != nil {
			return nil, fmt.Errorf("list subnets: %w", err)
		}
		out = append(out, subnetCIDR(sn))
	}
	return out, rows.Err()
}

const instanceCols = `id, tenant_id, workload_id, state, node_id, ip, mac, ssh_ip, ssh_port, usage, created_at, name`

// Instance implements Store. The returned Usage map is shared: callers
// must not change it.
func (s *SQLite) Instance(_ context.Context, id string) (Instance, error) {
	s.st.mu.RLock()
	in, ok := s.st.instances[id]
	s.st.mu.RUnlock()
	if !ok {
		return Instance{}, fmt.Errorf("get instance %s: %w", id, ErrNotFound)
	}
	return *in, nil
}

// Instances implements Store, from the in-memory index. The Usage maps
// are shared: callers must not change them.
func (s *SQLite) Instances(_ context.Context, q InstanceQuery) (InstancePage, error) {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	ids := s.st.all
	if q.TenantID != "" {
		ids = nil
		if t := s.st.tenants[q.TenantID]; t != nil {
			ids = t.ids
		}
	}
	if q.NodeID != "" || q.WorkloadID != "" {
		var sel []string
		for _, id := range ids {
			in := s.st.instances[id]
			if (q.NodeID == "" || in.NodeID == q.NodeID) && (q.WorkloadID == "" || in.WorkloadID == q.WorkloadID) {
				sel = append(sel, id)
			}
		}
		ids = sel
	}
	lo, hi, total, err := page(ids, q)
	if err != nil {
		return InstancePage{}, err
	}
	p := InstancePage{Total: total, Instances: make([]Instance, hi-lo)}
	for i, id := range ids[lo:hi] {
		p.Instances[i] = *s.st.instances[id]
	}
	return p, nil
}

// UpdateInstances implements Store.
func (s *SQLite) UpdateInstances(ctx context.Context, ups []InstanceUpdate) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		return s.updateTx(ctx, tx, ups)
	}, func() { n = s.st.updateLocked(ups) }, nil)
	return n, err
}

func (s *SQLite) updateTx(ctx context.Context, tx *sql.Tx, ups []InstanceUpdate) error {
	st := s.stmt(ctx, tx, "upInstance")
	for _, u := range ups {
		if _, err := st.ExecContext(ctx, u.State, u.NodeID, u.SSHIP, u.SSHPort, u.ID); err != nil {
			return fmt.Errorf("update instance %s: %w", u.ID, err)
		}
	}
	return nil
}

// DeleteInstance implements Store: the instance row, its address (by
// cascade), its statistics and its share of the tenant usage go together.
func (s *SQLite) DeleteInstance(ctx context.Context, id string) (Instance, error) {
	var in Instance
	var newUsage map[string]int
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, ok := s.st.instances[id]
		if !ok {
			return fmt.Errorf("delete instance %s: %w", id, ErrNotFound)
		}
		in = *p
		for _, q := range []string{
			`DELETE FROM instances WHERE id = ?`,
			`DELETE FROM instance_latest WHERE instance_id = ?`,
			`DELETE FROM instance_statistics WHERE instance_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete instance %s: %w", id, err)
			}
		}
		if err := endLifetime(ctx, tx, in, now()); err != nil {
			return fmt.Errorf("delete instance %s: end lifetime: %w", id, err)
		}
		if t := s.st.tenants[in.TenantID]; t != nil {
			newUsage = addUsage(s.usageOf(t), in.Usage, -1)
			s.pendingUsage[in.TenantID] = newUsage
		}
		return nil
	}, func() {
		delete(s.lastStat, id)
		s.st.dropInstanceLocked(in)
		if t := s.st.tenants[in.TenantID]; t != nil && newUsage != nil {
			t.usage = newUsage
		}
		if in.IP != "" {
			s.st.free(in.TenantID, in.IP)
		}
	}, nil)
	return in, err
}

// InstanceStates counts the instances by state (for the metrics).
func (s *SQLite) InstanceStates() map[string]int {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	out := map[string]int{}
	for _, in := range s.st.instances {
		out[in.State]++
	}
	return out
}
