package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/identity"
)

// TestCreateUser runs the -create-user mode (password from stdin), then
// serves the built-in identity over the same database and logs in.
func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "c.db")
	cfg, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-database", db, "-create-user", "admin", "-password", "-", "-project", "admin", "-role", "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := createUser(ctx, cfg.Database, cfg.Identity, strings.NewReader("s3cret\n")); err != nil {
		t.Fatal(err)
	}
	store, err := datastore.OpenSQLite(ctx, datastore.NewConfig(db))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	u, err := store.UserByName(ctx, identity.DefaultDomainID, "admin")
	if err != nil || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("s3cret")) != nil {
		t.Fatalf("user %+v %v", u, err)
	}

	cfg = newConfig()
	auth, mount, err := newAuth(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mount(http.NotFoundHandler()))
	defer srv.Close()
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"s3cret"}}},` +
		`"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}`
	resp, err := http.Post(srv.URL+"/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if id, err := auth.Authenticate(ctx, resp.Header.Get("X-Subject-Token")); err != nil || !id.IsAdmin() {
		t.Fatalf("authenticate = %+v %v", id, err)
	}
}

func TestHelpMentionsCreateUser(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	if _, err := parseFlags(fs, []string{"-help"}); err != flag.ErrHelp {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "-create-user admin -password - -project admin -role admin") {
		t.Fatalf("help:\n%s", out.String())
	}
}

// TestTokenCacheFlag: -token-cache-ttl reaches the built-in identity and
// the external Keystone client; negative is refused.
func TestTokenCacheFlag(t *testing.T) {
	tls := []string{"-httpscert", "c.pem", "-httpskey", "k.pem"}
	cfg, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), tls)
	if err != nil || cfg.Identity.CacheTTL != identity.DefaultCacheTTL || newConfig().Identity.CacheTTL != identity.DefaultCacheTTL {
		t.Fatalf("default: %v %v", cfg.Identity.CacheTTL, err)
	}
	cfg, err = parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(tls, "-token-cache-ttl", "0", "-identity-url", "https://ks:5000", "-identity-password", "pw"))
	if err != nil || cfg.Identity.CacheTTL != 0 {
		t.Fatalf("0: %v %v", cfg.Identity.CacheTTL, err)
	}
	if _, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(tls, "-token-cache-ttl", "-1s")); err == nil || !strings.Contains(err.Error(), "-token-cache-ttl") {
		t.Fatalf("-1s: %v", err)
	}
	auth, _, err := newAuth(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := auth.(*identity.Remote); !ok {
		t.Fatalf("-identity-url gave %T", auth)
	}
}
