package datastore

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestIdentityConformance runs the identity suite against every
// implementation.
func TestIdentityConformance(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t).(IdentityStore)
			testIdentity(t, s)
		})
	}
}

func testIdentity(t *testing.T, s IdentityStore) {
	ctx := context.Background()
	p := Project{ID: "p1", Name: "admin", DomainID: "default", Enabled: true}
	if err := s.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateProject(ctx, Project{ID: "p2", Name: "admin", DomainID: "default"}), ErrExists)
	wantErr(t, s.CreateProject(ctx, Project{ID: "p1", Name: "other", DomainID: "default"}), ErrExists)
	wantErr(t, s.CreateProject(ctx, Project{ID: "p3"}), ErrInvalid)
	if err := s.CreateProject(ctx, Project{ID: "p0", Name: "demo", DomainID: "default", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Project(ctx, "p1"); err != nil || got.Name != "admin" || !got.Enabled || got.CreatedAt.IsZero() {
		t.Fatalf("project = %+v %v", got, err)
	}
	if got, err := s.ProjectByName(ctx, "default", "demo"); err != nil || got.ID != "p0" {
		t.Fatalf("project by name = %+v %v", got, err)
	}
	_, err := s.Project(ctx, "nope")
	wantErr(t, err, ErrNotFound)
	_, err = s.ProjectByName(ctx, "other", "admin")
	wantErr(t, err, ErrNotFound)

	u := User{ID: "u1", Name: "alice", DomainID: "default", PasswordHash: "h1", Enabled: true}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateUser(ctx, User{ID: "u2", Name: "alice", DomainID: "default"}), ErrExists)
	wantErr(t, s.CreateUser(ctx, User{ID: "u3", Name: "x"}), ErrInvalid)
	if err := s.SetPassword(ctx, "u1", "h2"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.SetPassword(ctx, "nope", "h"), ErrNotFound)
	if got, err := s.UserByName(ctx, "default", "alice"); err != nil || got.ID != "u1" || got.PasswordHash != "h2" || !got.Enabled {
		t.Fatalf("user by name = %+v %v", got, err)
	}
	_, err = s.User(ctx, "nope")
	wantErr(t, err, ErrNotFound)

	for _, r := range []string{"member", "admin", "admin"} { // idempotent
		if err := s.Grant(ctx, "u1", "p1", r); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, s.Grant(ctx, "u1", "nope", "admin"), ErrNotFound)
	wantErr(t, s.Grant(ctx, "nope", "p1", "admin"), ErrNotFound)
	if rs, err := s.Roles(ctx, "u1", "p1"); err != nil || !slices.Equal(rs, []string{"admin", "member"}) {
		t.Fatalf("roles = %v %v", rs, err)
	}
	if rs, err := s.Roles(ctx, "u1", "p0"); err != nil || len(rs) != 0 {
		t.Fatalf("roles on p0 = %v %v", rs, err)
	}
	s.Grant(ctx, "u1", "p0", "member")
	ps, err := s.UserProjects(ctx, "u1")
	if err != nil || len(ps) != 2 || ps[0].ID != "p0" || ps[1].ID != "p1" {
		t.Fatalf("user projects = %+v %v", ps, err)
	}
	if err := s.CreateProject(ctx, Project{ID: "p9", Name: "nobody's", DomainID: "default"}); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.Projects(ctx); err != nil || len(ps) != 3 || ps[0].ID != "p0" || ps[2].ID != "p9" || ps[2].Name != "nobody's" {
		t.Fatalf("projects = %+v %v", ps, err)
	}

	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tok := Token{Hash: "h", UserID: "u1", ProjectID: "p1", Methods: []string{"password"}, AuditID: "a",
		IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.PutToken(ctx, tok), ErrExists)
	wantErr(t, s.PutToken(ctx, Token{Hash: "x", UserID: "nope", ExpiresAt: base}), ErrNotFound)
	wantErr(t, s.PutToken(ctx, Token{Hash: "x"}), ErrInvalid)
	got, err := s.Token(ctx, "h")
	if err != nil || got.UserID != "u1" || got.ProjectID != "p1" || !slices.Equal(got.Methods, []string{"password"}) ||
		got.AuditID != "a" || !got.IssuedAt.Equal(base) || !got.ExpiresAt.Equal(base.Add(time.Hour)) {
		t.Fatalf("token = %+v %v", got, err)
	}
	s.PutToken(ctx, Token{Hash: "old", UserID: "u1", Methods: []string{"password"}, IssuedAt: base, ExpiresAt: base.Add(time.Minute)})
	if n, err := s.PruneTokens(ctx, base.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune = %d %v", n, err)
	}
	_, err = s.Token(ctx, "old")
	wantErr(t, err, ErrNotFound)
	if err := s.DeleteToken(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteToken(ctx, "h"), ErrNotFound)
	_, err = s.Token(ctx, "h")
	wantErr(t, err, ErrNotFound)
}

// TestSQLiteIdentityReopen: users, grants and tokens survive a restart.
func TestSQLiteIdentityReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	s.CreateProject(ctx, Project{ID: "p", Name: "admin", DomainID: "default", Enabled: true})
	s.CreateUser(ctx, User{ID: "u", Name: "admin", DomainID: "default", PasswordHash: "h", Enabled: true})
	s.Grant(ctx, "u", "p", "admin")
	exp := now().Add(time.Hour)
	if err := s.PutToken(ctx, Token{Hash: "t", UserID: "u", ProjectID: "p", Methods: []string{"password"}, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if tok, err := s.Token(ctx, "t"); err != nil || tok.ProjectID != "p" || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("token after reopen = %+v %v", tok, err)
	}
	if rs, err := s.Roles(ctx, "u", "p"); err != nil || !slices.Equal(rs, []string{"admin"}) {
		t.Fatalf("roles after reopen = %v %v", rs, err)
	}
}
