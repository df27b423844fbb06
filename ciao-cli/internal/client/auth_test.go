package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// fakeKeystone answers POST /v3/auth/tokens for user "u" (password "p")
// and lists projects for user id "uid".
func fakeKeystone(t *testing.T, projects string, logins *atomic.Int32) *httptest.Server {
	t.Helper()
	m := http.NewServeMux()
	m.HandleFunc("POST /v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string } `json:"user"`
					} `json:"password"`
				} `json:"identity"`
				Scope *struct {
					Project struct{ ID, Name string } `json:"project"`
				} `json:"scope"`
			} `json:"auth"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("login body: %v", err)
		}
		if u := req.Auth.Identity.Password.User; u.Name != "u" || u.Password != "p" {
			http.Error(w, `{"error":{"code":401,"message":"bad password"}}`, http.StatusUnauthorized)
			return
		}
		logins.Add(1)
		proj := ""
		if s := req.Auth.Scope; s != nil {
			proj = `,"project":{"id":"` + s.Project.ID + `","name":"` + s.Project.Name + `"}`
			if s.Project.ID == "" {
				proj = `,"project":{"id":"id-of-` + s.Project.Name + `","name":"` + s.Project.Name + `"}`
			}
		}
		w.Header().Set("X-Subject-Token", "tok-"+time.Now().Format("150405.000000000"))
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"token":{"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","user":{"id":"uid"}` + proj + `}}`))
	})
	m.HandleFunc("GET /v3/users/uid/projects", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"projects":` + projects + `}`))
	})
	s := httptest.NewServer(m)
	t.Cleanup(s.Close)
	return s
}

func TestKeystoneScopes(t *testing.T) {
	var n atomic.Int32
	ks := fakeKeystone(t, `[{"id":"p1","name":"one"}]`, &n)
	for _, tc := range []struct {
		name, projName, projID, wantID string
		wantLogins                     int32
	}{
		{"by name", "demo", "", "id-of-demo", 1},
		{"by id", "", "p9", "p9", 1},
		{"only project", "", "", "p1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.Store(0)
			k := &Keystone{URL: ks.URL, User: "u", Password: "p", ProjectName: tc.projName, ProjectID: tc.projID}
			tok, err := k.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok.ProjectID != tc.wantID || tok.ID == "" || n.Load() != tc.wantLogins {
				t.Errorf("token %+v after %d logins", tok, n.Load())
			}
			if again, _ := k.Token(t.Context()); again != tok || n.Load() != tc.wantLogins {
				t.Errorf("second Token logged in again")
			}
		})
	}
}

func TestKeystoneErrors(t *testing.T) {
	var n atomic.Int32
	ks := fakeKeystone(t, `[{"id":"p1","name":"one"},{"id":"p2","name":"two"}]`, &n)
	_, err := (&Keystone{URL: ks.URL, User: "u", Password: "p"}).Token(t.Context())
	var amb *AmbiguousProjectError
	if !errors.As(err, &amb) || len(amb.Projects) != 2 {
		t.Errorf("two projects: err = %v", err)
	}
	_, err = (&Keystone{URL: ks.URL, User: "u", Password: "wrong", ProjectID: "p1"}).Token(t.Context())
	if !errors.Is(err, ErrAuth) {
		t.Errorf("wrong password: err = %v", err)
	}
	ks.Close()
	_, err = (&Keystone{URL: ks.URL, User: "u", Password: "p", ProjectID: "p1"}).Token(t.Context())
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("closed: err = %v", err)
	}
}

func TestKeystoneCache(t *testing.T) {
	var n atomic.Int32
	ks := fakeKeystone(t, `[]`, &n)
	dir := t.TempDir()
	now := time.Now()
	mk := func() *Keystone {
		return &Keystone{URL: ks.URL, User: "u", Password: "p", ProjectID: "p1", CacheDir: dir, Now: func() time.Time { return now }}
	}
	t1, err := mk().Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t2, err := mk().Token(t.Context()) // a new process: from the disk cache
	if err != nil || t2 != t1 || n.Load() != 1 {
		t.Errorf("cache: %+v vs %+v, %d logins, %v", t2, t1, n.Load(), err)
	}
	now = now.Add(2 * time.Hour) // expired: log in again
	if _, err := mk().Token(t.Context()); err != nil || n.Load() != 2 {
		t.Errorf("expired: %d logins, %v", n.Load(), err)
	}
	k := mk()
	k.Forget()
	if _, err := k.Token(t.Context()); err != nil || n.Load() != 3 {
		t.Errorf("forget: %d logins, %v", n.Load(), err)
	}
}

// A 401 from the controller makes the client forget a cached token and
// log in once more.
func TestClientRetriesRefusedToken(t *testing.T) {
	var n atomic.Int32
	ks := fakeKeystone(t, `[]`, &n)
	var first atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !first.Swap(true) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"flavors":[{"id":"w","name":"W"}]}`))
	}))
	t.Cleanup(api.Close)
	c, err := New(Config{BaseURL: api.URL + "/v2.1", Tokens: &Keystone{URL: ks.URL, User: "u", Password: "p", ProjectID: "p1"}})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := c.ListFlavors(context.Background(), "p1")
	if err != nil || len(fl) != 1 || n.Load() != 2 {
		t.Errorf("flavors %v, %d logins, %v", fl, n.Load(), err)
	}
}
