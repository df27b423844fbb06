package datastore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestLifetimeWithin: the window arithmetic of usage. Window [10h, 20h),
// now 30h unless said.
func TestLifetimeWithin(t *testing.T) {
	h := func(n float64) time.Time { return time.Unix(0, 0).UTC().Add(time.Duration(n * float64(time.Hour))) }
	start, end := h(10), h(20)
	for _, c := range []struct {
		name             string
		created, deleted time.Time // deleted zero: still running
		now              time.Time
		want             float64
		overlaps         bool
	}{
		{"running across both edges", h(5), time.Time{}, h(30), 10, true},
		{"running, created inside", h(12), time.Time{}, h(30), 8, true},
		{"running, now inside the window", h(12), time.Time{}, h(15), 3, true},
		{"running, created after the window", h(22), time.Time{}, h(30), 0, false},
		{"running, created at end", h(20), time.Time{}, h(30), 0, false},
		{"deleted before the window", h(1), h(8), h(30), 0, false},
		{"deleted at start", h(1), h(10), h(30), 0, false},
		{"created before, deleted inside", h(5), h(15), h(30), 5, true},
		{"created and deleted inside", h(12), h(14.5), h(30), 2.5, true},
		{"created inside, deleted after", h(12), h(25), h(30), 8, true},
		{"across both edges, deleted after", h(5), h(25), h(30), 10, true},
		{"created and deleted after", h(21), h(25), h(30), 0, false},
	} {
		l := Lifetime{CreatedAt: c.created, DeletedAt: c.deleted}
		if got := l.Within(start, end, c.now).Hours(); got != c.want {
			t.Errorf("%s: %v hours, want %v", c.name, got, c.want)
		}
		if got := l.overlaps(start, end) && l.End(c.now).After(start); got != c.overlaps {
			t.Errorf("%s: overlaps %v, want %v", c.name, got, c.overlaps)
		}
	}
}

// TestLifetimes: both stores record a lifetime per created instance with
// the workload's resources and name, close it on DeleteInstance and keep
// it; the period and tenant select; pruning drops only ended ones.
func TestLifetimes(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			ctx := context.Background()
			s := im.open(t)
			seed(t, s, "T", "U")
			before := time.Now().UTC().Add(-time.Second)
			ra := req("a", "T")
			ra.Name = "web-1"
			mustCreate(t, s, ra, req("b", "T"), req("c", "U"))
			if _, err := s.DeleteInstance(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			after := time.Now().UTC().Add(time.Second)
			ls, err := s.Lifetimes(ctx, "T", before, after)
			if err != nil || len(ls) != 2 {
				t.Fatalf("T's lifetimes = %+v %v, want a and b", ls, err)
			}
			byID := map[string]Lifetime{}
			for _, l := range ls {
				byID[l.InstanceID] = l
			}
			a, b := byID["a"], byID["b"]
			if a.Name != "web-1" || a.WorkloadID != wlFedora || a.VCPUs != 2 || a.MemMB != 128 || a.DiskMB != 80 ||
				a.CreatedAt.Before(before) || a.DeletedAt.Before(a.CreatedAt) || a.DeletedAt.IsZero() {
				t.Errorf("a = %+v, want web-1, 2/128/80, deleted after created", a)
			}
			if !b.DeletedAt.IsZero() || b.TenantID != "T" {
				t.Errorf("b = %+v, want still running", b)
			}
			if all, err := s.Lifetimes(ctx, "", before, after); err != nil || len(all) != 3 || all[2].TenantID != "U" {
				t.Errorf("all lifetimes = %+v %v", all, err)
			}
			if old, err := s.Lifetimes(ctx, "T", before.Add(-time.Hour), before); err != nil || len(old) != 0 {
				t.Errorf("lifetimes before any = %+v %v", old, err)
			}
			// A period after a's deletion: b only.
			if later, err := s.Lifetimes(ctx, "T", after, after.Add(time.Hour)); err != nil || len(later) != 1 || later[0].InstanceID != "b" {
				t.Errorf("lifetimes after a's deletion = %+v %v", later, err)
			}
			if _, err := s.Lifetimes(ctx, "T", after, before); err == nil {
				t.Error("period ending before it starts accepted")
			} else {
				wantErr(t, err, ErrInvalid)
			}
			if n, err := s.PruneLifetimes(ctx, before); err != nil || n != 0 {
				t.Errorf("prune before a ended = %d %v, want 0", n, err)
			}
			if n, err := s.PruneLifetimes(ctx, after.Add(time.Hour)); err != nil || n != 1 {
				t.Errorf("prune = %d %v, want 1 (a)", n, err)
			}
			if ls, _ := s.Lifetimes(ctx, "", before, after.Add(time.Hour)); len(ls) != 2 {
				t.Errorf("after prune = %+v, want b and c (running ones are kept)", ls)
			}
		})
	}
}

// TestSQLiteLifetimesReopen: a deleted instance's lifetime is on disk.
func TestSQLiteLifetimesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	before := time.Now().UTC().Add(-time.Second)
	mustCreate(t, s, req("a", "T"), req("b", "T"))
	if _, err := s.DeleteInstance(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	ls, err := s.Lifetimes(ctx, "T", before, time.Now().UTC().Add(time.Second))
	if err != nil || len(ls) != 2 {
		t.Fatalf("after reopen lifetimes = %+v %v", ls, err)
	}
	for _, l := range ls {
		if deleted := !l.DeletedAt.IsZero(); deleted != (l.InstanceID == "a") || l.VCPUs != 2 {
			t.Errorf("after reopen %+v", l)
		}
	}
}

// TestSQLiteLifetimesBackfill: a database from before the lifetimes
// migration gets a lifetime for each instance it has, from its creation.
func TestSQLiteLifetimesBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	ins := mustCreate(t, s, req("a", "T"))
	s.Close()
	// Back to the schema before the migration.
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DROP TABLE instance_lifetimes`); err != nil {
		t.Fatal(err)
	}
	res, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE name LIKE '%_instance_lifetimes.sql'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("unrecord the migration: %d rows", n)
	}
	db.Close()
	s = openAt(t, path)
	defer s.Close()
	ls, err := s.Lifetimes(ctx, "T", ins[0].CreatedAt, ins[0].CreatedAt.Add(time.Hour))
	if err != nil || len(ls) != 1 || ls[0].InstanceID != "a" || !ls[0].CreatedAt.Equal(ins[0].CreatedAt) ||
		ls[0].VCPUs != 2 || ls[0].MemMB != 128 || ls[0].DiskMB != 80 || !ls[0].DeletedAt.IsZero() {
		t.Fatalf("backfilled lifetimes = %+v %v", ls, err)
	}
}
