// Package identity is ciao-controller's built-in identity service: the
// subset of the Keystone v3 API that OpenStack clients
// (python-openstackclient, gophercloud) need to log in, served by the
// controller itself so that a cluster needs no Keystone (controller.md
// §3). It also implements api.Authenticator over the same tokens.
//
// Routes (mounted under /v3 next to the compute API, see Mount):
//
//	GET    /v3                      200 version document (client discovery)
//	POST   /v3/auth/tokens          201 + X-Subject-Token; 400 malformed, 401 bad credentials
//	GET    /v3/auth/tokens          200 token; 401 bad X-Auth-Token; 404 bad X-Subject-Token
//	HEAD   /v3/auth/tokens          200 / 401 / 404, no body
//	DELETE /v3/auth/tokens          204 revoked; 401 / 404 as GET
//	GET    /v3/auth/projects        200 projects the caller has a role on
//	GET    /v3/projects             200 the same, or every project for an admin
//	                                (`openstack project list`); ?name= and ?domain_id= filter
//	GET    /v3/projects/{id}        200 a project of the caller (any for an admin); 403 another's; 404
//	GET    /v3/users/{id}/projects  200; 403 for another user unless admin
//
// A path not listed is 404; a listed path asked with another method is
// 405 with an Allow header naming the methods it takes.
//
// Only the password method (user by id, or by name plus domain) and the
// token method (rescoping) are accepted; the scope is a project by id, or
// by name plus domain, or none (an unscoped token, no catalog). There is
// one domain, "default" (name "Default").
//
// Tokens are 32 random bytes (crypto/rand), base64url encoded. Only their
// SHA-256 is stored, with the user, project and expiry, so a stolen
// database does not yield live tokens and a controller restart keeps
// them. Roles and names are read at validation time, so a revoked role
// takes effect at once. Passwords are bcrypt hashes.
//
// Errors are Keystone's error object:
//
//	{"error":{"code":401,"title":"Unauthorized","message":"..."}}
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// The only domain.
const (
	DefaultDomainID   = "default"
	DefaultDomainName = "Default"
)

// DefaultTokenTTL is how long an issued token lives.
const DefaultTokenTTL = time.Hour

// Sentinels. ErrUnauthorized covers every credential failure (unknown
// user, wrong password, no role on the project) so the reply does not
// tell which one it was.
var (
	ErrUnauthorized = errors.New("identity: the request you have made requires authentication")
	ErrBadRequest   = errors.New("identity: malformed request")
	ErrNoToken      = errors.New("identity: token not found or expired")
)

// Config configures the service. Build it with NewConfig.
type Config struct {
	Store datastore.IdentityStore
	// TokenTTL is the lifetime of issued tokens.
	TokenTTL time.Duration
	// PublicURL is the controller's compute API base URL (scheme://host:port)
	// put in the catalog: compute at PublicURL/v2.1/<project>, identity at
	// PublicURL/v3. Empty: taken from each request (scheme and Host).
	PublicURL string
	// ImageURL, if set, adds an image (glance) endpoint to the catalog.
	ImageURL string
	// ImageOnBase, when ImageURL is empty, adds an image endpoint at the
	// base URL itself: the controller's own image API (/v2/images).
	ImageOnBase bool
	// Region of every catalog endpoint.
	Region string
	// BcryptCost for new passwords (bcrypt.DefaultCost when 0).
	BcryptCost int
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	// CacheTTL is how long Authenticate trusts what it read for a token
	// (user, project, roles) before reading the store again; 0 reads it
	// on every request. A cached token still stops at its expiry, and a
	// revocation through this service drops it at once; a user disabled
	// or a role removed by another process (-create-user) is seen within
	// CacheTTL.
	CacheTTL time.Duration
}

// DefaultCacheTTL is Config.CacheTTL's default.
const DefaultCacheTTL = 10 * time.Second

// maxCached bounds the token cache; it is emptied when full.
const maxCached = 100000

// cached is an Authenticate answer and how long it holds.
type cached struct {
	id    api.Identity
	until time.Time
}

