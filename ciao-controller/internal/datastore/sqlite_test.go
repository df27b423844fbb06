package datastore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func openAt(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), NewConfig(path))
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return s
}

func TestSQLiteConfigValidate(t *testing.T) {
	cfg := NewConfig("")
	wantErr(t, cfg.Validate(), ErrInvalid)
	cfg = NewConfig("x.db")
	cfg.ReadConns = 0
	wantErr(t, cfg.Validate(), ErrInvalid)
}

// TestSQLiteMigrations: migrations are applied once, and a reopen keeps
// both the data and the migration log as they were.
func TestSQLiteMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	mustCreate(t, s, req("a", "T"))
	count := func(s *SQLite) (n int) {
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	want, _ := migrationFS.ReadDir("migrations")
	if n := count(s); n != len(want) {
		t.Fatalf("applied %d migrations, want %d", n, len(want))
	}
	var mode string
	s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
	var fk int
	s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || fk != 1 {
		t.Fatalf("journal_mode %q foreign_keys %d", mode, fk)
	}
	s.Close()
	for i := 0; i < 2; i++ {
		s = openAt(t, path)
		if n := count(s); n != len(want) {
			t.Fatalf("reopen %d: %d migrations recorded", i, n)
		}
		if in, err := s.Instance(ctx, "a"); err != nil || in.IP != "172.16.0.2" {
			t.Fatalf("reopen %d: instance = %+v %v", i, in, err)
		}
		s.Close()
	}
	// The claimed subnets are storage, so a new tenant after a restart
	// never gets T's /24 (quirk Q12 b).
	s = openAt(t, path)
	defer s.Close()
	s.CreateTenant(ctx, Tenant{ID: "U"})
	if a, _ := s.AllocateAddress(ctx, "U"); a.IP != "172.16.1.2" {
		t.Fatalf("U after restart got %+v", a)
	}
}

const childEnv = "CIAO_DATASTORE_KILL_CHILD"

// TestSQLiteSIGKILL re-executes the test binary as a child that creates
// instances and prints each id after its commit. The parent kills it with
// SIGKILL mid-way, reopens the file and checks that every reported
// instance is there with its address, and nothing is half-created.
func TestSQLiteSIGKILL(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(path)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 150
	var committed []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		committed = append(committed, sc.Text())
		if len(committed) == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() { // drain what was already written
		committed = append(committed, sc.Text())
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL (%v); it committed %d", err, len(committed))
	}
	if len(committed) < killAfter {
		t.Fatalf("child reported only %d commits", len(committed))
	}

	s = openAt(t, path)
	defer s.Close()
	for _, id := range committed {
		in, err := s.Instance(ctx, id)
		if err != nil || in.IP == "" || in.MAC == "" {
			t.Fatalf("committed instance %s after kill: %+v %v", id, in, err)
		}
	}
	p, err := s.Instances(ctx, InstanceQuery{TenantID: "T"})
	if err != nil {
		t.Fatal(err)
	}
	// Consistency: one address per instance, usage equals the instances.
	addrs, _ := s.Addresses(ctx, "T")
	owner := map[string]string{}
	for _, a := range addrs {
		owner[a.InstanceID] = a.IP
	}
	for _, in := range p.Instances {
		if owner[in.ID] != in.IP {
			t.Fatalf("instance %s has IP %s but the address table says %q", in.ID, in.IP, owner[in.ID])
		}
	}
	q := usageOf(t, s, "T")
	if len(addrs) != p.Total || q[ResInstances].Usage != p.Total || q[ResVCPUs].Usage != 2*p.Total {
		t.Fatalf("after kill: %d instances, %d addresses, usage %+v", p.Total, len(addrs), q)
	}
	t.Logf("child reported %d commits before SIGKILL; %d instances stored", len(committed), p.Total)
}

func killChild(path string) {
	s, err := OpenSQLite(context.Background(), NewConfig(path))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		id := fmt.Sprintf("k%06d", i)
		if _, err := s.CreateInstances(context.Background(), []InstanceRequest{req(id, "T")}); err != nil {
			fmt.Fprintln(os.Stderr, "child create:", err)
			os.Exit(2)
		}
		fmt.Fprintln(w, id)
		w.Flush()
		if i > 100000 {
			fmt.Fprintln(os.Stderr, "child was never killed")
			os.Exit(3)
		}
	}
}

// ---- benchmarks ----

