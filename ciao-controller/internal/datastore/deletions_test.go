package datastore

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestMarkDeleting: the mark is set once (the first time stays), survives
// STATS updates, goes with the instance, and unknown ids are refused.
func TestMarkDeleting(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			ctx := context.Background()
			s := im.open(t)
			seed(t, s, "T")
			mustCreate(t, s, req("a", "T"), req("b", "T"))
			t0 := time.Unix(100, 0).UTC()
			if err := s.MarkDeleting(ctx, "a", t0); err != nil {
				t.Fatal(err)
			}
			if err := s.MarkDeleting(ctx, "a", t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			wantErr(t, s.MarkDeleting(ctx, "nope", t0), ErrNotFound)
			if err := s.RecordStats(ctx, StatsReport{NodeID: "n", Time: time.Now(),
				Instances: []InstanceStats{{InstanceID: "a", NodeID: "n", State: StateActive}}}); err != nil {
				t.Fatal(err)
			}
			in, err := s.Instance(ctx, "a")
			if err != nil || !in.Deleting.Equal(t0) || in.State != StateActive || in.NodeID != "n" {
				t.Fatalf("a = %+v %v, want deleting since %v, active on n", in, err, t0)
			}
			if b, _ := s.Instance(ctx, "b"); !b.Deleting.IsZero() {
				t.Fatalf("b marked: %+v", b)
			}
			if _, err := s.DeleteInstance(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			wantErr(t, s.MarkDeleting(ctx, "a", t0), ErrNotFound)
		})
	}
}

// TestSQLiteDeletingReopen: the mark is on disk, and it goes with the
// instance's row.
func TestSQLiteDeletingReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	mustCreate(t, s, req("a", "T"), req("b", "T"))
	t0 := time.Unix(200, 0).UTC()
	for _, id := range []string{"a", "b"} {
		if err := s.MarkDeleting(ctx, id, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteInstance(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if in, err := s.Instance(ctx, "a"); err != nil || !in.Deleting.Equal(t0) {
		t.Fatalf("after reopen a = %+v %v, want deleting since %v", in, err, t0)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM instance_deletions`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("instance_deletions rows = %d %v, want 1 (b's went with it)", n, err)
	}
}