// NewConfig returns a Config over store with the defaults.
func NewConfig(store datastore.IdentityStore) Config {
	return Config{Store: store, TokenTTL: DefaultTokenTTL, Region: "RegionOne", BcryptCost: bcrypt.DefaultCost, CacheTTL: DefaultCacheTTL}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("identity config: no store")
	case c.CacheTTL < 0:
		return errors.New("identity config: negative cache TTL")
	case c.TokenTTL <= 0:
		return errors.New("identity config: token ttl must be > 0")
	case c.Region == "":
		return errors.New("identity config: empty region")
	case c.BcryptCost != 0 && (c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost):
		return fmt.Errorf("identity config: bcrypt cost %d out of range", c.BcryptCost)
	}
	return nil
}

// Service issues and validates tokens. It holds no mutable state of its
// own (everything is in the store), so it is safe for concurrent use.
type Service struct {
	cfg       Config
	dummyHash []byte // bcrypt of a random password at BcryptCost; read-only

	mu    sync.Mutex
	cache map[string]cached // guarded by mu: token hash → answer
	gen   uint64            // guarded by mu: revocations so far
}

var _ api.Authenticator = (*Service)(nil)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Service{cfg: cfg, dummyHash: dummy}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Round(0) }

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// session is a validated token with everything its body needs.
type session struct {
	tok     datastore.Token
	user    datastore.User
	project *datastore.Project // nil when unscoped
	roles   []string
}

// validate looks tok up and checks expiry, user and project.
func (s *Service) validate(ctx context.Context, tok string) (session, error) {
	if tok == "" {
		return session{}, ErrNoToken
	}
	t, err := s.cfg.Store.Token(ctx, hashToken(tok))
	if errors.Is(err, datastore.ErrNotFound) {
		return session{}, ErrNoToken
	}
	if err != nil {
		return session{}, fmt.Errorf("validate token: %w", err)
	}
	if !t.ExpiresAt.After(s.now()) {
		return session{}, fmt.Errorf("validate token: expired at %s: %w", t.ExpiresAt, ErrNoToken)
	}
	return s.load(ctx, t)
}

// load fills a session for t; a disabled or vanished user or project, or
// no role left on the project, makes the token invalid.
func (s *Service) load(ctx context.Context, t datastore.Token) (session, error) {
	u, err := s.cfg.Store.User(ctx, t.UserID)
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && !u.Enabled) {
		return session{}, fmt.Errorf("validate token: user %s gone or disabled: %w", t.UserID, ErrNoToken)
	}
	if err != nil {
		return session{}, fmt.Errorf("validate token: %w", err)
	}
	ses := session{tok: t, user: u}
	if t.ProjectID == "" {
		return ses, nil
	}
	p, err := s.cfg.Store.Project(ctx, t.ProjectID)
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && !p.Enabled) {
		return session{}, fmt.Errorf("validate token: project %s gone or disabled: %w", t.ProjectID, ErrNoToken)
	}
	if err != nil {
		return session{}, fmt.Errorf("validate token: %w", err)
	}
	roles, err := s.cfg.Store.Roles(ctx, u.ID, p.ID)
	if err != nil {
		return session{}, fmt.Errorf("validate token: %w", err)
	}
	if len(roles) == 0 {
		return session{}, fmt.Errorf("validate token: no role left on %s: %w", p.ID, ErrNoToken)
	}
	ses.project, ses.roles = &p, roles
	return ses, nil
}

// Authenticate implements api.Authenticator: the project and roles of a
// live token. Unknown, expired and revoked tokens give api.ErrBadToken.
func (s *Service) Authenticate(ctx context.Context, tok string) (api.Identity, error) {
	var h string
	var gen uint64
	if s.cfg.CacheTTL > 0 && tok != "" {
		h = hashToken(tok)
		now := s.now()
		s.mu.Lock()
		c, ok := s.cache[h]
		gen = s.gen
		s.mu.Unlock()
		if ok && now.Before(c.until) {
			id := c.id
			id.Roles = slices.Clone(id.Roles)
			return id, nil
		}
	}
	id, until, err := s.authenticate(ctx, tok)
	if err == nil && h != "" {
		if limit := s.now().Add(s.cfg.CacheTTL); limit.Before(until) {
			until = limit
		}
		s.mu.Lock()
		if s.gen == gen { // no revocation raced with the store reads
			if s.cache == nil || len(s.cache) >= maxCached {
				s.cache = map[string]cached{}
			}
			s.cache[h] = cached{id: id, until: until}
			id.Roles = slices.Clone(id.Roles)
		}
		s.mu.Unlock()
	}
	return id, err
}

