package datastore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Config configures the SQLite store. Build it with NewConfig.
type Config struct {
	// Path is the database file; it is created if missing.
	Path string
	// SyncFull selects synchronous=FULL instead of NORMAL.
	//
	// Durability choice: the database runs in WAL mode with
	// synchronous=NORMAL by default. A committed transaction is in the WAL
	// file (the OS page cache) before Commit returns, so it survives the
	// controller being killed, SIGKILL included (TestSQLiteSIGKILL checks
	// this). Only an OS crash or power loss can lose the last
	// transactions; NORMAL never corrupts the file. Set SyncFull to fsync
	// the WAL on every commit and survive power loss too, at a cost of one
	// fsync per write.
	SyncFull bool
	// ReadConns is the size of the read-only connection pool used by
	// queries; writes go through one writer connection.
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock.
	BusyTimeout time.Duration
	// NodeHistory and InstanceHistory bound the statistics history.
	NodeHistory     time.Duration
	InstanceHistory time.Duration
}

// NewConfig returns a Config for path with the defaults.
func NewConfig(path string) Config {
	return Config{
		Path:            path,
		ReadConns:       4,
		BusyTimeout:     5 * time.Second,
		NodeHistory:     DefaultNodeHistory,
		InstanceHistory: DefaultInstanceHistory,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("datastore config: empty path: %w", ErrInvalid)
	case c.ReadConns < 1:
		return fmt.Errorf("datastore config: read_conns %d < 1: %w", c.ReadConns, ErrInvalid)
	case c.BusyTimeout <= 0:
		return fmt.Errorf("datastore config: busy timeout must be > 0: %w", ErrInvalid)
	case c.NodeHistory <= 0 || c.InstanceHistory <= 0:
		return fmt.Errorf("datastore config: history retention must be > 0: %w", ErrInvalid)
	}
	return nil
}

// SQLite is the Store on an SQLite file. Writes are serialized on one
// writer connection (BEGIN IMMEDIATE transactions), reads use a pool of
// read-only connections that see the last committed state (WAL).
type SQLite struct {
	cfg Config
	w   *sql.DB // exactly one connection
	r   *sql.DB // read-only pool

	stmts map[string]*sql.Stmt // prepared on w; read-only after Open

	mu        sync.Mutex
	lastPrune time.Time // guarded by mu
}

var _ Store = (*SQLite)(nil)

// Hot-path statements, prepared once on the writer.
var hotSQL = map[string]string{
	"insInstance": `INSERT INTO instances (id, tenant_id, workload_id, state, ip, mac, usage, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	"insAddress":  `INSERT INTO addresses (subnet, host, tenant_id, instance_id) VALUES (?, ?, ?, ?)`,
	"addUsage": `INSERT INTO tenant_usage (tenant_id, resource, value) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id, resource) DO UPDATE SET value = value + excluded.value`,
	"subnetCounts": `SELECT s.subnet, (SELECT COUNT(*) FROM addresses a WHERE a.subnet = s.subnet)
		FROM subnets s WHERE s.tenant_id = ? ORDER BY s.subnet`,
	"subnetHosts": `SELECT host FROM addresses WHERE subnet = ?`,
	"upInstance":  `UPDATE instances SET state = ?, node_id = ?, ssh_ip = ?, ssh_port = ? WHERE id = ?`,
	"upLatest": `INSERT INTO instance_latest (instance_id, node_id, state, ssh_ip, ssh_port, memory_usage_mb, disk_usage_mb, cpu_usage, time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (instance_id) DO UPDATE SET node_id = excluded.node_id, state = excluded.state,
		ssh_ip = excluded.ssh_ip, ssh_port = excluded.ssh_port, memory_usage_mb = excluded.memory_usage_mb,
		disk_usage_mb = excluded.disk_usage_mb, cpu_usage = excluded.cpu_usage, time = excluded.time`,
	"insInstStat": `INSERT INTO instance_statistics (instance_id, node_id, state, ssh_ip, ssh_port, memory_usage_mb, disk_usage_mb, cpu_usage, time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
}

// OpenSQLite opens (creating if needed) the database and applies pending
// migrations.
func OpenSQLite(ctx context.Context, cfg Config) (*SQLite, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	syncMode := "NORMAL"
	if cfg.SyncFull {
		syncMode = "FULL"
	}
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "on")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", syncMode)
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", "file:"+cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &SQLite{cfg: cfg, w: w, stmts: map[string]*sql.Stmt{}}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	q.Set("mode", "ro")
	q.Del("_journal_mode") // a read-only connection cannot change it
	q.Del("_txlock")
	r, err := sql.Open("sqlite3", "file:"+cfg.Path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s read-only: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	s.r = r
	for name, text := range hotSQL {
		st, err := w.PrepareContext(ctx, text)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("prepare %s: %w", name, err)
		}
		s.stmts[name] = st
	}
	return s, nil
}

