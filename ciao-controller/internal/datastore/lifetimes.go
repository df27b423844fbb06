package datastore

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// Instance lifetimes (migration 0009). Every instance CreateInstances
// admits gets a lifetime record in the same transaction (its tenant,
// workload, server name and the vcpus/mem/disk of the workload defaults);
// DeleteInstance closes it with the deletion time, again in the same
// transaction, and the record stays. os-simple-tenant-usage bills a
// period from these records, so deleted instances still count for the
// time they ran. PruneLifetimes drops records that ended before a cut-off
// (the controller's -usage-retention).

// Lifetime is one instance's life, as recorded for usage accounting.
type Lifetime struct {
	InstanceID string
	TenantID   string
	WorkloadID string
	Name       string
	VCPUs      int
	MemMB      int
	DiskMB     int
	CreatedAt  time.Time
	DeletedAt  time.Time // zero while the instance exists
}

// End is when the lifetime ended as seen at now: its deletion, or now
// for an instance that still exists.
func (l Lifetime) End(now time.Time) time.Time {
	if l.DeletedAt.IsZero() {
		return now
	}
	return l.DeletedAt
}

// Within is how long the instance ran inside [start, end), counting one
// that still exists as running until now. Zero when it did not run in
// the period.
func (l Lifetime) Within(start, end, now time.Time) time.Duration {
	from, to := l.CreatedAt, l.End(now)
	if from.Before(start) {
		from = start
	}
	if to.After(end) {
		to = end
	}
	if !to.After(from) {
		return 0
	}
	return to.Sub(from)
}

// overlaps reports whether the lifetime touches [start, end): created
// before end and not ended before start (the rows Lifetimes returns).
func (l Lifetime) overlaps(start, end time.Time) bool {
	return l.CreatedAt.Before(end) && (l.DeletedAt.IsZero() || l.DeletedAt.After(start))
}

func lifetimeOf(in Instance) Lifetime {
	return Lifetime{InstanceID: in.ID, TenantID: in.TenantID, WorkloadID: in.WorkloadID, Name: in.Name,
		VCPUs: in.Usage[ResVCPUs], MemMB: in.Usage[ResMemMB], DiskMB: in.Usage[ResDiskMB], CreatedAt: in.CreatedAt}
}

func sortLifetimes(ls []Lifetime) {
	sort.Slice(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.TenantID != b.TenantID {
			return a.TenantID < b.TenantID
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.InstanceID < b.InstanceID
	})
}

func checkPeriod(op string, start, end time.Time) error {
	if end.Before(start) {
		return fmt.Errorf("%s: period end %v before start %v: %w", op, end, start, ErrInvalid)
	}
	return nil
}

// insLifetimeSQL is the hot statement CreateInstances runs per instance.
const insLifetimeSQL = `INSERT OR REPLACE INTO instance_lifetimes
	(tenant_id, created_at, instance_id, workload_id, name, vcpus, mem_mb, disk_mb) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// insertLifetime writes in's lifetime record (inside CreateInstances' op).
func (s *SQLite) insertLifetime(ctx context.Context, st *sql.Stmt, in *Instance) error {
	l := lifetimeOf(*in)
	_, err := st.ExecContext(ctx, l.TenantID, ns(l.CreatedAt), l.InstanceID, l.WorkloadID, l.Name, l.VCPUs, l.MemMB, l.DiskMB)
	return err
}

// endLifetime closes in's lifetime at t (inside DeleteInstance's op),
// found by its whole key.
func endLifetime(ctx context.Context, tx *sql.Tx, in Instance, t time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE instance_lifetimes SET deleted_at = ?
		WHERE tenant_id = ? AND created_at = ? AND instance_id = ? AND deleted_at IS NULL`,
		ns(t), in.TenantID, ns(in.CreatedAt), in.ID)
	return err
}

// Lifetimes returns the lifetimes of tenantID's instances ("" = every
// tenant's) that overlap [start, end): created before end, and still
// existing or deleted after start. Sorted by tenant, creation, id.
func (s *SQLite) Lifetimes(ctx context.Context, tenantID string, start, end time.Time) ([]Lifetime, error) {
	if err := checkPeriod("lifetimes", start, end); err != nil {
		return nil, err
	}
	q := `SELECT instance_id, tenant_id, workload_id, name, vcpus, mem_mb, disk_mb, created_at, COALESCE(deleted_at, 0)
		FROM instance_lifetimes WHERE created_at < ? AND (deleted_at IS NULL OR deleted_at > ?)`
	args := []any{ns(end), ns(start)}
	if tenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("lifetimes: %w", err)
	}
	defer rows.Close()
	var out []Lifetime
	for rows.Next() {
		var l Lifetime
		var c, d int64
		if err := rows.Scan(&l.InstanceID, &l.TenantID, &l.WorkloadID, &l.Name, &l.VCPUs, &l.MemMB, &l.DiskMB, &c, &d); err != nil {
			return nil, fmt.Errorf("lifetimes: %w", err)
		}
		l.CreatedAt, l.DeletedAt = fromNS(c), fromNS(d)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lifetimes: %w", err)
	}
	sortLifetimes(out)
	return out, nil
}

// PruneLifetimes drops the lifetimes that ended before cutoff and returns
// how many it dropped. Lifetimes of existing instances are kept.
func (s *SQLite) PruneLifetimes(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM instance_lifetimes WHERE deleted_at IS NOT NULL AND deleted_at < ?`, ns(cutoff))
		if err != nil {
			return fmt.Errorf("prune lifetimes: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	}, nil, nil)
	return int(n), err
}

// Lifetimes implements Store (see SQLite.Lifetimes).
func (m *Memory) Lifetimes(_ context.Context, tenantID string, start, end time.Time) ([]Lifetime, error) {
	if err := checkPeriod("lifetimes", start, end); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Lifetime
	for _, l := range m.lifetimes {
		if (tenantID == "" || l.TenantID == tenantID) && l.overlaps(start, end) {
			out = append(out, l)
		}
	}
	sortLifetimes(out)
	return out, nil
}

// PruneLifetimes implements Store (see SQLite.PruneLifetimes).
func (m *Memory) PruneLifetimes(_ context.Context, cutoff time.Time) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	for id, l := range m.lifetimes {
		if !l.DeletedAt.IsZero() && l.DeletedAt.Before(cutoff) {
			delete(m.lifetimes, id)
			n++
		}
	}
	return n, nil
}

// recordLifetimeLocked and endLifetimeLocked are the Memory store's hooks
// in CreateInstances and DeleteInstance (under mu).
func (m *Memory) recordLifetimeLocked(in Instance) {
	if m.lifetimes == nil {
		m.lifetimes = map[string]Lifetime{}
	}
	m.lifetimes[in.ID] = lifetimeOf(in)
}

func (m *Memory) endLifetimeLocked(id string, t time.Time) {
	if l, ok := m.lifetimes[id]; ok && l.DeletedAt.IsZero() {
		l.DeletedAt = t
		m.lifetimes[id] = l
	}
}
