package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/identity"
)

// identityConfig selects and configures authentication. Without -tokens
// the controller serves its own Keystone v3 subset (package identity) on
// the compute port under /v3, backed by the datastore.
type identityConfig struct {
	TokenTTL  time.Duration // lifetime of issued tokens
	CacheTTL  time.Duration // how long a validated token is trusted (built-in and external)
	PublicURL string        // catalog base URL ("" = from each request)
	ImageURL  string        // catalog image endpoint ("" = none)

	// External Keystone instead of the built-in identity.
	RemoteURL, RemoteUser, RemotePassword, RemoteProject string

	// Bootstrap mode: create or update one user, then exit.
	CreateUser string
	Password   string // "-" = first line of stdin
	Project    string
	Role       string
}

const identityUsage = `
Identity: unless -tokens or -identity-url is given, the controller is its
own identity service (Keystone v3 subset at <compute URL>/v3, users and
tokens in the database). Create the first admin once, before or while
the daemon runs:

  ciao-controller -database DB -create-user admin -password - -project admin -role admin

("-password -" reads the password from stdin, keeping it out of ps and the
shell history). A token scoped to project "admin" or "service" with role
"admin" is an admin token; other users get a role such as "member" on
their own project. Running -create-user again for an existing user resets
the password and adds the role. Then point clients at it:

  export OS_AUTH_URL=https://<host>:8774/v3 OS_USERNAME=admin OS_PASSWORD=...
  export OS_PROJECT_NAME=admin OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default
`

func (c *identityConfig) register(fs *flag.FlagSet) {
	c.TokenTTL = identity.DefaultTokenTTL
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "lifetime of tokens issued by the built-in identity")
	c.CacheTTL = identity.DefaultCacheTTL
	fs.DurationVar(&c.CacheTTL, "token-cache-ttl", c.CacheTTL, "how long a validated token is trusted before the built-in identity's store or the external Keystone is asked again (never past the token's expiry; a revocation elsewhere is seen within this time; 0: ask on every request)")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL of the compute API put in the identity catalog, e.g. https://ctl:8774 (default: the URL the client used)")
	fs.StringVar(&c.ImageURL, "catalog-image-url", "", "image service endpoint put in the identity catalog (empty: the compute API's base URL when -image-dir is set, else none)")
	fs.StringVar(&c.RemoteURL, "identity-url", "", "validate tokens against this external Keystone instead of the built-in identity")
	fs.StringVar(&c.RemoteUser, "identity-user", "csr", "with -identity-url: service user (domain default)")
	fs.StringVar(&c.RemotePassword, "identity-password", "", "with -identity-url: service user's password")
	fs.StringVar(&c.RemoteProject, "identity-project", "service", "with -identity-url: service project (domain default)")
	fs.StringVar(&c.CreateUser, "create-user", "", "create or update this built-in identity user in -database, then exit (see below)")
	fs.StringVar(&c.Password, "password", "", "with -create-user: the password, or - to read it from stdin")
	fs.StringVar(&c.Project, "project", "", "with -create-user: project to grant the role on (created if missing)")
	fs.StringVar(&c.Role, "role", "member", "with -create-user: role name (admin or member)")
	prev := fs.Usage
	fs.Usage = func() {
		if prev != nil {
			prev()
		} else {
			fs.PrintDefaults()
		}
		fmt.Fprint(fs.Output(), identityUsage)
	}
}

// validate checks the identity flags.
func (c identityConfig) validate() error {
	if c.TokenTTL <= 0 {
		return errors.New("-token-ttl must be > 0")
	}
	if c.CacheTTL < 0 {
		return errors.New("-token-cache-ttl must be >= 0")
	}
	if c.RemoteURL != "" && c.RemotePassword == "" {
		return errors.New("-identity-url needs -identity-password")
	}
	if c.CreateUser != "" && (c.Password == "" || c.Project == "" || c.Role == "") {
		return errors.New("-create-user needs -password, -project and -role")
	}
	return nil
}

// createUser runs the -create-user mode against the database.
func createUser(ctx context.Context, database string, c identityConfig, stdin io.Reader) error {
	pw := c.Password
	if pw == "-" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	store, err := datastore.OpenSQLite(ctx, datastore.NewConfig(database))
	if err != nil {
		return fmt.Errorf("open datastore: %w", err)
	}
	defer store.Close()
	if err := identity.Bootstrap(ctx, store, c.CreateUser, pw, c.Project, c.Role, 0); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "user %s has role %s on project %s\n", c.CreateUser, c.Role, c.Project)
	return nil
}

// newAuth returns the Authenticator and a wrapper that adds the /v3
// routes to the compute handler (identity only; identity for static
// tokens and an external Keystone).
func newAuth(cfg config, store *datastore.SQLite) (api.Authenticator, func(http.Handler) http.Handler, error) {
	if cfg.tokens != nil {
		return cfg.tokens, func(h http.Handler) http.Handler { return h }, nil
	}
	if cfg.TokensFile != "" {
		t, err := loadTokens(cfg.TokensFile)
		return t, func(h http.Handler) http.Handler { return h }, err
	}
	if r := cfg.Identity; r.RemoteURL != "" {
		rem, err := identity.NewRemote(identity.RemoteConfig{URL: r.RemoteURL, User: r.RemoteUser,
			Password: r.RemotePassword, Project: r.RemoteProject, CacheTTL: r.CacheTTL})
		return rem, func(h http.Handler) http.Handler { return h }, err
	}
	ic := identity.NewConfig(store)
	ic.TokenTTL, ic.PublicURL, ic.ImageURL = cfg.Identity.TokenTTL, cfg.Identity.PublicURL, cfg.Identity.ImageURL
	ic.CacheTTL = cfg.Identity.CacheTTL
	ic.ImageOnBase = cfg.ImageDir != "" // the image API is on the compute port
	svc, err := identity.New(ic)
	if err != nil {
		return nil, nil, err
	}
	return svc, svc.Mount, nil
}