// migrate applies, in order and each in its own transaction, the
// embedded migrations not yet listed in schema_migrations.
func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: list: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad migration name %s: %w", base, ErrInvalid)
		}
		text, err := migrationFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate: read %s: %w", base, err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(text)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				v, base, now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w", base, err)
		}
	}
	return nil
}

// Close closes the prepared statements, the read pool and then the writer
// (which checkpoints the WAL). In-flight calls may fail.
func (s *SQLite) Close() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it.
func (s *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rtx runs fn in a read transaction on the read pool (one snapshot).
func (s *SQLite) rtx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

func (s *SQLite) stmt(ctx context.Context, tx *sql.Tx, name string) *sql.Stmt {
	return tx.StmtContext(ctx, s.stmts[name])
}

func isConstraint(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrConstraint
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func exists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ---- tenants ----

// CreateTenant implements Store.
func (s *SQLite) CreateTenant(ctx context.Context, t Tenant) error {
	if t.ID == "" {
		return fmt.Errorf("create tenant: empty id: %w", ErrInvalid)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO tenants (id, name, cnci_mac, created_at) VALUES (?, ?, ?, ?)`,
		t.ID, t.Name, t.CNCIMAC, ns(stamp(t.CreatedAt)))
	if isConstraint(err) {
		return fmt.Errorf("create tenant %s: %w", t.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return nil
}

// EnsureTenant implements Store.
func (s *SQLite) EnsureTenant(ctx context.Context, t Tenant) (Tenant, bool, error) {
	if t.ID == "" {
		return Tenant{}, false, fmt.Errorf("ensure tenant: empty id: %w", ErrInvalid)
	}
	if old, err := s.Tenant(ctx, t.ID); err == nil {
		return old, false, nil
	}
	t.CreatedAt = stamp(t.CreatedAt)
	res, err := s.w.ExecContext(ctx, `INSERT INTO tenants (id, name, cnci_mac, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, t.ID, t.Name, t.CNCIMAC, ns(t.CreatedAt))
	if err != nil {
		return Tenant{}, false, fmt.Errorf("ensure tenant %s: %w", t.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return t, true, nil
	}
	old, err := s.Tenant(ctx, t.ID) // lost a race with another creator
	return old, false, err
}

// Tenant implements Store.
func (s *SQLite) Tenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	var c int64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, cnci_mac, created_at FROM tenants WHERE id = ?`, id).
		Scan(&t.ID, &t.Name, &t.CNCIMAC, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, err)
	}
	t.CreatedAt = fromNS(c)
	return t, nil
}

// Tenants implements Store.
func (s *SQLite) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, cnci_mac, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	out := []Tenant{}
	for rows.Next() {
		var t Tenant
		var c int64
		if err := rows.Scan(&t.ID, &t.Name, &t.CNCIMAC, &c); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		t.CreatedAt = fromNS(c)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// DeleteTenant implements Store.
func (s *SQLite) DeleteTenant(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, id); err != nil || !ok {
			return fmt.Errorf("delete tenant %s: %w", id, orNotFound(err))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM instances WHERE tenant_id = ? LIMIT 1`, id); err != nil || ok {
			return fmt.Errorf("delete tenant %s: has instances: %w", id, orInUse(err))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM workloads WHERE tenant_id = ? LIMIT 1`, id); err != nil || ok {
			return fmt.Errorf("delete tenant %s: has workloads: %w", id, orInUse(err))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		return nil
	})
}

func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return ErrNotFound
}

func orInUse(err error) error {
	if err != nil {
		return err
	}
	return ErrInUse
}

// SetLimit implements Store.
func (s *SQLite) SetLimit(ctx context.Context, tenantID, resource string, max int) error {
	if resource == "" {
		return fmt.Errorf("set limit: empty resource: %w", ErrInvalid)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID); err != nil || !ok {
			return fmt.Errorf("set limit for %s: %w", tenantID, orNotFound(err))
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
	})
}

func loadMap(ctx context.Context, tx *sql.Tx, query, tenantID string) (map[string]int, error) {
	rows, err := tx.QueryContext(ctx, query, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

const (
	limitsSQL = `SELECT resource, max_value FROM limits WHERE tenant_id = ?`
	usageSQL  = `SELECT resource, value FROM tenant_usage WHERE tenant_id = ? AND value != 0`
)

// Quotas implements Store.
func (s *SQLite) Quotas(ctx context.Context, tenantID string) ([]Quota, error) {
	var out []Quota
	err := s.rtx(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID); err != nil || !ok {
			return orNotFound(err)
		}
		l, err := loadMap(ctx, tx, limitsSQL, tenantID)
		if err != nil {
			return err
		}
		u, err := loadMap(ctx, tx, usageSQL, tenantID)
		if err != nil {
			return err
		}
		out = quotaList(l, u)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quotas for %s: %w", tenantID, err)
	}
	return out, nil
}

// ---- workloads ----

// CreateWorkload implements Store.
func (s *SQLite) CreateWorkload(ctx context.Context, w Workload) error {
	if w.ID == "" {
		return fmt.Errorf("create workload: empty id: %w", ErrInvalid)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var tenant any
		if w.TenantID != "" {
			tenant = w.TenantID
			if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, w.TenantID); err != nil || !ok {
				return fmt.Errorf("create workload %s: tenant %s: %w", w.ID, w.TenantID, orNotFound(err))
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO workloads (id, tenant_id, description, filename, fw_type, vm_type,
			image_id, image_name, config, internal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, tenant, w.Description, w.Filename, w.FWType, w.VMType, w.ImageID, w.ImageName, w.Config, w.Internal)
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
	})
}

const workloadCols = `id, COALESCE(tenant_id, ''), description, filename, fw_type, vm_type, image_id, image_name, config, internal`

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
		if err := rows.Scan(&w.ID, &w.TenantID, &w.Description, &w.Filename, &w.FWType, &w.VMType,
			&w.ImageID, &w.ImageName, &w.Config, &w.Internal); err != nil {
			rows.Close()
			return nil, err
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

// Workload implements Store.
func (s *SQLite) Workload(ctx context.Context, id string) (Workload, error) {
	var ws []Workload
	err := s.rtx(ctx, func(tx *sql.Tx) error {
		var err error
		ws, err = scanWorkloads(ctx, tx, `WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return Workload{}, fmt.Errorf("get workload %s: %w", id, err)
	}
	if len(ws) == 0 {
		return Workload{}, fmt.Errorf("get workload %s: %w", id, ErrNotFound)
	}
	return ws[0], nil
}

// Workloads implements Store.
func (s *SQLite) Workloads(ctx context.Context, f WorkloadFilter) ([]Workload, error) {
	where := `WHERE (tenant_id IS NULL OR tenant_id = ?)`
	if !f.Internal {
		where += ` AND internal = 0`
	}
	var ws []Workload
	err := s.rtx(ctx, func(tx *sql.Tx) error {
		var err error
		ws, err = scanWorkloads(ctx, tx, where, f.TenantID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	return ws, nil
}

// DeleteWorkload implements Store.
func (s *SQLite) DeleteWorkload(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM workloads WHERE id = ?`, id); err != nil || !ok {
			return fmt.Errorf("delete workload %s: %w", id, orNotFound(err))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM instances WHERE workload_id = ? LIMIT 1`, id); err != nil || ok {
			return fmt.Errorf("delete workload %s: %w", id, orInUse(err))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM workloads WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete workload %s: %w", id, err)
		}
		return nil
	})
}

// ---- instances and addresses ----

// CreateInstances implements Store in one transaction: admission check,
// address allocation, instance rows and usage either all commit or none.
func (s *SQLite) CreateInstances(ctx context.Context, reqs []InstanceRequest) ([]Instance, error) {
	if err := checkRequests(reqs); err != nil {
		return nil, err
	}
	var out []Instance
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		workloads := map[string]Workload{}
		limits := map[string]map[string]int{}
		usage := map[string]map[string]int{}
		insInstance := s.stmt(ctx, tx, "insInstance")
		insAddress := s.stmt(ctx, tx, "insAddress")
		addUsage := s.stmt(ctx, tx, "addUsage")
		for _, r := range reqs {
			if _, ok := usage[r.TenantID]; !ok {
				if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, r.TenantID); err != nil || !ok {
					return fmt.Errorf("create instance %s: tenant %s: %w", r.ID, r.TenantID, orNotFound(err))
				}
				l, err := loadMap(ctx, tx, limitsSQL, r.TenantID)
				if err != nil {
					return fmt.Errorf("create instance %s: load limits: %w", r.ID, err)
				}
				u, err := loadMap(ctx, tx, usageSQL, r.TenantID)
				if err != nil {
					return fmt.Errorf("create instance %s: load usage: %w", r.ID, err)
				}
				limits[r.TenantID], usage[r.TenantID] = l, u
			}
			w, ok := workloads[r.WorkloadID]
			if !ok {
				ws, err := scanWorkloads(ctx, tx, `WHERE id = ?`, r.WorkloadID)
				if err != nil {
					return fmt.Errorf("create instance %s: load workload: %w", r.ID, err)
				}
				if len(ws) == 0 {
					return fmt.Errorf("create instance %s: workload %s: %w", r.ID, r.WorkloadID, ErrNotFound)
				}
				w = ws[0]
				workloads[r.WorkloadID] = w
			}
			if w.TenantID != "" && w.TenantID != r.TenantID {
				return fmt.Errorf("create instance %s: workload %s: %w", r.ID, r.WorkloadID, ErrNotFound)
			}
			u := usage[r.TenantID]
			req := request(w)
			if !r.NoLimits {
				if res, over := overLimit(limits[r.TenantID], u, req); over {
					return fmt.Errorf("create instance %s: %s: %w", r.ID, res, ErrQuota)
				}
			}
			in := Instance{ID: r.ID, TenantID: r.TenantID, WorkloadID: r.WorkloadID,
				State: StatePending, Usage: req, CreatedAt: now()}
			var a Address
			var subnet, host int
			if !r.NoAddress {
				var err error
				if a, subnet, host, err = s.allocTx(ctx, tx, r.TenantID); err != nil {
					return fmt.Errorf("create instance %s: %w", r.ID, err)
				}
				in.IP, in.MAC = a.IP, a.MAC
			}
			uj, _ := json.Marshal(req)
			if _, err := insInstance.ExecContext(ctx, in.ID, in.TenantID, in.WorkloadID, in.State, in.IP, in.MAC,
				string(uj), ns(in.CreatedAt)); err != nil {
				if isConstraint(err) {
					return fmt.Errorf("create instance %s: %w", r.ID, ErrExists)
				}
				return fmt.Errorf("create instance %s: insert: %w", r.ID, err)
			}
			if !r.NoAddress {
				if _, err := insAddress.ExecContext(ctx, subnet, host, r.TenantID, in.ID); err != nil {
					return fmt.Errorf("create instance %s: insert address: %w", r.ID, err)
				}
			}
			for k, v := range req {
				u[k] += v
				if _, err := addUsage.ExecContext(ctx, r.TenantID, k, v); err != nil {
					return fmt.Errorf("create instance %s: usage: %w", r.ID, err)
				}
			}
			out = append(out, in)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cloneInstances(out), nil
}

// allocTx picks the tenant's next address inside tx, claiming a new
// subnet if needed. The caller inserts the address row.
func (s *SQLite) allocTx(ctx context.Context, tx *sql.Tx, tenantID string) (Address, int, int, error) {
	rows, err := s.stmt(ctx, tx, "subnetCounts").QueryContext(ctx, tenantID)
	if err != nil {
		return Address{}, 0, 0, fmt.Errorf("allocate address: subnets: %w", err)
	}
	var mine []int
	used := map[int]map[int]bool{}
	counts := map[int]int{}
	for rows.Next() {
		var sn, n int
		if err := rows.Scan(&sn, &n); err != nil {
			rows.Close()
			return Address{}, 0, 0, fmt.Errorf("allocate address: subnets: %w", err)
		}
		mine = append(mine, sn)
		counts[sn] = n
	}
	rows.Close()
	// Only the last non-full subnet matters: load its hosts.
	for i := len(mine) - 1; i >= 0; i-- {
		if counts[mine[i]] < hostsPerNet {
			hs := map[int]bool{}
			hr, err := s.stmt(ctx, tx, "subnetHosts").QueryContext(ctx, mine[i])
			if err != nil {
				return Address{}, 0, 0, fmt.Errorf("allocate address: hosts: %w", err)
			}
			for hr.Next() {
				var h int
				if err := hr.Scan(&h); err != nil {
					hr.Close()
					return Address{}, 0, 0, fmt.Errorf("allocate address: hosts: %w", err)
				}
				hs[h] = true
			}
			hr.Close()
			used[mine[i]] = hs
			break
		}
		used[mine[i]] = fullSubnet
	}
	sn, host, claim := pickHost(mine, used)
	if claim {
		all, err := intColumn(ctx, tx, `SELECT subnet FROM subnets ORDER BY subnet`)
		if err != nil {
			return Address{}, 0, 0, fmt.Errorf("allocate address: claimed subnets: %w", err)
		}
		if sn, err = nextFreeSubnet(all); err != nil {
			return Address{}, 0, 0, fmt.Errorf("allocate address for %s: %w", tenantID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO subnets (subnet, tenant_id) VALUES (?, ?)`, sn, tenantID); err != nil {
			return Address{}, 0, 0, fmt.Errorf("allocate address: claim subnet: %w", err)
		}
	}
	return addrFor(tenantID, sn, host), sn, host, nil
}

// fullSubnet stands for a subnet whose hosts are all in use.
var fullSubnet = func() map[int]bool {
	m := map[int]bool{}
	for h := firstHost; h <= lastHost; h++ {
		m[h] = true
	}
	return m
}()

func intColumn(ctx context.Context, q querier, query string, args ...any) ([]int, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// AllocateAddress implements Store.
func (s *SQLite) AllocateAddress(ctx context.Context, tenantID string) (Address, error) {
	var a Address
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID); err != nil || !ok {
			return fmt.Errorf("allocate address: tenant %s: %w", tenantID, orNotFound(err))
		}
		var sn, host int
		var err error
		if a, sn, host, err = s.allocTx(ctx, tx, tenantID); err != nil {
			return err
		}
		if _, err := s.stmt(ctx, tx, "insAddress").ExecContext(ctx, sn, host, tenantID, nil); err != nil {
			return fmt.Errorf("allocate address: insert: %w", err)
		}
		return nil
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
	return s.tx(ctx, func(tx *sql.Tx) error {
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
	})
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
	ss, err := intColumn(ctx, s.r, `SELECT subnet FROM subnets WHERE tenant_id = ? ORDER BY subnet`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	out := make([]string, len(ss))
	for i, sn := range ss {
		out[i] = subnetCIDR(sn)
	}
	return out, nil
}

const instanceCols = `id, tenant_id, workload_id, state, node_id, ip, mac, ssh_ip, ssh_port, usage, created_at`

func scanInstance(sc interface{ Scan(...any) error }) (Instance, error) {
	var in Instance
	var usage string
	var c int64
	if err := sc.Scan(&in.ID, &in.TenantID, &in.WorkloadID, &in.State, &in.NodeID, &in.IP, &in.MAC,
		&in.SSHIP, &in.SSHPort, &usage, &c); err != nil {
		return Instance{}, err
	}
	in.CreatedAt = fromNS(c)
	if err := json.Unmarshal([]byte(usage), &in.Usage); err != nil {
		return Instance{}, fmt.Errorf("instance %s usage: %w", in.ID, err)
	}
	return in, nil
}

// Instance implements Store.
func (s *SQLite) Instance(ctx context.Context, id string) (Instance, error) {
	in, err := scanInstance(s.r.QueryRowContext(ctx, `SELECT `+instanceCols+` FROM instances WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Instance{}, fmt.Errorf("get instance %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("get instance %s: %w", id, err)
	}
	return in, nil
}

// Instances implements Store.
func (s *SQLite) Instances(ctx context.Context, q InstanceQuery) (InstancePage, error) {
	var conds []string
	var args []any
	for _, f := range []struct{ col, v string }{{"tenant_id", q.TenantID}, {"node_id", q.NodeID}, {"workload_id", q.WorkloadID}} {
		if f.v != "" {
			conds = append(conds, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var p InstancePage
	err := s.rtx(ctx, func(tx *sql.Tx) error {
		pageWhere, pageArgs := where, append([]any(nil), args...)
		offset := q.Offset
		if q.Marker != "" {
			ok, err := exists(ctx, tx, `SELECT 1 FROM instances`+where+andOrWhere(where)+`id = ?`, append(pageArgs, q.Marker)...)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("marker %s: %w", q.Marker, ErrNotFound)
			}
			pageWhere += andOrWhere(where) + "id > ?"
			pageArgs = append(pageArgs, q.Marker)
			offset = 0
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM instances`+pageWhere, pageArgs...).Scan(&p.Total); err != nil {
			return err
		}
		limit := -1
		if q.Limit > 0 {
			limit = q.Limit
		}
		if offset < 0 {
			offset = 0
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+instanceCols+` FROM instances`+pageWhere+` ORDER BY id LIMIT ? OFFSET ?`,
			append(pageArgs, limit, offset)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		p.Instances = make([]Instance, 0, min(p.Total, 1024))
		for rows.Next() {
			in, err := scanInstance(rows)
			if err != nil {
				return err
			}
			p.Instances = append(p.Instances, in)
		}
		return rows.Err()
	})
	if err != nil {
		return InstancePage{}, fmt.Errorf("list instances: %w", err)
	}
	return p, nil
}

func andOrWhere(where string) string {
	if where == "" {
		return " WHERE "
	}
	return " AND "
}

// UpdateInstances implements Store.
func (s *SQLite) UpdateInstances(ctx context.Context, ups []InstanceUpdate) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.updateTx(ctx, tx, ups)
		return err
	})
	return n, err
}

func (s *SQLite) updateTx(ctx context.Context, tx *sql.Tx, ups []InstanceUpdate) (int, error) {
	st := s.stmt(ctx, tx, "upInstance")
	n := 0
	for _, u := range ups {
		res, err := st.ExecContext(ctx, u.State, u.NodeID, u.SSHIP, u.SSHPort, u.ID)
		if err != nil {
			return n, fmt.Errorf("update instance %s: %w", u.ID, err)
		}
		c, _ := res.RowsAffected()
		n += int(c)
	}
	return n, nil
}

// DeleteInstance implements Store: the instance row, its address (by
// cascade), its statistics and its share of the tenant usage go together.
func (s *SQLite) DeleteInstance(ctx context.Context, id string) (Instance, error) {
	var in Instance
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		in, err = scanInstance(tx.QueryRowContext(ctx, `SELECT `+instanceCols+` FROM instances WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delete instance %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
		for _, q := range []string{
			`DELETE FROM instances WHERE id = ?`,
			`DELETE FROM instance_latest WHERE instance_id = ?`,
			`DELETE FROM instance_statistics WHERE instance_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete instance %s: %w", id, err)
			}
		}
		for k, v := range in.Usage {
			if _, err := s.stmt(ctx, tx, "addUsage").ExecContext(ctx, in.TenantID, k, -v); err != nil {
				return fmt.Errorf("delete instance %s: usage: %w", id, err)
			}
		}
		return nil
	})
	return in, err
}

// ---- CNCIs ----

// PutCNCI implements Store.
func (s *SQLite) PutCNCI(ctx context.Context, c CNCI) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO cncis (tenant_id, id, mac, ip, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET id = excluded.id, mac = excluded.mac, ip = excluded.ip,
		state = excluded.state, updated_at = excluded.updated_at`,
		c.TenantID, c.ID, c.MAC, c.IP, c.State, ns(now()))
	if isConstraint(err) {
		return fmt.Errorf("put cnci: tenant %s: %w", c.TenantID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put cnci for %s: %w", c.TenantID, err)
	}
	return nil
}

func scanCNCIs(ctx context.Context, q querier, where string, args ...any) ([]CNCI, error) {
	rows, err := q.QueryContext(ctx, `SELECT tenant_id, id, mac, ip, state, updated_at FROM cncis`+where+` ORDER BY tenant_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []CNCI{}
	for rows.Next() {
		var c CNCI
		var t int64
		if err := rows.Scan(&c.TenantID, &c.ID, &c.MAC, &c.IP, &c.State, &t); err != nil {
			return nil, err
		}
		c.UpdatedAt = fromNS(t)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CNCI implements Store.
func (s *SQLite) CNCI(ctx context.Context, tenantID string) (CNCI, error) {
	cs, err := scanCNCIs(ctx, s.r, ` WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return CNCI{}, fmt.Errorf("get cnci of %s: %w", tenantID, err)
	}
	if len(cs) == 0 {
		return CNCI{}, fmt.Errorf("get cnci of %s: %w", tenantID, ErrNotFound)
	}
	return cs[0], nil
}

// CNCIs implements Store.
func (s *SQLite) CNCIs(ctx context.Context) ([]CNCI, error) {
	cs, err := scanCNCIs(ctx, s.r, "")
	if err != nil {
		return nil, fmt.Errorf("list cncis: %w", err)
	}
	return cs, nil
}

// DeleteCNCI implements Store.
func (s *SQLite) DeleteCNCI(ctx context.Context, tenantID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM cncis WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return fmt.Errorf("delete cnci of %s: %w", tenantID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete cnci of %s: %w", tenantID, ErrNotFound)
	}
	return nil
}
