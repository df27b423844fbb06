package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/images"
)

// noCompute is a Compute the image routes never call.
type noCompute struct{ Compute }

// newImageService is an image service on a fresh SQLite store and
// directory, closed when t ends.
func newImageService(t *testing.T) *images.Service {
	t.Helper()
	tmp := t.TempDir()
	store, err := datastore.OpenSQLite(context.Background(), datastore.NewConfig(filepath.Join(tmp, "db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := images.New(context.Background(), images.NewConfig(filepath.Join(tmp, "images"), store))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestImageRoutes checks the image API is mounted behind the
// Authenticator; the image service's own behaviour is tested in its
// package.
func TestImageRoutes(t *testing.T) {
	svc := newImageService(t)
	h, err := New(Config{Compute: noCompute{}, Store: datastore.NewMemory(), Auth: tokens, Images: svc})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	do := func(method, path, tok, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("X-Auth-Token", tok)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, tok, body string
		want                    int
	}{
		{http.MethodGet, "/v2/images", "", "", http.StatusUnauthorized},
		{http.MethodGet, "/v2/images", "bogus", "", http.StatusUnauthorized},
		{http.MethodGet, "/v2/images", "tokA", "", http.StatusOK},
		{http.MethodPost, "/v2/images", "tokA", `{"name":"x"}`, http.StatusCreated},
		{http.MethodPost, "/v2/images", "tokA", `{`, http.StatusBadRequest},
		{http.MethodGet, "/v2/images/" + unknown, "admin", "", http.StatusNotFound},
	} {
		if got := do(c.method, c.path, c.tok, c.body); got != c.want {
			t.Errorf("%s %s (token %q): %d, want %d", c.method, c.path, c.tok, got, c.want)
		}
	}
}
