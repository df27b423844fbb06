package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Token is what a TokenSource hands out.
type Token struct {
	ID          string    `json:"id"`
	ProjectID   string    `json:"project_id"`
	ProjectName string    `json:"project_name"`
	ExpiresAt   time.Time `json:"expires_at"` // zero: unknown
}

// TokenSource supplies the X-Auth-Token for API calls.
type TokenSource interface {
	Token(ctx context.Context) (Token, error)
}

// StaticToken is a TokenSource returning a fixed token (CIAO_TOKEN).
type StaticToken Token

// Token implements TokenSource.
func (s StaticToken) Token(context.Context) (Token, error) { return Token(s), nil }

// ErrAuth wraps identity-service refusals and failures.
var ErrAuth = errors.New("client: authentication failed")

// AmbiguousProjectError says the user belongs to several projects and
// none was named.
type AmbiguousProjectError struct {
	User     string
	Projects []Tenant
}

func (e *AmbiguousProjectError) Error() string {
	names := make([]string, len(e.Projects))
	for i, p := range e.Projects {
		names[i] = fmt.Sprintf("%s (%s)", p.Name, p.ID)
	}
	return fmt.Sprintf("user %s has several projects: %s", e.User, strings.Join(names, ", "))
}

// Keystone is a TokenSource logging in with a password against a
// Keystone v3 identity service (POST <URL>/v3/auth/tokens). Scoped tokens
// are cached in CacheDir per identity URL, user (and password) and project, and reused
// until a minute before they expire. The zero Project{Name,ID} picks the
// user's only project.
type Keystone struct {
	URL         string // identity base URL, e.g. https://host:35357
	User        string // user name in domain "default"
	Password    string
	ProjectName string // scope by name (domain "default"), or
	ProjectID   string // scope by id
	CacheDir    string // "" disables the disk cache
	HTTP        *http.Client
	Now         func() time.Time // nil: time.Now

	mu  sync.Mutex
	tok Token // guarded by mu: the token in use
}

var _ TokenSource = (*Keystone)(nil)

// Token implements TokenSource.
func (k *Keystone) Token(ctx context.Context) (Token, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.validLocked(k.tok) {
		return k.tok, nil
	}
	if t, ok := k.readCache(); ok && k.validLocked(t) {
		k.tok = t
		return t, nil
	}
	name, id := k.ProjectName, k.ProjectID
	if name == "" && id == "" {
		p, err := k.pickProject(ctx)
		if err != nil {
			return Token{}, err
		}
		id = p.ID
	}
	scope := map[string]any{"name": name, "domain": map[string]string{"id": "default"}}
	if name == "" {
		scope = map[string]any{"id": id}
	}
	t, _, err := k.login(ctx, map[string]any{"project": scope})
	if err != nil {
		return Token{}, err
	}
	if t.ProjectID == "" {
		return Token{}, fmt.Errorf("%w: the identity service returned a token without a project", ErrAuth)
	}
	k.tok = t
	k.writeCache(t)
	return t, nil
}

func (k *Keystone) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keystone) validLocked(t Token) bool {
	return t.ID != "" && (t.ExpiresAt.IsZero() || k.now().Add(time.Minute).Before(t.ExpiresAt))
}

// login posts password credentials with an optional scope and returns
// the token and the user's id.
func (k *Keystone) login(ctx context.Context, scope map[string]any) (Token, string, error) {
	auth := map[string]any{"identity": map[string]any{
		"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{
			"name": k.User, "domain": map[string]string{"id": "default"}, "password": k.Password,
		}},
	}}
	if scope != nil {
		auth["scope"] = scope
	}
	body, err := json.Marshal(map[string]any{"auth": auth})
	if err != nil {
		return Token{}, "", fmt.Errorf("%w: %v", ErrAuth, err)
	}
	var out struct {
		Token struct {
			ExpiresAt time.Time `json:"expires_at"`
			Project   Tenant    `json:"project"`
			User      Tenant    `json:"user"`
		} `json:"token"`
	}
	h, err := k.send(ctx, http.MethodPost, "/v3/auth/tokens", "", body, &out)
	if err != nil {
		return Token{}, "", err
	}
	id := h.Get("X-Subject-Token")
	if id == "" {
		return Token{}, "", fmt.Errorf("%w: no X-Subject-Token in the identity service's answer", ErrAuth)
	}
	t := Token{ID: id, ProjectID: out.Token.Project.ID, ProjectName: out.Token.Project.Name, ExpiresAt: out.Token.ExpiresAt}
	return t, out.Token.User.ID, nil
}

// Projects logs in unscoped and lists the user's projects
// (GET /v3/users/<id>/projects).
func (k *Keystone) Projects(ctx context.Context) ([]Tenant, error) {
	t, uid, err := k.login(ctx, nil)
	if err != nil {
		return nil, err
	}
	if uid == "" {
		return nil, fmt.Errorf("%w: the identity service returned no user id", ErrAuth)
	}
	var out struct {
		Projects []Tenant `json:"projects"`
	}
	if _, err := k.send(ctx, http.MethodGet, "/v3/users/"+url.PathEscape(uid)+"/projects", t.ID, nil, &out); err != nil {
		return nil, err
	}
	return out.Projects, nil
}

// pickProject returns the user's only project.
func (k *Keystone) pickProject(ctx context.Context) (Tenant, error) {
	ps, err := k.Projects(ctx)
	if err != nil {
		return Tenant{}, err
	}
	switch len(ps) {
	case 0:
		return Tenant{}, fmt.Errorf("%w: user %s belongs to no project", ErrAuth, k.User)
	case 1:
		return ps[0], nil
	}
	return Tenant{}, &AmbiguousProjectError{User: k.User, Projects: ps}
}

// send performs one identity request and decodes its JSON answer.
func (k *Keystone) send(ctx context.Context, method, path, token string, body []byte, out any) (http.Header, error) {
	u := strings.TrimRight(k.URL, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	hc := k.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, unreachable(k.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrAuth, u, err)
	}
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrAuth, method, u, resp.StatusCode, errorMessage(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %v", ErrAuth, u, err)
	}
	return resp.Header, nil
}

func (k *Keystone) cacheFile() string {
	if k.CacheDir == "" {
		return ""
	}
	// The password is part of the key so that a wrong or changed
	// password is never answered from the cache; the directory is 0700.
	h := sha256.Sum256([]byte(strings.Join([]string{k.URL, k.User, k.Password, k.ProjectName, k.ProjectID}, "\x00")))
	return filepath.Join(k.CacheDir, hex.EncodeToString(h[:16])+".json")
}

func (k *Keystone) readCache() (Token, bool) {
	f := k.cacheFile()
	if f == "" {
		return Token{}, false
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return Token{}, false
	}
	var t Token
	if json.Unmarshal(data, &t) != nil {
		return Token{}, false
	}
	return t, true
}

// writeCache stores t with mode 0600; failures only cost a later login.
func (k *Keystone) writeCache(t Token) {
	f := k.cacheFile()
	if f == "" {
		return
	}
	data, err := json.Marshal(t)
	if err != nil || os.MkdirAll(k.CacheDir, 0o700) != nil {
		return
	}
	tmp := f + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		_ = os.Rename(tmp, f)
	}
}

// Forget drops the cached token (after the controller refuses it).
func (k *Keystone) Forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tok = Token{}
	if f := k.cacheFile(); f != "" {
		_ = os.Remove(f)
	}
}
