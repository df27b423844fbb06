package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
)

// RemoteConfig configures Remote, an Authenticator against an external
// Keystone (controller.md §3.2, §3.3).
type RemoteConfig struct {
	URL      string // Keystone base URL; /v3/... is appended
	User     string // service user (conventionally csr), domain "default"
	Password string
	Project  string // service project name, domain "default"
	Client   *http.Client
	// CacheTTL is how long Authenticate trusts Keystone's answer for a
	// token before asking again, as Config.CacheTTL for the built-in
	// identity: 0 asks on every request. A cached token still stops at
	// the expires_at Keystone gave; a token revoked in Keystone is
	// refused once its entry is older than CacheTTL. Only accepted
	// tokens are cached.
	CacheTTL time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Validate checks the configuration.
func (c RemoteConfig) Validate() error {
	if c.URL == "" || c.User == "" || c.Password == "" || c.Project == "" {
		return errors.New("identity remote config: url, user, password and project are required")
	}
	if c.CacheTTL < 0 {
		return errors.New("identity remote config: negative cache TTL")
	}
	return nil
}

// Remote validates tokens with GET /v3/auth/tokens on an external
// Keystone, authenticated as the service user; a 401 on validation
// re-authenticates once. mu guards the service token; cmu the cache of
// validated tokens.
type Remote struct {
	cfg RemoteConfig

	mu      sync.Mutex
	token   string    // guarded by mu
	expires time.Time // guarded by mu

	cmu       sync.Mutex
	cache     map[string]cached // guarded by cmu: token hash → answer
	maxCached int               // read-only after NewRemote (tests lower it): the cache is emptied when this full
}

var _ api.Authenticator = (*Remote)(nil)

// NewRemote returns a Remote; it logs in on first use.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &Remote{cfg: cfg, maxCached: maxCached}, nil
}

// serviceToken returns a live service token, logging in when needed.
func (r *Remote) serviceToken(ctx context.Context, renew bool) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !renew && r.token != "" && time.Until(r.expires) > time.Minute {
		return r.token, nil
	}
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": r.cfg.User, "domain": map[string]string{"id": DefaultDomainID}, "password": r.cfg.Password}}},
		"scope": map[string]any{"project": map[string]any{"name": r.cfg.Project, "domain": map[string]string{"id": DefaultDomainID}}},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL+"/v3/auth/tokens", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("keystone login: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("keystone login: %w", err)
	}
	defer resp.Body.Close()
	var tb struct {
		Token struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("keystone login as %s: status %d", r.cfg.User, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tb); err != nil {
		return "", fmt.Errorf("keystone login: %w", err)
	}
	r.token, r.expires = resp.Header.Get("X-Subject-Token"), tb.Token.ExpiresAt
	return r.token, nil
}

// Authenticate implements api.Authenticator. The tenant check of §3.3
// needs a compute entry in the token's catalog; without one the identity
// keeps only what the admin check needs. Answers are cached (CacheTTL).
func (r *Remote) Authenticate(ctx context.Context, tok string) (api.Identity, error) {
	if r.cfg.CacheTTL <= 0 || tok == "" {
		id, _, err := r.validate(ctx, tok)
		return id, err
	}
	h := hashToken(tok)
	now := r.cfg.Now()
	r.cmu.Lock()
	c, ok := r.cache[h]
	r.cmu.Unlock()
	if ok && now.Before(c.until) {
		id := c.id
		id.Roles = slices.Clone(id.Roles)
		return id, nil
	}
	id, expires, err := r.validate(ctx, tok)
	if err != nil {
		if ok && errors.Is(err, api.ErrBadToken) {
			r.cmu.Lock()
			delete(r.cache, h)
			r.cmu.Unlock()
		}
		return id, err
	}
	until := r.cfg.Now().Add(r.cfg.CacheTTL)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	r.cmu.Lock()
	if r.cache == nil || len(r.cache) >= r.maxCached {
		r.cache = map[string]cached{}
	}
	r.cache[h] = cached{id: id, until: until}
	r.cmu.Unlock()
	id.Roles = slices.Clone(id.Roles)
	return id, nil
}

// validate asks Keystone about tok; it also returns the token's expiry.
func (r *Remote) validate(ctx context.Context, tok string) (api.Identity, time.Time, error) {
	for attempt := 0; attempt < 2; attempt++ {
		st, err := r.serviceToken(ctx, attempt > 0)
		if err != nil {
			return api.Identity{}, time.Time{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL+"/v3/auth/tokens", nil)
		if err != nil {
			return api.Identity{}, time.Time{}, fmt.Errorf("keystone validate: %w", err)
		}
		req.Header.Set("X-Auth-Token", st)
		req.Header.Set("X-Subject-Token", tok)
		resp, err := r.cfg.Client.Do(req)
		if err != nil {
			return api.Identity{}, time.Time{}, fmt.Errorf("keystone validate: %w", err)
		}
		id, expires, retry, err := decodeValidation(resp)
		resp.Body.Close()
		if err == nil && !expires.IsZero() && !expires.After(r.cfg.Now()) {
			return api.Identity{}, time.Time{}, fmt.Errorf("keystone validate: token expired at %s: %w", expires, api.ErrBadToken)
		}
		if !retry {
			return id, expires, err
		}
	}
	return api.Identity{}, time.Time{}, errors.New("keystone validate: service token refused twice")
}

func decodeValidation(resp *http.Response) (id api.Identity, expires time.Time, retry bool, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return id, expires, true, nil
	case http.StatusNotFound:
		return id, expires, false, api.ErrBadToken
	default:
		return id, expires, false, fmt.Errorf("keystone validate: status %d", resp.StatusCode)
	}
	var tb struct {
		Token struct {
			ExpiresAt time.Time                  `json:"expires_at"`
			Project   *struct{ ID, Name string } `json:"project"`
			Roles     []struct{ Name string }    `json:"roles"`
			Catalog   []struct{ Type string }    `json:"catalog"`
		} `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tb); err != nil {
		return id, expires, false, fmt.Errorf("keystone validate: %w", err)
	}
	expires = tb.Token.ExpiresAt
	if tb.Token.Project == nil {
		return id, expires, false, nil
	}
	id.ProjectName = tb.Token.Project.Name
	for _, r := range tb.Token.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	for _, c := range tb.Token.Catalog {
		if c.Type == "compute" {
			id.TenantID = tb.Token.Project.ID
		}
	}
	return id, expires, false, nil
}
