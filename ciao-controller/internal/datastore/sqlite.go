package datastore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
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
	// StatsRefresh is how long an unchanged instance statistics entry
	// goes without being written again (see RecordStats).
	StatsRefresh time.Duration
	// Observe, if set, is told how long each group commit took (op
	// "commit") and each write waited for and spent in it (op "write").
	Observe func(op string, d time.Duration)
}

// NewConfig returns a Config for path with the defaults.
func NewConfig(path string) Config {
	return Config{
		Path:            path,
		ReadConns:       4,
		BusyTimeout:     5 * time.Second,
		NodeHistory:     DefaultNodeHistory,
		InstanceHistory: DefaultInstanceHistory,
		StatsRefresh:    DefaultStatsRefresh,
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
	case c.StatsRefresh < 0:
		return fmt.Errorf("datastore config: stats refresh must be >= 0: %w", ErrInvalid)
	case c.NodeHistory <= 0 || c.InstanceHistory <= 0:
		return fmt.Errorf("datastore config: history retention must be > 0: %w", ErrInvalid)
	}
	return nil
}

// SQLite is the Store on an SQLite file. Writes go through one batcher
// goroutine that group-commits them on the single writer connection
// (BEGIN IMMEDIATE transactions, one savepoint per write); a write returns
// only once its transaction has committed. Tenants, limits, usage,
// workloads, instances and the address allocation are also kept in
// memory and served from there (sqlite_state.go); the statistics, event,
// trace, CNCI, identity and image reads use a pool of read-only
// connections that see the last committed state (WAL). WAL checkpoints
// run on a connection of their own, off the writers' path.
type SQLite struct {
	cfg Config
	w   *sql.DB // exactly one connection
	r   *sql.DB // read-only pool

	stmts map[string]*sql.Stmt // prepared on w; read-only after Open

	// wmu serializes the writes that change the in-memory copy st, from
	// before their transaction until the copy is updated (sqlite_state.go).
	wmu          sync.Mutex
	st           *memState
	pendingUsage map[string]map[string]int // under wmu: usage as the running batch left it
	lastStat     map[string]statMark       // under wmu: per instance, the statistics last written
	ops          chan *wop                 // queued writes (group commit)
	stop         chan struct{}             // closed by Close: the batcher exits
	batcherDone  chan struct{}
	closeOnce    sync.Once
	ck           *sql.DB       // one connection that runs the WAL checkpoints
	ckDone       chan struct{} // closed when the checkpointer has exited

	mu        sync.Mutex
	lastPrune time.Time // guarded by mu
}

var _ Store = (*SQLite)(nil)

// Hot-path statements, prepared once on the writer.
var hotSQL = map[string]string{
	"insInstance": `INSERT INTO instances (id, tenant_id, workload_id, state, ip, mac, usage, created_at, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"insLifetime": insLifetimeSQL,
	"insAddress":  `INSERT INTO addresses (subnet, host, tenant_id, instance_id) VALUES (?, ?, ?, ?)`,
	"savepoint":   `SAVEPOINT op`,
	"release":     `RELEASE op`,
	"rollbackTo":  `ROLLBACK TO op`,
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
	s := &SQLite{cfg: cfg, w: w, stmts: map[string]*sql.Stmt{}, stop: make(chan struct{}), lastStat: map[string]statMark{}}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// Checkpoints (copying the WAL into the database file, with an fsync)
	// run on a connection of their own, off the writer's path: the
	// writer never checkpoints, so a commit is only a WAL append.
	if _, err := w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	qc := url.Values{}
	qc.Set("_busy_timeout", q.Get("_busy_timeout"))
	qc.Set("_synchronous", syncMode)
	ck, err := sql.Open("sqlite3", "file:"+cfg.Path+"?"+qc.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", cfg.Path, err)
	}
	ck.SetMaxOpenConns(1)
	s.ck = ck
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
	if err := s.load(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.ops, s.batcherDone, s.ckDone = make(chan *wop, maxBatch), make(chan struct{}), make(chan struct{})
	go s.batcher()
	go s.checkpointer()
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
	s.closeOnce.Do(func() { close(s.stop) })
	if s.batcherDone != nil {
		<-s.batcherDone
		<-s.ckDone
	}
	var errs []error
	if s.ck != nil {
		errs = append(errs, s.ck.Close())
	}
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

func (s *SQLite) observe(op string, start time.Time) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(op, time.Since(start))
	}
}

// checkpointEvery is the period of the background WAL checkpoint.
const checkpointEvery = time.Second

// checkpointer copies the WAL into the database file every
// checkpointEvery (PASSIVE: it never waits for, nor blocks, the writer or
// readers) until Close.
func (s *SQLite) checkpointer() {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.BusyTimeout)
			_, err := s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			cancel()
			s.observe("checkpoint", start)
			if err != nil && s.cfg.Observe != nil {
				s.cfg.Observe("checkpoint_error", 0)
			}
		}
	}
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
