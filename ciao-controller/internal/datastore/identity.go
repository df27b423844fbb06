package datastore

import (
	"context"
	"fmt"
	"time"
)

// IdentityStore keeps the built-in identity's users, projects, role
// assignments and tokens (package identity). It is separate from Store so
// that stores without identity need not implement it; *SQLite and *Memory
// both do and pass the same conformance tests. All methods are safe for
// concurrent use.
type IdentityStore interface {
	CreateProject(ctx context.Context, p Project) error                        // ErrExists (id or domain+name)
	Project(ctx context.Context, id string) (Project, error)                   // ErrNotFound
	ProjectByName(ctx context.Context, domainID, name string) (Project, error) // ErrNotFound

	CreateUser(ctx context.Context, u User) error                        // ErrExists (id or domain+name)
	User(ctx context.Context, id string) (User, error)                   // ErrNotFound
	UserByName(ctx context.Context, domainID, name string) (User, error) // ErrNotFound
	SetPassword(ctx context.Context, userID, passwordHash string) error  // ErrNotFound

	Grant(ctx context.Context, userID, projectID, role string) error       // idempotent; ErrNotFound for unknown user/project
	Roles(ctx context.Context, userID, projectID string) ([]string, error) // sorted
	UserProjects(ctx context.Context, userID string) ([]Project, error)    // projects with any role, sorted by id
	Projects(ctx context.Context) ([]Project, error)                       // all, sorted by id

	PutToken(ctx context.Context, t Token) error                 // ErrExists
	Token(ctx context.Context, hash string) (Token, error)       // ErrNotFound (expiry is the caller's business)
	DeleteToken(ctx context.Context, hash string) error          // ErrNotFound
	PruneTokens(ctx context.Context, now time.Time) (int, error) // drops tokens expired at now
}

var (
	_ IdentityStore = (*SQLite)(nil)
	_ IdentityStore = (*Memory)(nil)
)

// Project is a Keystone project; its id is the tenant id of the compute
// API.
type Project struct {
	ID, Name, DomainID, Description string
	Enabled                         bool
	CreatedAt                       time.Time
}

// User is a local user. PasswordHash is a bcrypt hash.
type User struct {
	ID, Name, DomainID, PasswordHash string
	Enabled                          bool
	CreatedAt                        time.Time
}

// Token is an issued token, keyed by the hex SHA-256 of its id.
type Token struct {
	Hash      string
	UserID    string
	ProjectID string // "" = unscoped
	Methods   []string
	AuditID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

func checkProject(p Project) error {
	if p.ID == "" || p.Name == "" || p.DomainID == "" {
		return fmt.Errorf("create project: id, name and domain are required: %w", ErrInvalid)
	}
	return nil
}

func checkUser(u User) error {
	if u.ID == "" || u.Name == "" || u.DomainID == "" {
		return fmt.Errorf("create user: id, name and domain are required: %w", ErrInvalid)
	}
	return nil
}

func checkToken(t Token) error {
	if t.Hash == "" || t.UserID == "" || t.ExpiresAt.IsZero() {
		return fmt.Errorf("put token: hash, user and expiry are required: %w", ErrInvalid)
	}
	return nil
}
