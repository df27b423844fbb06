package datastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// memState is the SQLite store's in-memory copy of the records its hot
// paths read: tenants with their limits and usage, workloads, instances
// (by id, and sorted per tenant and overall) and the address allocation
// state. It is loaded at Open; SQLite stays the durable copy.
//
// Locking: every write method that changes these records holds
// SQLite.wmu from before its transaction until the copy is updated, so
// the copy changes in commit order and a write never races another.
// Readers take mu.RLock; writers take mu.Lock only to apply a committed
// change. The allocation fields (claimed, memTenant.subnets and .used)
// are read and written by writers only, under wmu, and are not guarded
// by mu.
type memState struct {
	mu        sync.RWMutex
	tenants   map[string]*memTenant // guarded by mu
	workloads map[string]Workload   // guarded by mu
	instances map[string]*Instance  // guarded by mu; values are replaced, never changed in place
	all       []string              // guarded by mu: every instance id, ascending

	claimed map[int]string      // under wmu: subnet → owning tenant
	usages  map[string]usageMap // under wmu: interned usage maps by JSON text
}

type usageMap = map[string]int

// memTenant is one tenant's cached records.
type memTenant struct {
	t      Tenant
	limits map[string]int // guarded by memState.mu; replaced on change
	usage  map[string]int // guarded by memState.mu; replaced on change
	ids    []string       // guarded by memState.mu: instance ids, ascending

	subnets []int            // under wmu: claimed subnets, ascending
	used    map[int]*hostSet // under wmu: hosts in use per subnet
}

// hostSet is the hosts in use in one /24.
type hostSet struct {
	n    int
	host [256]bool
}

func newMemState() *memState {
	return &memState{tenants: map[string]*memTenant{}, workloads: map[string]Workload{},
		instances: map[string]*Instance{}, claimed: map[int]string{}, usages: map[string]usageMap{}}
}

