package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

func isForeignKey(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateProject implements IdentityStore.
func (s *SQLite) CreateProject(ctx context.Context, p Project) error {
	if err := checkProject(p); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO identity_projects (id, name, domain_id, description, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, p.ID, p.Name, p.DomainID, p.Description, b2i(p.Enabled), stamp(p.CreatedAt).UnixNano())
	if isConstraint(err) {
		return fmt.Errorf("create project %s: %w", p.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create project %s: %w", p.Name, err)
	}
	return nil
}

const projectCols = `id, name, domain_id, description, enabled, created_at`

func scanProject(sc interface{ Scan(...any) error }) (Project, error) {
	var p Project
	var c int64
	err := sc.Scan(&p.ID, &p.Name, &p.DomainID, &p.Description, &p.Enabled, &c)
	p.CreatedAt = fromNS(c)
	return p, err
}

func (s *SQLite) project(ctx context.Context, what, where string, args ...any) (Project, error) {
	p, err := scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM identity_projects WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, fmt.Errorf("get project %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return Project{}, fmt.Errorf("get project %s: %w", what, err)
	}
	return p, nil
}

// Project implements IdentityStore.
func (s *SQLite) Project(ctx context.Context, id string) (Project, error) {
	return s.project(ctx, id, `id = ?`, id)
}

// ProjectByName implements IdentityStore.
func (s *SQLite) ProjectByName(ctx context.Context, domainID, name string) (Project, error) {
	return s.project(ctx, domainID+"/"+name, `domain_id = ? AND name = ?`, domainID, name)
}

// CreateUser implements IdentityStore.
func (s *SQLite) CreateUser(ctx context.Context, u User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO identity_users (id, name, domain_id, password_hash, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, u.ID, u.Name, u.DomainID, u.PasswordHash, b2i(u.Enabled), stamp(u.CreatedAt).UnixNano())
	if isConstraint(err) {
		return fmt.Errorf("create user %s: %w", u.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	return nil
}

func (s *SQLite) user(ctx context.Context, what, where string, args ...any) (User, error) {
	var u User
	var c int64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, domain_id, password_hash, enabled, created_at FROM identity_users WHERE `+where, args...).
		Scan(&u.ID, &u.Name, &u.DomainID, &u.PasswordHash, &u.Enabled, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("get user %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", what, err)
	}
	u.CreatedAt = fromNS(c)
	return u, nil
}

// User implements IdentityStore.
func (s *SQLite) User(ctx context.Context, id string) (User, error) {
	return s.user(ctx, id, `id = ?`, id)
}

// UserByName implements IdentityStore.
func (s *SQLite) UserByName(ctx context.Context, domainID, name string) (User, error) {
	return s.user(ctx, domainID+"/"+name, `domain_id = ? AND name = ?`, domainID, name)
}

// SetPassword implements IdentityStore.
func (s *SQLite) SetPassword(ctx context.Context, userID, passwordHash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE identity_users SET password_hash = ? WHERE id = ?`, passwordHash, userID)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", userID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set password of %s: %w", userID, ErrNotFound)
	}
	return nil
}

// Grant implements IdentityStore.
func (s *SQLite) Grant(ctx context.Context, userID, projectID, role string) error {
	if role == "" {
		return fmt.Errorf("grant: empty role: %w", ErrInvalid)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO identity_role_assignments (user_id, project_id, role) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, userID, projectID, role)
	if isConstraint(err) { // foreign key
		return fmt.Errorf("grant %s on %s to %s: %w", role, projectID, userID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("grant %s on %s to %s: %w", role, projectID, userID, err)
	}
	return nil
}

// Roles implements IdentityStore.
func (s *SQLite) Roles(ctx context.Context, userID, projectID string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT role FROM identity_role_assignments WHERE user_id = ? AND project_id = ? ORDER BY role`,
		userID, projectID)
	if err != nil {
		return nil, fmt.Errorf("roles of %s on %s: %w", userID, projectID, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("roles of %s on %s: %w", userID, projectID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UserProjects implements IdentityStore.
func (s *SQLite) UserProjects(ctx context.Context, userID string) ([]Project, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+projectCols+` FROM identity_projects WHERE id IN
		(SELECT project_id FROM identity_role_assignments WHERE user_id = ?) ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("projects of %s: %w", userID, err)
	}
	defer rows.Close()
	out := []Project{}
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("projects of %s: %w", userID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Projects implements IdentityStore.
func (s *SQLite) Projects(ctx context.Context) ([]Project, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+projectCols+` FROM identity_projects ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("projects: %w", err)
	}
	defer rows.Close()
	out := []Project{}
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("projects: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PutToken implements IdentityStore.
func (s *SQLite) PutToken(ctx context.Context, t Token) error {
	if err := checkToken(t); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO identity_tokens (hash, user_id, project_id, methods, audit_id, issued_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, t.Hash, t.UserID, t.ProjectID, strings.Join(t.Methods, ","), t.AuditID,
		stamp(t.IssuedAt).UnixNano(), t.ExpiresAt.UnixNano())
	if isForeignKey(err) {
		return fmt.Errorf("put token: user %s: %w", t.UserID, ErrNotFound)
	}
	if isConstraint(err) {
		return fmt.Errorf("put token: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	return nil
}

// Token implements IdentityStore.
func (s *SQLite) Token(ctx context.Context, hash string) (Token, error) {
	var t Token
	var methods string
	var iat, exp int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, user_id, project_id, methods, audit_id, issued_at, expires_at
		FROM identity_tokens WHERE hash = ?`, hash).Scan(&t.Hash, &t.UserID, &t.ProjectID, &methods, &t.AuditID, &iat, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("get token: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("get token: %w", err)
	}
	if methods != "" {
		t.Methods = strings.Split(methods, ",")
	}
	t.IssuedAt, t.ExpiresAt = fromNS(iat), fromNS(exp)
	return t, nil
}

// DeleteToken implements IdentityStore.
func (s *SQLite) DeleteToken(ctx context.Context, hash string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM identity_tokens WHERE hash = ?`, hash)
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete token: %w", ErrNotFound)
	}
	return nil
}

// PruneTokens implements IdentityStore.
func (s *SQLite) PruneTokens(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM identity_tokens WHERE expires_at <= ?`, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune tokens: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
