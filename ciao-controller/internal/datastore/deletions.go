package datastore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Deletion marks (migration 0008). A DELETE the controller sent for an
// instance is recorded on the instance (Instance.Deleting) until the
// instance is removed with DeleteInstance, so the controller can re-send
// it, across its own restarts, until the node confirms. The mark does
// not change the state the launchers report.

// MarkDeleting records that a DELETE was asked for instance id at t. A
// mark already there is kept (the first request's time stays). Unknown
// ids give ErrNotFound.
func (s *SQLite) MarkDeleting(ctx context.Context, id string, t time.Time) error {
	var at time.Time
	return s.write(ctx, func(tx *sql.Tx) error {
		p, ok := s.st.instances[id]
		if !ok {
			return fmt.Errorf("mark %s deleting: %w", id, ErrNotFound)
		}
		if at = p.Deleting; !at.IsZero() {
			return nil
		}
		at = t
		if _, err := tx.ExecContext(ctx, `INSERT INTO instance_deletions (instance_id, requested_at) VALUES (?, ?)
			ON CONFLICT (instance_id) DO NOTHING`, id, ns(t)); err != nil {
			return fmt.Errorf("mark %s deleting: %w", id, err)
		}
		return nil
	}, func() {
		if p, ok := s.st.instances[id]; ok && p.Deleting.IsZero() {
			in := *p
			in.Deleting = at
			s.st.instances[id] = &in
		}
	}, nil)
}

// loadDeletions sets Deleting on the loaded instances (at Open).
func (st *memState) loadDeletions(ctx context.Context, q querier) error {
	rows, err := q.QueryContext(ctx, `SELECT instance_id, requested_at FROM instance_deletions`)
	if err != nil {
		return fmt.Errorf("load deletions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var t int64
		if err := rows.Scan(&id, &t); err != nil {
			return fmt.Errorf("load deletions: %w", err)
		}
		if p := st.instances[id]; p != nil {
			p.Deleting = fromNS(t)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load deletions: %w", err)
	}
	return nil
}

// MarkDeleting records that a DELETE was asked for instance id at t (see
// SQLite.MarkDeleting).
func (m *Memory) MarkDeleting(ctx context.Context, id string, t time.Time) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	in, ok := m.instances[id]
	if !ok {
		return fmt.Errorf("mark %s deleting: %w", id, ErrNotFound)
	}
	if in.Deleting.IsZero() {
		in.Deleting = t
		m.instances[id] = in
	}
	return nil
}