// authenticate is Authenticate without the cache; it also returns the
// token's expiry.
func (s *Service) authenticate(ctx context.Context, tok string) (api.Identity, time.Time, error) {
	ses, err := s.validate(ctx, tok)
	if errors.Is(err, ErrNoToken) {
		return api.Identity{}, time.Time{}, fmt.Errorf("%w: %v", api.ErrBadToken, err)
	}
	if err != nil {
		return api.Identity{}, time.Time{}, err
	}
	if ses.project == nil { // unscoped: no tenant, no roles
		return api.Identity{}, ses.tok.ExpiresAt, nil
	}
	return api.Identity{TenantID: ses.project.ID, ProjectName: ses.project.Name, Roles: slices.Clone(ses.roles)}, ses.tok.ExpiresAt, nil
}

// issue stores a new token for user on project ("" = unscoped) and
// returns its id.
func (s *Service) issue(ctx context.Context, userID, projectID string, methods []string) (string, datastore.Token, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", datastore.Token{}, fmt.Errorf("issue token: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	var a [16]byte
	if _, err := rand.Read(a[:]); err != nil {
		return "", datastore.Token{}, fmt.Errorf("issue token: %w", err)
	}
	now := s.now()
	t := datastore.Token{Hash: hashToken(id), UserID: userID, ProjectID: projectID, Methods: methods,
		AuditID: base64.RawURLEncoding.EncodeToString(a[:]), IssuedAt: now, ExpiresAt: now.Add(s.cfg.TokenTTL)}
	if _, err := s.cfg.Store.PruneTokens(ctx, now); err != nil {
		return "", datastore.Token{}, fmt.Errorf("issue token: %w", err)
	}
	if err := s.cfg.Store.PutToken(ctx, t); err != nil {
		return "", datastore.Token{}, fmt.Errorf("issue token: %w", err)
	}
	return id, t, nil
}

// revoke deletes a token.
func (s *Service) revoke(ctx context.Context, tok string) error {
	s.mu.Lock()
	delete(s.cache, hashToken(tok))
	s.gen++
	s.mu.Unlock()
	err := s.cfg.Store.DeleteToken(ctx, hashToken(tok))
	// Again after the delete: an Authenticate that read the token
	// before it went must not cache it (see gen).
	s.mu.Lock()
	delete(s.cache, hashToken(tok))
	s.gen++
	s.mu.Unlock()
	if errors.Is(err, datastore.ErrNotFound) {
		return ErrNoToken
	}
	return err
}

// Bootstrap creates or updates a user: it makes the user (in the default
// domain) and the project if missing, sets the password, and grants role
// on the project. It is what `ciao-controller -create-user` runs.
func Bootstrap(ctx context.Context, store datastore.IdentityStore, user, password, project, role string, cost int) error {
	switch {
	case user == "" || project == "" || role == "":
		return fmt.Errorf("bootstrap: user, project and role are required: %w", ErrBadRequest)
	case password == "":
		return fmt.Errorf("bootstrap: empty password: %w", ErrBadRequest)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("bootstrap: hash password: %w", err)
	}
	p, err := store.ProjectByName(ctx, DefaultDomainID, project)
	if errors.Is(err, datastore.ErrNotFound) {
		p = datastore.Project{ID: uuid.NewString(), Name: project, DomainID: DefaultDomainID, Enabled: true}
		err = store.CreateProject(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("bootstrap: project %s: %w", project, err)
	}
	u, err := store.UserByName(ctx, DefaultDomainID, user)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		u = datastore.User{ID: uuid.NewString(), Name: user, DomainID: DefaultDomainID, PasswordHash: string(hash), Enabled: true}
		err = store.CreateUser(ctx, u)
	case err == nil:
		err = store.SetPassword(ctx, u.ID, string(hash))
	}
	if err != nil {
		return fmt.Errorf("bootstrap: user %s: %w", user, err)
	}
	if err := store.Grant(ctx, u.ID, p.ID, role); err != nil {
		return fmt.Errorf("bootstrap: grant: %w", err)
	}
	return nil
}