// load fills the state from the database (at Open, before any caller).
func (s *SQLite) load(ctx context.Context) error {
	st := newMemState()
	q := s.w
	rows, err := q.QueryContext(ctx, `SELECT id, name, cnci_mac, created_at FROM tenants`)
	if err != nil {
		return fmt.Errorf("load tenants: %w", err)
	}
	for rows.Next() {
		var t Tenant
		var c int64
		if err := rows.Scan(&t.ID, &t.Name, &t.CNCIMAC, &c); err != nil {
			rows.Close()
			return fmt.Errorf("load tenants: %w", err)
		}
		t.CreatedAt = fromNS(c)
		st.tenants[t.ID] = &memTenant{t: t, limits: map[string]int{}, usage: map[string]int{}, used: map[int]*hostSet{}}
	}
	rows.Close()
	for _, m := range []struct {
		query string
		get   func(*memTenant) map[string]int
	}{
		{`SELECT tenant_id, resource, max_value FROM limits`, func(t *memTenant) map[string]int { return t.limits }},
	} {
		rows, err := q.QueryContext(ctx, m.query)
		if err != nil {
			return fmt.Errorf("load quotas: %w", err)
		}
		for rows.Next() {
			var id, res string
			var v int
			if err := rows.Scan(&id, &res, &v); err != nil {
				rows.Close()
				return fmt.Errorf("load quotas: %w", err)
			}
			if t := st.tenants[id]; t != nil {
				m.get(t)[res] = v
			}
		}
		rows.Close()
	}
	ws, err := scanWorkloads(ctx, q, "")
	if err != nil {
		return fmt.Errorf("load workloads: %w", err)
	}
	for _, w := range ws {
		st.workloads[w.ID] = w
	}
	rows, err = q.QueryContext(ctx, `SELECT `+instanceCols+` FROM instances ORDER BY id`)
	if err != nil {
		return fmt.Errorf("load instances: %w", err)
	}
	for rows.Next() {
		in, err := st.scanInstance(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("load instances: %w", err)
		}
		st.instances[in.ID] = &in
		st.all = append(st.all, in.ID)
		if t := st.tenants[in.TenantID]; t != nil {
			t.ids = append(t.ids, in.ID)
			for k, v := range in.Usage { // usage is the sum over the instances
				t.usage[k] += v
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load instances: %w", err)
	}
	if err := st.loadAlloc(ctx, q); err != nil {
		return err
	}
	if err := st.loadDeletions(ctx, q); err != nil {
		return err
	}
	s.st = st
	return nil
}

// loadAlloc reads the claimed subnets and used hosts.
func (st *memState) loadAlloc(ctx context.Context, q querier) error {
	st.claimed = map[int]string{}
	for _, t := range st.tenants {
		t.subnets, t.used = nil, map[int]*hostSet{}
	}
	rows, err := q.QueryContext(ctx, `SELECT subnet, tenant_id FROM subnets ORDER BY subnet`)
	if err != nil {
		return fmt.Errorf("load subnets: %w", err)
	}
	for rows.Next() {
		var sn int
		var id string
		if err := rows.Scan(&sn, &id); err != nil {
			rows.Close()
			return fmt.Errorf("load subnets: %w", err)
		}
		st.claimed[sn] = id
		if t := st.tenants[id]; t != nil {
			t.subnets = append(t.subnets, sn)
			t.used[sn] = &hostSet{}
		}
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, `SELECT subnet, host FROM addresses`)
	if err != nil {
		return fmt.Errorf("load addresses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sn, h int
		if err := rows.Scan(&sn, &h); err != nil {
			return fmt.Errorf("load addresses: %w", err)
		}
		if t := st.tenants[st.claimed[sn]]; t != nil && t.used[sn] != nil && h >= 0 && h < 256 && !t.used[sn].host[h] {
			t.used[sn].host[h] = true
			t.used[sn].n++
		}
	}
	return rows.Err()
}

// scanInstance reads one instance row; usage maps with the same text are
// shared (they are never changed in place).
func (st *memState) scanInstance(sc interface{ Scan(...any) error }) (Instance, error) {
	var in Instance
	var usage string
	var c int64
	if err := sc.Scan(&in.ID, &in.TenantID, &in.WorkloadID, &in.State, &in.NodeID, &in.IP, &in.MAC,
		&in.SSHIP, &in.SSHPort, &usage, &c, &in.Name); err != nil {
		return Instance{}, err
	}
	in.CreatedAt = fromNS(c)
	u, ok := st.usages[usage]
	if !ok {
		if err := json.Unmarshal([]byte(usage), &u); err != nil {
			return Instance{}, fmt.Errorf("instance %s usage: %w", in.ID, err)
		}
		st.usages[usage] = u
	}
	in.Usage = u
	return in, nil
}

// alloc picks tenant t's next address in memory and marks it used (under
// wmu). claim is true when the subnet was claimed by this call and must
// be inserted into subnets. If the caller's write fails it must call
// unalloc.
func (st *memState) alloc(t *memTenant) (subnet, host int, claim bool, err error) {
	for i := len(t.subnets) - 1; i >= 0; i-- {
		sn := t.subnets[i]
		hs := t.used[sn]
		if hs.n >= hostsPerNet {
			continue
		}
		for h := firstHost; h <= lastHost; h++ {
			if !hs.host[h] {
				hs.host[h] = true
				hs.n++
				return sn, h, false, nil
			}
		}
	}
	sn := firstSubnet
	for ; sn <= lastSubnet; sn++ {
		if _, taken := st.claimed[sn]; !taken {
			break
		}
	}
	if sn > lastSubnet {
		return 0, 0, false, fmt.Errorf("claim subnet: out of subnets: %w", ErrNoAddress)
	}
	st.claimed[sn] = t.t.ID
	i := sort.SearchInts(t.subnets, sn)
	t.subnets = append(t.subnets, 0)
	copy(t.subnets[i+1:], t.subnets[i:])
	t.subnets[i] = sn
	hs := &hostSet{}
	hs.host[firstHost] = true
	hs.n = 1
	t.used[sn] = hs
	return sn, firstHost, true, nil
}

// unalloc takes back an alloc (under wmu), newest first.
func (st *memState) unalloc(t *memTenant, subnet, host int, claim bool) {
	if hs := t.used[subnet]; hs != nil && hs.host[host] {
		hs.host[host] = false
		hs.n--
	}
	if claim {
		delete(st.claimed, subnet)
		delete(t.used, subnet)
		if i := sort.SearchInts(t.subnets, subnet); i < len(t.subnets) && t.subnets[i] == subnet {
			t.subnets = append(t.subnets[:i], t.subnets[i+1:]...)
		}
	}
}

// free marks a host unused (under wmu).
func (st *memState) free(tenantID, ip string) {
	sn, h, err := splitIP(ip)
	if err != nil {
		return
	}
	if t := st.tenants[tenantID]; t != nil {
		if hs := t.used[sn]; hs != nil && h < 256 && hs.host[h] {
			hs.host[h] = false
			hs.n--
		}
	}
}

// insertSorted and removeSorted keep an ascending id list.
func insertSorted(ids []string, id string) []string {
	i := sort.SearchStrings(ids, id)
	if i < len(ids) && ids[i] == id {
		return ids
	}
	ids = append(ids, "")
	copy(ids[i+1:], ids[i:])
	ids[i] = id
	return ids
}

func removeSorted(ids []string, id string) []string {
	i := sort.SearchStrings(ids, id)
	if i == len(ids) || ids[i] != id {
		return ids
	}
	return append(ids[:i], ids[i+1:]...)
}

// addInstanceLocked and dropInstanceLocked change the index (mu held).
func (st *memState) addInstanceLocked(in Instance) {
	p := &in
	if _, ok := st.instances[in.ID]; !ok {
		st.all = insertSorted(st.all, in.ID)
		if t := st.tenants[in.TenantID]; t != nil {
			t.ids = insertSorted(t.ids, in.ID)
		}
	}
	st.instances[in.ID] = p
}

func (st *memState) dropInstanceLocked(in Instance) {
	delete(st.instances, in.ID)
	st.all = removeSorted(st.all, in.ID)
	if t := st.tenants[in.TenantID]; t != nil {
		t.ids = removeSorted(t.ids, in.ID)
	}
}

// updateLocked applies launcher reports to known instances (mu held).
func (st *memState) updateLocked(ups []InstanceUpdate) int {
	n := 0
	for _, u := range ups {
		old, ok := st.instances[u.ID]
		if !ok {
			continue
		}
		in := *old
		in.State, in.NodeID, in.SSHIP, in.SSHPort = u.State, u.NodeID, u.SSHIP, u.SSHPort
		st.instances[u.ID] = &in
		n++
	}
	return n
}

// addUsage returns a copy of m with d added (entries reaching 0 dropped).
func addUsage(m map[string]int, d map[string]int, sign int) map[string]int {
	out := make(map[string]int, len(m)+len(d))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range d {
		out[k] += sign * v
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

// Group commit. Every write that changes the in-memory copy, and the
// event log, is an op handed to one batcher goroutine. It takes the ops
// queued at that moment (up to maxBatch), runs each in its own savepoint
// of one transaction, commits once and only then answers them, so a nil
// error still means the change is durable, and hundreds of concurrent
// creates share one commit instead of queueing for one each. Ops run in
// arrival order and each sees the effects of the ones before it in the
// transaction; a failing op rolls back to its savepoint and the others
// commit.

// maxBatch bounds the ops of one transaction.
const maxBatch = 256

// wop is one queued write.
type wop struct {
	ctx   context.Context
	fn    func(*sql.Tx) error // runs in the batch transaction, wmu held
	after func()              // on commit, mu held
	undo  func()              // when fn failed or the batch did not commit, wmu held
	done  chan error
}

// write queues fn and waits until its batch has committed (or fn failed).
// after runs on success with mu held, so readers see the change at once
// and in commit order; undo runs (wmu held, mu not) when fn failed or the
// batch could not commit, to take back in-memory changes fn made.
func (s *SQLite) write(ctx context.Context, fn func(*sql.Tx) error, after, undo func()) error {
	start := time.Now()
	defer s.observe("write", start)
	op := &wop{ctx: ctx, fn: fn, after: after, undo: undo, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-s.stop:
		return fmt.Errorf("write: %w", errClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the op is carried out even if ctx ends: waiting for
	// the answer keeps "error means not written" true.
	return <-op.done
}

// batcher is the goroutine that runs queued writes; it exits when stop
// is closed, answering what is still queued with errClosed.
func (s *SQLite) batcher() {
	defer close(s.batcherDone)
	batch := make([]*wop, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-s.stop:
			for {
				select {
				case op := <-s.ops:
					op.done <- fmt.Errorf("write: %w", errClosed)
				default:
					return
				}
			}
		case op := <-s.ops:
			batch = append(batch, op)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

// runBatch runs ops in one transaction and answers each.
func (s *SQLite) runBatch(batch []*wop) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.pendingUsage = map[string]map[string]int{}
	errs := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.BusyTimeout+time.Duration(len(batch))*time.Second)
	defer cancel()
	start := time.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, op := range batch {
			if err := op.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if len(batch) == 1 {
				errs[i] = op.fn(tx)
				return errs[i]
			}
			if _, err := s.stmt(ctx, tx, "savepoint").ExecContext(ctx); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			errs[i] = op.fn(tx)
			if errs[i] != nil {
				if op.undo != nil {
					op.undo()
				}
				if _, err := s.stmt(ctx, tx, "rollbackTo").ExecContext(ctx); err != nil {
					return fmt.Errorf("rollback to savepoint: %w", err)
				}
			}
			if _, err := s.stmt(ctx, tx, "release").ExecContext(ctx); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		return nil
	})
	s.observe("commit", start)
	s.pendingUsage = nil
	if err != nil { // nothing committed
		for i, op := range batch {
			if errs[i] == nil || len(batch) == 1 {
				if op.undo != nil {
					op.undo()
				}
			}
			if errs[i] == nil {
				errs[i] = err
			}
		}
	} else {
		s.st.mu.Lock()
		for i, op := range batch {
			if errs[i] == nil && op.after != nil {
				op.after()
			}
		}
		s.st.mu.Unlock()
	}
	for i, op := range batch {
		op.done <- errs[i]
	}
}

// usageOf is a tenant's usage as the ops of the running batch left it
// (wmu held).
func (s *SQLite) usageOf(t *memTenant) map[string]int {
	if u, ok := s.pendingUsage[t.t.ID]; ok {
		return u
	}
	return t.usage
}