func benchStore(b *testing.B) *SQLite {
	s := NewTestSQLite(b, nil)
	seed(b, s, "T")
	return s
}

func BenchmarkSQLiteCreateInstance(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.CreateInstances(context.Background(), []InstanceRequest{req(fmt.Sprintf("i%08d", i), "T")}); err != nil {
			b.Fatal(err)
		}
	}
}

func createMany(b *testing.B, s Store, tenant string, n int) {
	ctx := context.Background()
	for lo := 0; lo < n; lo += 500 {
		var reqs []InstanceRequest
		for i := lo; i < lo+500 && i < n; i++ {
			reqs = append(reqs, req(fmt.Sprintf("%s-%08d", tenant, i), tenant))
		}
		if _, err := s.CreateInstances(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSQLiteList10k(b *testing.B) {
	s := benchStore(b)
	createMany(b, s, "T", 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := s.Instances(context.Background(), InstanceQuery{TenantID: "T"})
		if err != nil || len(p.Instances) != 10000 {
			b.Fatalf("%d %v", len(p.Instances), err)
		}
	}
}

func BenchmarkSQLiteStats1k(b *testing.B) {
	s := benchStore(b)
	createMany(b, s, "T", 1000)
	rep := StatsReport{NodeID: "N", Node: &NodeStats{Status: "READY", Load: 1}}
	for i := 0; i < 1000; i++ {
		rep.Instances = append(rep.Instances, InstanceStats{InstanceID: fmt.Sprintf("T-%08d", i), State: StateActive, CPUUsage: 10})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep.Time = time.Now()
		if err := s.RecordStats(context.Background(), rep); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSQLiteStateMatchesDisk: after creates, a refused request, failed
// allocations, deletes, limits and STATS, the in-memory copy the store
// serves reads from equals what a fresh open reads back from the file,
// and a refused request left no address taken.
func TestSQLiteStateMatchesDisk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T", "U")
	for i := 0; i < 300; i++ { // T spans two /24s
		mustCreate(t, s, req(fmt.Sprintf("t%04d", i), "T"))
	}
	mustCreate(t, s, req("u0", "U"), req("u1", "U"))
	if err := s.SetLimit(ctx, "U", ResInstances, 3); err != nil {
		t.Fatal(err)
	}
	// Over quota on the second of two: nothing is taken.
	_, err := s.CreateInstances(ctx, []InstanceRequest{req("u2", "U"), req("u3", "U")})
	wantErr(t, err, ErrQuota)
	// A duplicate id fails after allocating: the allocation is undone.
	_, err = s.CreateInstances(ctx, []InstanceRequest{req("u4", "U"), req("t0000", "U")})
	wantErr(t, err, ErrExists)
	if in := mustCreate(t, s, req("u2", "U")); in[0].IP != "172.16.2.4" {
		t.Fatalf("U's third instance got %s, want 172.16.2.4", in[0].IP)
	}
	for _, id := range []string{"t0005", "t0290", "u0"} {
		if _, err := s.DeleteInstance(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordStats(ctx, StatsReport{NodeID: "N", Instances: []InstanceStats{
		{InstanceID: "t0001", State: StateActive, SSHIP: "198.51.100.1", SSHPort: 33002}, {InstanceID: "gone", State: StateActive}}}); err != nil {
		t.Fatal(err)
	}
	if in := mustCreate(t, s, req("t9999", "T")); in[0].IP != "172.16.1.39" {
		t.Fatalf("freed host not reused: %s", in[0].IP)
	}
	snap := func(s *SQLite) string {
		var b []byte
		add := func(v any, err error) {
			if err != nil {
				t.Fatal(err)
			}
			b = fmt.Appendf(b, "%+v\n", v)
		}
		add(s.Tenants(ctx))
		add(s.Workloads(ctx, WorkloadFilter{Internal: true}))
		for _, tn := range []string{"T", "U"} {
			add(s.Quotas(ctx, tn))
			add(s.Instances(ctx, InstanceQuery{TenantID: tn}))
		}
		add(s.Instances(ctx, InstanceQuery{NodeID: "N"}))
		return string(b)
	}
	live := snap(s)
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if disk := snap(s); disk != live {
		t.Fatalf("in-memory copy differs from the file:\nlive:\n%.2000s\ndisk:\n%.2000s", live, disk)
	}
}

// TestSQLiteGroupCommit: concurrent creates share transactions, yet the
// limit holds exactly, an op that fails in a batch (duplicate id, over
// quota) changes nothing while the others commit, every address is
// unique, and the in-memory copy equals the file afterwards.
func TestSQLiteGroupCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	var mu sync.Mutex
	commits := 0
	cfg := NewConfig(path)
	cfg.Observe = func(op string, _ time.Duration) {
		if op == "commit" {
			mu.Lock()
			commits++
			mu.Unlock()
		}
	}
	s, err := OpenSQLite(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, s, "T", "U")
	if err := s.SetLimit(ctx, "T", ResInstances, 150); err != nil {
		t.Fatal(err)
	}
	const workers, each = 40, 5
	var wg sync.WaitGroup
	var ok, quota, dup atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%02d-%d", w, i)
				if i == 2 && w%4 == 0 {
					id = fmt.Sprintf("w%02d-%d", w, 1) // a duplicate of this worker's last id
				}
				tenant := "T"
				if w%2 == 1 {
					tenant = "U"
				}
				_, err := s.CreateInstances(ctx, []InstanceRequest{req(id, tenant)})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrQuota):
					quota.Add(1)
				case errors.Is(err, ErrExists):
					dup.Add(1)
				default:
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	if q := usageOf(t, s, "T"); q[ResInstances].Usage != 90 { // 20 workers × 5 minus 10 duplicates
		t.Fatalf("T usage %+v", q[ResInstances])
	}
	if dup.Load() != workers/4 || ok.Load() != workers*each-workers/4 || quota.Load() != 0 {
		t.Fatalf("ok %d quota %d dup %d", ok.Load(), quota.Load(), dup.Load())
	}
	mu.Lock()
	if commits >= int(ok.Load()+dup.Load()) {
		t.Logf("no batching happened: %d commits for %d creates", commits, ok.Load())
	}
	mu.Unlock()
	// Fill T to its limit from many goroutines: exactly 60 more fit.
	var more atomic.Int32
	for w := 0; w < 80; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if _, err := s.CreateInstances(ctx, []InstanceRequest{req(fmt.Sprintf("m%02d", w), "T")}); err == nil {
				more.Add(1)
			} else if !errors.Is(err, ErrQuota) {
				t.Error(err)
			}
		}(w)
	}
	wg.Wait()
	if more.Load() != 60 {
		t.Fatalf("%d creates admitted up to the limit, want 60", more.Load())
	}
	seen := map[string]bool{}
	for _, tn := range []string{"T", "U"} {
		p, _ := s.Instances(ctx, InstanceQuery{TenantID: tn})
		for _, in := range p.Instances {
			if seen[in.IP] {
				t.Fatalf("address %s given twice", in.IP)
			}
			seen[in.IP] = true
		}
	}
	live, _ := s.Instances(ctx, InstanceQuery{})
	lq, _ := s.Quotas(ctx, "T")
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	disk, _ := s.Instances(ctx, InstanceQuery{})
	dq, _ := s.Quotas(ctx, "T")
	if fmt.Sprint(live, lq) != fmt.Sprint(disk, dq) {
		t.Fatalf("in-memory copy differs from the file after concurrent creates")
	}
}

// BenchmarkSQLiteCreateInstanceParallel: single-instance creates from 100
// concurrent callers (group commit).
func BenchmarkSQLiteCreateInstanceParallel(b *testing.B) {
	s := benchStore(b)
	var n atomic.Int64
	b.SetParallelism(50) // × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("p%09d", n.Add(1))
			if _, err := s.CreateInstances(context.Background(), []InstanceRequest{req(id, "T")}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestSQLiteConcurrentEnsureTenant: many first requests of one tenant at
// once (one batch) register it once, and every caller gets it.
func TestSQLiteConcurrentEnsureTenant(t *testing.T) {
	s := NewTestSQLite(t, nil)
	var wg sync.WaitGroup
	var created atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, c, err := s.EnsureTenant(context.Background(), Tenant{ID: "T", CNCIMAC: fmt.Sprintf("02:01:00:00:00:%02x", i)})
			if err != nil || got.ID != "T" {
				t.Errorf("ensure: %+v %v", got, err)
			}
			if c {
				created.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("tenant created %d times", created.Load())
	}
	wantErr(t, s.CreateTenant(context.Background(), Tenant{ID: "T"}), ErrExists)
}
