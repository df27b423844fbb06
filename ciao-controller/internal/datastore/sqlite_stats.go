package datastore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// pruneEvery is how often RecordStats drops history past retention.
const pruneEvery = time.Minute

// RecordStats implements Store: in one transaction it replaces the node's
// and the instances' latest statistics, appends history rows and updates
// the state, node and SSH fields of known instances. An instance entry
// equal to the one last written for it (all but the time) is not written
// again until Config.StatsRefresh has passed, so a steady cluster costs
// few writes: the latest entry's time and the history are then
// StatsRefresh-grained, while state changes are written at once.
func (s *SQLite) RecordStats(ctx context.Context, r StatsReport) error {
	t := stamp(r.Time)
	s.mu.Lock()
	prune := t.Sub(s.lastPrune) >= pruneEvery
	if prune {
		s.lastPrune = t
	}
	s.mu.Unlock()
	var ups []InstanceUpdate
	var marks []idMark
	return s.write(ctx, func(tx *sql.Tx) error {
		if n := r.Node; n != nil {
			args := []any{r.NodeID, n.Hostname, n.Status, n.MemTotalMB, n.MemAvailableMB, n.DiskTotalMB,
				n.DiskAvailableMB, n.Load, n.CPUsOnline, ns(t)}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO node_latest (node_id, hostname, status, mem_total_mb,
				mem_available_mb, disk_total_mb, disk_available_mb, load, cpus_online, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				args...); err != nil {
				return fmt.Errorf("record stats of %s: node: %w", r.NodeID, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO node_statistics (node_id, hostname, status, mem_total_mb,
				mem_available_mb, disk_total_mb, disk_available_mb, load, cpus_online, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				args...); err != nil {
				return fmt.Errorf("record stats of %s: node history: %w", r.NodeID, err)
			}
		}
		latest := s.stmt(ctx, tx, "upLatest")
		hist := s.stmt(ctx, tx, "insInstStat")
		ups = make([]InstanceUpdate, 0, len(r.Instances))
		marks = marks[:0]
		var changed []InstanceUpdate
		for _, in := range r.Instances {
			m := statMark{node: r.NodeID, state: in.State, sshIP: in.SSHIP, sshPort: in.SSHPort,
				mem: in.MemoryUsageMB, disk: in.DiskUsageMB, cpu: in.CPUUsage, written: t}
			if prev, ok := s.lastStat[in.InstanceID]; !ok || !prev.same(m) || t.Sub(prev.written) >= s.cfg.StatsRefresh {
				args := []any{in.InstanceID, r.NodeID, in.State, in.SSHIP, in.SSHPort, in.MemoryUsageMB, in.DiskUsageMB,
					in.CPUUsage, ns(t)}
				if _, err := latest.ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("record stats of %s: instance %s: %w", r.NodeID, in.InstanceID, err)
				}
				if _, err := hist.ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("record stats of %s: instance %s history: %w", r.NodeID, in.InstanceID, err)
				}
				marks = append(marks, idMark{in.InstanceID, m})
			}
			u := InstanceUpdate{ID: in.InstanceID, State: in.State, NodeID: r.NodeID, SSHIP: in.SSHIP, SSHPort: in.SSHPort}
			ups = append(ups, u)
			if old, ok := s.st.instances[in.InstanceID]; !ok || old.State != u.State || old.NodeID != u.NodeID ||
				old.SSHIP != u.SSHIP || old.SSHPort != u.SSHPort {
				changed = append(changed, u)
			}
		}
		if err := s.updateTx(ctx, tx, changed); err != nil {
			return fmt.Errorf("record stats of %s: %w", r.NodeID, err)
		}
		if prune {
			if _, err := tx.ExecContext(ctx, `DELETE FROM node_statistics WHERE time < ?`, ns(t.Add(-s.cfg.NodeHistory))); err != nil {
				return fmt.Errorf("record stats: prune nodes: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM instance_statistics WHERE time < ?`, ns(t.Add(-s.cfg.InstanceHistory))); err != nil {
				return fmt.Errorf("record stats: prune instances: %w", err)
			}
		}
		return nil
	}, func() {
		s.st.updateLocked(ups)
		for _, m := range marks {
			s.lastStat[m.id] = m.m
		}
	}, nil)
}

// statMark is what RecordStats last wrote for an instance (under wmu):
// an entry equal to it is written again only after StatsRefresh.
type statMark struct {
	node, state, sshIP string
	sshPort, mem, disk int
	cpu                int
	written            time.Time
}

type idMark struct {
	id string
	m  statMark
}

func (a statMark) same(b statMark) bool {
	a.written, b.written = time.Time{}, time.Time{}
	return a == b
}

const nodeCols = `node_id, hostname, status, mem_total_mb, mem_available_mb, disk_total_mb, disk_available_mb, load, cpus_online, time`

func scanNodes(ctx context.Context, q querier, query string, args ...any) ([]NodeStats, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []NodeStats{}
	for rows.Next() {
		var n NodeStats
		var t int64
		if err := rows.Scan(&n.NodeID, &n.Hostname, &n.Status, &n.MemTotalMB, &n.MemAvailableMB, &n.DiskTotalMB,
			&n.DiskAvailableMB, &n.Load, &n.CPUsOnline, &t); err != nil {
			return nil, err
		}
		n.Time = fromNS(t)
		out = append(out, n)
	}
	return out, rows.Err()
}

// Nodes implements Store.
func (s *SQLite) Nodes(ctx context.Context) ([]NodeStats, error) {
	out, err := scanNodes(ctx, s.r, `SELECT `+nodeCols+` FROM node_latest ORDER BY node_id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// Node implements Store.
func (s *SQLite) Node(ctx context.Context, nodeID string) (NodeStats, error) {
	out, err := scanNodes(ctx, s.r, `SELECT `+nodeCols+` FROM node_latest WHERE node_id = ?`, nodeID)
	if err != nil {
		return NodeStats{}, fmt.Errorf("get node %s: %w", nodeID, err)
	}
	if len(out) == 0 {
		return NodeStats{}, fmt.Errorf("get node %s: %w", nodeID, ErrNotFound)
	}
	return out[0], nil
}

// DeleteNode implements Store.
func (s *SQLite) DeleteNode(ctx context.Context, nodeID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM node_latest WHERE node_id = ?`, nodeID)
	if err != nil {
		return fmt.Errorf("delete node %s: %w", nodeID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete node %s: %w", nodeID, ErrNotFound)
	}
	return nil
}

// NodeHistory implements Store: the newest limit entries, oldest first.
func (s *SQLite) NodeHistory(ctx context.Context, nodeID string, limit int) ([]NodeStats, error) {
	if limit <= 0 {
		limit = -1
	}
	out, err := scanNodes(ctx, s.r, `SELECT `+nodeCols+` FROM (SELECT `+nodeCols+`, id FROM node_statistics WHERE node_id = ?
		ORDER BY id DESC LIMIT ?) ORDER BY id`, nodeID, limit)
	if err != nil {
		return nil, fmt.Errorf("node history of %s: %w", nodeID, err)
	}
	return out, nil
}

const instStatCols = `instance_id, node_id, state, ssh_ip, ssh_port, memory_usage_mb, disk_usage_mb, cpu_usage, time`

func scanInstStats(ctx context.Context, q querier, query string, args ...any) ([]InstanceStats, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []InstanceStats
	for rows.Next() {
		var s InstanceStats
		var t int64
		if err := rows.Scan(&s.InstanceID, &s.NodeID, &s.State, &s.SSHIP, &s.SSHPort, &s.MemoryUsageMB,
			&s.DiskUsageMB, &s.CPUUsage, &t); err != nil {
			return nil, err
		}
		s.Time = fromNS(t)
		out = append(out, s)
	}
	return out, rows.Err()
}

// InstanceStats implements Store.
func (s *SQLite) InstanceStats(ctx context.Context, id string) (InstanceStats, error) {
	out, err := scanInstStats(ctx, s.r, `SELECT `+instStatCols+` FROM instance_latest WHERE instance_id = ?`, id)
	if err != nil {
		return InstanceStats{}, fmt.Errorf("get stats of %s: %w", id, err)
	}
	if len(out) == 0 {
		return InstanceStats{}, fmt.Errorf("get stats of %s: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// NodeInstanceStats implements Store.
func (s *SQLite) NodeInstanceStats(ctx context.Context, nodeID string) ([]InstanceStats, error) {
	out, err := scanInstStats(ctx, s.r, `SELECT `+instStatCols+` FROM instance_latest WHERE node_id = ? ORDER BY instance_id`, nodeID)
	if err != nil {
		return nil, fmt.Errorf("stats on node %s: %w", nodeID, err)
	}
	return out, nil
}

// InstanceHistory implements Store.
func (s *SQLite) InstanceHistory(ctx context.Context, id string, since time.Time) ([]InstanceStats, error) {
	out, err := scanInstStats(ctx, s.r, `SELECT `+instStatCols+` FROM instance_statistics WHERE instance_id = ? AND time >= ?
		ORDER BY id`, id, ns(since))
	if err != nil {
		return nil, fmt.Errorf("stats history of %s: %w", id, err)
	}
	return out, nil
}

// ---- events ----

// AddEvent implements Store.
func (s *SQLite) AddEvent(ctx context.Context, e Event) (Event, error) {
	e.Time = stamp(e.Time)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO events (tenant_id, type, message, time) VALUES (?, ?, ?, ?)`,
			e.TenantID, e.Type, e.Message, ns(e.Time))
		if err != nil {
			return fmt.Errorf("add event: %w", err)
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("add event: id: %w", err)
		}
		return nil
	}, nil, nil)
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// Events implements Store.
func (s *SQLite) Events(ctx context.Context, tenantID string) ([]Event, error) {
	q := `SELECT id, tenant_id, type, message, time FROM events ORDER BY id`
	var args []any
	if tenantID != "" {
		q = `SELECT id, tenant_id, type, message, time FROM events WHERE tenant_id = ? ORDER BY id`
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var t int64
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Type, &e.Message, &t); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.Time = fromNS(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ClearEvents implements Store.
func (s *SQLite) ClearEvents(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM events`); err != nil {
		return fmt.Errorf("clear events: %w", err)
	}
	return nil
}

// ---- traces ----

// AddTraces implements Store.
func (s *SQLite) AddTraces(ctx context.Context, frames []TraceFrame) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, f := range frames {
			res, err := tx.ExecContext(ctx, `INSERT INTO trace_frames (label, type, operand, start_ns, end_ns) VALUES (?, ?, ?, ?, ?)`,
				f.Label, f.Type, f.Operand, ns(f.Start), ns(f.End))
			if err != nil {
				return fmt.Errorf("add trace %s: %w", f.Label, err)
			}
			id, err := res.LastInsertId()
			if err != nil {
				return fmt.Errorf("add trace %s: %w", f.Label, err)
			}
			for i, h := range f.Hops {
				if _, err := tx.ExecContext(ctx, `INSERT INTO trace_hops (frame_id, position, ssntp_uuid, role, tx_ns, rx_ns)
					VALUES (?, ?, ?, ?, ?, ?)`, id, i, h.NodeUUID, h.Role, ns(h.Tx), ns(h.Rx)); err != nil {
					return fmt.Errorf("add trace %s: hop %d: %w", f.Label, i, err)
				}
			}
		}
		return nil
	})
}

// TraceSummaries implements Store.
func (s *SQLite) TraceSummaries(ctx context.Context) ([]TraceSummary, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT label, COUNT(*) FROM trace_frames GROUP BY label ORDER BY label`)
	if err != nil {
		return nil, fmt.Errorf("trace summaries: %w", err)
	}
	defer rows.Close()
	var out []TraceSummary
	for rows.Next() {
		var t TraceSummary
		if err := rows.Scan(&t.Label, &t.Instances); err != nil {
			return nil, fmt.Errorf("trace summaries: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TraceFrames implements Store.
func (s *SQLite) TraceFrames(ctx context.Context, label string) ([]TraceFrame, error) {
	var out []TraceFrame
	err := s.rtx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, label, type, operand, start_ns, end_ns FROM trace_frames
			WHERE label = ? ORDER BY id`, label)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var f TraceFrame
			var id, st, en int64
			if err := rows.Scan(&id, &f.Label, &f.Type, &f.Operand, &st, &en); err != nil {
				rows.Close()
				return err
			}
			f.Start, f.End = fromNS(st), fromNS(en)
			ids = append(ids, id)
			out = append(out, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, id := range ids {
			hr, err := tx.QueryContext(ctx, `SELECT ssntp_uuid, role, tx_ns, rx_ns FROM trace_hops WHERE frame_id = ? ORDER BY position`, id)
			if err != nil {
				return err
			}
			for hr.Next() {
				var h TraceHop
				var txn, rxn int64
				if err := hr.Scan(&h.NodeUUID, &h.Role, &txn, &rxn); err != nil {
					hr.Close()
					return err
				}
				h.Tx, h.Rx = fromNS(txn), fromNS(rxn)
				out[i].Hops = append(out[i].Hops, h)
			}
			hr.Close()
			if err := hr.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trace frames %s: %w", label, err)
	}
	return out, nil
}
