package testutil

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

// Certs is a trust anchor and certificates for every SSNTP role, made at
// test time (never read from system paths). The anchor is the scheduler's
// own certificate, as in a real cluster.
type Certs struct {
	// CACert is the anchor certificate (PEM, no key).
	CACert []byte
	// AnchorKey is the anchor certificate followed by its key: the
	// scheduler's (and SERVER's) credentials.
	AnchorKey []byte
	// KeyType is the key algorithm of every certificate.
	KeyType certs.KeyType

	mu    sync.Mutex
	roles map[ssntp.Role][]byte
}

var (
	sharedOnce  sync.Once
	sharedCerts *Certs
	sharedErr   error
)

// TestCerts returns the process-wide ECDSA P-256 test certificates for
// host localhost (and 127.0.0.1), creating them on first use. Sharing them
// keeps tests fast; they hold nothing secret.
func TestCerts(tb testing.TB) *Certs {
	tb.Helper()
	sharedOnce.Do(func() {
		sharedCerts, sharedErr = NewCerts(certs.KeyECDSAP256)
	})
	if sharedErr != nil {
		tb.Fatalf("testutil: making test certificates: %v", sharedErr)
	}
	return sharedCerts
}

// NewCerts makes a new anchor (role SCHEDULER|SERVER, host localhost).
func NewCerts(kt certs.KeyType) (*Certs, error) {
	ca, anchor, err := certs.CreateAnchor(certs.Template{
		Hosts:   []string{"localhost", "127.0.0.1"},
		Roles:   ssntp.SCHEDULER | ssntp.SERVER,
		KeyType: kt,
	})
	if err != nil {
		return nil, err
	}
	return &Certs{CACert: ca, AnchorKey: anchor, KeyType: kt, roles: map[ssntp.Role][]byte{}}, nil
}

// Cert returns a certificate-and-key PEM for exactly the given roles,
// signed by the anchor. Roles SCHEDULER and SERVER alone get the anchor's
// own credentials.
func (c *Certs) Cert(tb testing.TB, r ssntp.Role) []byte {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.roles[r]; ok {
		return b
	}
	b, err := certs.CreateCert(c.AnchorKey, certs.Template{
		Hosts:   []string{"localhost", "127.0.0.1"},
		Roles:   r,
		KeyType: c.KeyType,
	})
	if err != nil {
		tb.Fatalf("testutil: certificate for %q: %v", r, err)
	}
	c.roles[r] = b
	return b
}

// Config returns an SSNTP configuration for an endpoint with the given
// certificate roles, logging to tb.
func (c *Certs) Config(tb testing.TB, r ssntp.Role) ssntp.Config {
	tb.Helper()
	cert := c.AnchorKey
	if r != ssntp.SCHEDULER|ssntp.SERVER {
		cert = c.Cert(tb, r)
	}
	return ssntp.Config{
		CACertPEM: c.CACert,
		CertPEM:   cert,
		URI:       "127.0.0.1",
		Log:       Logger(tb),
	}
}

// WriteFiles writes the CA and a certificate for role r into dir and
// returns their paths, for code under test that takes file names.
func (c *Certs) WriteFiles(tb testing.TB, dir string, r ssntp.Role) (caPath, certPath string) {
	tb.Helper()
	caPath = filepath.Join(dir, "CAcert-localhost.pem")
	certPath = filepath.Join(dir, "cert-"+r.String()+"localhost.pem")
	cert := c.AnchorKey
	if r != ssntp.SCHEDULER|ssntp.SERVER {
		cert = c.Cert(tb, r)
	}
	if err := os.WriteFile(caPath, c.CACert, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certPath, cert, 0o600); err != nil {
		tb.Fatal(err)
	}
	return caPath, certPath
}
