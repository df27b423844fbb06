package api

import (
	"context"
	"errors"
	"slices"
)

// ErrBadToken: the token is unknown or expired.
var ErrBadToken = errors.New("api: invalid token")

// Identity is what a token proves (§3.1): the project (tenant) it is
// scoped to and the caller's role names in it.
type Identity struct {
	TenantID    string
	ProjectName string
	Roles       []string
}

// IsAdmin applies the admin check of §3.3: a token scoped to the project
// named "service" or "admin" holding the role "admin".
func (id Identity) IsAdmin() bool {
	return (id.ProjectName == "service" || id.ProjectName == "admin") && slices.Contains(id.Roles, "admin")
}

// Authenticator validates a caller's token. The built-in Keystone
// identity will implement it; StaticTokens does for now.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// StaticTokens is an Authenticator over a fixed token table.
type StaticTokens map[string]Identity

// Authenticate implements Authenticator.
func (s StaticTokens) Authenticate(_ context.Context, token string) (Identity, error) {
	id, ok := s[token]
	if !ok {
		return Identity{}, ErrBadToken
	}
	return id, nil
}
