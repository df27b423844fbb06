package datastore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"
)

// memIdentity is Memory's identity state; Memory.mu guards all of it.
// Maps are made on first write.
type memIdentity struct {
	projects map[string]Project                    // by id
	users    map[string]User                       // by id
	roles    map[string]map[string]map[string]bool // user → project → role
	tokens   map[string]Token                      // by hash
}

func (m *Memory) identLocked() *memIdentity {
	id := &m.ident
	if id.projects == nil {
		id.projects = map[string]Project{}
		id.users = map[string]User{}
		id.roles = map[string]map[string]map[string]bool{}
		id.tokens = map[string]Token{}
	}
	return id
}

// CreateProject implements IdentityStore.
func (m *Memory) CreateProject(_ context.Context, p Project) error {
	if err := checkProject(p); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	for _, o := range id.projects {
		if o.ID == p.ID || (o.DomainID == p.DomainID && o.Name == p.Name) {
			return fmt.Errorf("create project %s: %w", p.Name, ErrExists)
		}
	}
	p.CreatedAt = stamp(p.CreatedAt)
	id.projects[p.ID] = p
	return nil
}

// Project implements IdentityStore.
func (m *Memory) Project(_ context.Context, pid string) (Project, error) {
	if err := m.lock(); err != nil {
		return Project{}, err
	}
	defer m.mu.Unlock()
	p, ok := m.identLocked().projects[pid]
	if !ok {
		return Project{}, fmt.Errorf("get project %s: %w", pid, ErrNotFound)
	}
	return p, nil
}

// ProjectByName implements IdentityStore.
func (m *Memory) ProjectByName(_ context.Context, domainID, name string) (Project, error) {
	if err := m.lock(); err != nil {
		return Project{}, err
	}
	defer m.mu.Unlock()
	for _, p := range m.identLocked().projects {
		if p.DomainID == domainID && p.Name == name {
			return p, nil
		}
	}
	return Project{}, fmt.Errorf("get project %s/%s: %w", domainID, name, ErrNotFound)
}

// CreateUser implements IdentityStore.
func (m *Memory) CreateUser(_ context.Context, u User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	for _, o := range id.users {
		if o.ID == u.ID || (o.DomainID == u.DomainID && o.Name == u.Name) {
			return fmt.Errorf("create user %s: %w", u.Name, ErrExists)
		}
	}
	u.CreatedAt = stamp(u.CreatedAt)
	id.users[u.ID] = u
	return nil
}

// User implements IdentityStore.
func (m *Memory) User(_ context.Context, uid string) (User, error) {
	if err := m.lock(); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	u, ok := m.identLocked().users[uid]
	if !ok {
		return User{}, fmt.Errorf("get user %s: %w", uid, ErrNotFound)
	}
	return u, nil
}

// UserByName implements IdentityStore.
func (m *Memory) UserByName(_ context.Context, domainID, name string) (User, error) {
	if err := m.lock(); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	for _, u := range m.identLocked().users {
		if u.DomainID == domainID && u.Name == name {
			return u, nil
		}
	}
	return User{}, fmt.Errorf("get user %s/%s: %w", domainID, name, ErrNotFound)
}

// SetPassword implements IdentityStore.
func (m *Memory) SetPassword(_ context.Context, userID, passwordHash string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	u, ok := id.users[userID]
	if !ok {
		return fmt.Errorf("set password of %s: %w", userID, ErrNotFound)
	}
	u.PasswordHash = passwordHash
	id.users[userID] = u
	return nil
}

// Grant implements IdentityStore.
func (m *Memory) Grant(_ context.Context, userID, projectID, role string) error {
	if role == "" {
		return fmt.Errorf("grant: empty role: %w", ErrInvalid)
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	if _, ok := id.users[userID]; !ok {
		return fmt.Errorf("grant %s on %s to %s: %w", role, projectID, userID, ErrNotFound)
	}
	if _, ok := id.projects[projectID]; !ok {
		return fmt.Errorf("grant %s on %s to %s: %w", role, projectID, userID, ErrNotFound)
	}
	if id.roles[userID] == nil {
		id.roles[userID] = map[string]map[string]bool{}
	}
	if id.roles[userID][projectID] == nil {
		id.roles[userID][projectID] = map[string]bool{}
	}
	id.roles[userID][projectID][role] = true
	return nil
}

// Roles implements IdentityStore.
func (m *Memory) Roles(_ context.Context, userID, projectID string) ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := []string{}
	for r := range m.identLocked().roles[userID][projectID] {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

// UserProjects implements IdentityStore.
func (m *Memory) UserProjects(_ context.Context, userID string) ([]Project, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	out := []Project{}
	for pid, rs := range id.roles[userID] {
		if len(rs) > 0 {
			out = append(out, id.projects[pid])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Projects implements IdentityStore.
func (m *Memory) Projects(_ context.Context) ([]Project, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	out := make([]Project, 0, len(id.projects))
	for _, p := range id.projects {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PutToken implements IdentityStore.
func (m *Memory) PutToken(_ context.Context, t Token) error {
	if err := checkToken(t); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	if _, ok := id.tokens[t.Hash]; ok {
		return fmt.Errorf("put token: %w", ErrExists)
	}
	if _, ok := id.users[t.UserID]; !ok {
		return fmt.Errorf("put token: user %s: %w", t.UserID, ErrNotFound)
	}
	t.Methods = slices.Clone(t.Methods)
	t.IssuedAt, t.ExpiresAt = stamp(t.IssuedAt), t.ExpiresAt.UTC().Round(0)
	id.tokens[t.Hash] = t
	return nil
}

// Token implements IdentityStore.
func (m *Memory) Token(_ context.Context, hash string) (Token, error) {
	if err := m.lock(); err != nil {
		return Token{}, err
	}
	defer m.mu.Unlock()
	t, ok := m.identLocked().tokens[hash]
	if !ok {
		return Token{}, fmt.Errorf("get token: %w", ErrNotFound)
	}
	t.Methods = slices.Clone(t.Methods)
	return t, nil
}

// DeleteToken implements IdentityStore.
func (m *Memory) DeleteToken(_ context.Context, hash string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	if _, ok := id.tokens[hash]; !ok {
		return fmt.Errorf("delete token: %w", ErrNotFound)
	}
	delete(id.tokens, hash)
	return nil
}

// PruneTokens implements IdentityStore.
func (m *Memory) PruneTokens(_ context.Context, now time.Time) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	id := m.identLocked()
	n := 0
	for h, t := range id.tokens {
		if !t.ExpiresAt.After(now) {
			delete(id.tokens, h)
			n++
		}
	}
	return n, nil
}
