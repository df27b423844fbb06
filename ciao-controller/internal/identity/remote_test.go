package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
)

// fakeKeystone is an external Keystone for Remote: it logs the service
// user in and validates the tokens of its table, counting validations.
type fakeKeystone struct {
	clock *clock

	mu          sync.Mutex
	tokens      map[string]time.Time // guarded by mu: live token → expiry
	validations int                  // guarded by mu
}

func (k *fakeKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	now := k.clock.Now()
	if r.Method == http.MethodPost {
		w.Header().Set("X-Subject-Token", "service-token")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{"expires_at": now.Add(24 * time.Hour)}})
		return
	}
	k.mu.Lock()
	k.validations++
	exp, ok := k.tokens[r.Header.Get("X-Subject-Token")]
	k.mu.Unlock()
	switch {
	case r.Header.Get("X-Auth-Token") != "service-token":
		w.WriteHeader(http.StatusUnauthorized)
		return
	case !ok || !exp.After(now):
		w.WriteHeader(http.StatusNotFound)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
		"expires_at": exp.Format(timeFormat),
		"project":    map[string]string{"id": "p-" + r.Header.Get("X-Subject-Token"), "name": "demo"},
		"roles":      []map[string]string{{"name": "member"}},
		"catalog":    []map[string]string{{"type": "compute"}},
	}})
}

func (k *fakeKeystone) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.validations
}

func (k *fakeKeystone) set(tok string, exp time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if exp.IsZero() {
		delete(k.tokens, tok)
	} else {
		k.tokens[tok] = exp
	}
}

// TestRemoteCache: Remote answers a token it validated from memory for
// CacheTTL (one validation call, counted by the fake Keystone), never past
// the token's expires_at, asks again after CacheTTL (so a token revoked
// in Keystone is refused then), does not cache refusals, and with
// CacheTTL 0 asks every time.
func TestRemoteCache(t *testing.T) {
	const ttl = 10 * time.Second
	clk := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	k := &fakeKeystone{clock: clk, tokens: map[string]time.Time{}}
	srv := httptest.NewServer(k)
	t.Cleanup(srv.Close)
	newRemote := func(cacheTTL time.Duration) *Remote {
		r, err := NewRemote(RemoteConfig{URL: srv.URL, User: "csr", Password: "pw", Project: "service", Client: srv.Client(),
			CacheTTL: cacheTTL, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := newRemote(ttl)
	ctx := context.Background()
	expect := func(tok string, wantErr bool, wantCalls int) {
		t.Helper()
		id, err := r.Authenticate(ctx, tok)
		switch {
		case wantErr && !errors.Is(err, api.ErrBadToken):
			t.Fatalf("%s at %s: %+v %v, want refused", tok, clk.Now(), id, err)
		case !wantErr && (err != nil || id.TenantID != "p-"+tok || id.Roles[0] != "member"):
			t.Fatalf("%s at %s: %+v %v, want accepted", tok, clk.Now(), id, err)
		}
		if got := k.count(); got != wantCalls {
			t.Fatalf("%s at %s: %d validations, want %d", tok, clk.Now(), got, wantCalls)
		}
	}
	start := clk.Now()
	k.set("long", start.Add(time.Hour))
	k.set("short", start.Add(3*time.Second))

	expect("long", false, 1)
	id, _ := r.Authenticate(ctx, "long")
	id.Roles[0] = "admin" // a caller changing its copy does not change the cache
	expect("long", false, 1)
	expect("short", false, 2)
	expect("unknown", true, 3)
	expect("unknown", true, 4) // refusals are not cached
	k.set("unknown", start.Add(time.Hour))
	expect("unknown", false, 5) // so a new token works at once

	// Within CacheTTL: no call, even for a token revoked in Keystone.
	clk.Add(3*time.Second - time.Nanosecond)
	k.set("long", time.Time{})
	expect("long", false, 5)
	expect("short", false, 5)
	// short's expires_at is exact: refused from that instant.
	clk.Add(time.Nanosecond)
	expect("short", true, 6)
	// After CacheTTL the revoked token is asked about again and refused.
	clk.Add(ttl - 3*time.Second)
	expect("long", true, 7)
	expect("long", true, 8)
	expect("unknown", false, 9) // its entry ran out too: asked again

	// The cache is bounded: full, it starts over.
	r.maxCached = 2
	for _, tok := range []string{"a", "b", "c"} {
		k.set(tok, clk.Now().Add(time.Hour))
	}
	expect("a", false, 10) // {unknown, a}: refused tokens left it
	expect("b", false, 11) // full: {b}
	expect("c", false, 12) // {b, c}
	expect("b", false, 12)
	expect("a", false, 13) // full: {a}
	expect("a", false, 13)

	// CacheTTL 0: every request asks Keystone.
	r = newRemote(0)
	expect("a", false, 14)
	expect("a", false, 15)
	if _, err := NewRemote(RemoteConfig{URL: srv.URL, User: "csr", Password: "pw", Project: "service", CacheTTL: -1}); err == nil {
		t.Error("negative cache TTL accepted")
	}
}
