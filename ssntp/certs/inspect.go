package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ssntp"
)

// blocks returns the PEM blocks of b in order; text between blocks is
// ignored, as openssl and crypto/tls do.
func blocks(b []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, blk)
	}
}

func isKeyBlock(blk *pem.Block) bool {
	return blk.Type == "EC PRIVATE KEY" || blk.Type == "RSA PRIVATE KEY" || blk.Type == "PRIVATE KEY"
}

// ParseCertificate returns the first certificate in PEM bytes, which may
// also hold a key.
func ParseCertificate(pemBytes []byte) (*x509.Certificate, error) {
	for _, blk := range blocks(pemBytes) {
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return c, nil
		}
	}
	return nil, ErrNoCertificate
}

// ParseCertAndKey returns the first certificate and the first private key
// in PEM bytes and checks that they belong together. Besides the SEC1 and
// PKCS#1 blocks ciao writes, PKCS#8 "PRIVATE KEY" is accepted, because
// that is what openssl produces today.
func ParseCertAndKey(pemBytes []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := ParseCertificate(pemBytes)
	if err != nil {
		return nil, nil, err
	}
	var keyBlock *pem.Block
	for _, blk := range blocks(pemBytes) {
		if isKeyBlock(blk) {
			keyBlock = blk
			break
		}
	}
	if keyBlock == nil {
		return nil, nil, ErrNoPrivateKey
	}
	key, err := parseKey(keyBlock)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, ErrKeyMismatch
	}
	return cert, key, nil
}

func parseKey(blk *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", blk.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse %s: %T cannot sign", blk.Type, k)
	}
	return s, nil
}

// CertPool returns a pool of every certificate in anchorPEM: all of them
// are trusted, as in the original.
func CertPool(anchorPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for _, blk := range blocks(anchorPEM) {
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse anchor certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, ErrNoCertificate
	}
	return pool, nil
}

// Verify checks that the first certificate in certPEM chains to one in
// anchorPEM and is valid now, accepting it for any use as the TLS stacks
// of SSNTP peers do, and returns the roles it proves. An anchor verifies
// against itself.
func Verify(anchorPEM, certPEM []byte) (ssntp.Role, error) {
	pool, err := CertPool(anchorPEM)
	if err != nil {
		return 0, fmt.Errorf("verify: anchor: %w", err)
	}
	leaf, err := ParseCertificate(certPEM)
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	return ssntp.RoleFromCert(leaf), nil
}

// Info describes a certificate for people and tests.
type Info struct {
	Subject, Issuer     string
	Serial              *big.Int
	NotBefore, NotAfter time.Time
	Key                 string // "ECDSA P-256", "ECDSA P-521", "RSA", …
	KeyBits             int
	IsCA                bool
	DNSNames            []string
	IPs                 []net.IP
	Emails              []string
	Roles               ssntp.Role
	SignatureAlgorithm  x509.SignatureAlgorithm
	Fingerprint         [sha256.Size]byte // SHA-256 of the DER
	// HasKey reports whether the PEM also held a private key block; it
	// is not checked against the certificate.
	HasKey bool
}

// Describe returns the Info of the first certificate in pemBytes.
func Describe(pemBytes []byte) (Info, error) {
	c, err := ParseCertificate(pemBytes)
	if err != nil {
		return Info{}, fmt.Errorf("describe: %w", err)
	}
	in := Info{
		Subject:            c.Subject.String(),
		Issuer:             c.Issuer.String(),
		Serial:             c.SerialNumber,
		NotBefore:          c.NotBefore,
		NotAfter:           c.NotAfter,
		IsCA:               c.BasicConstraintsValid && c.IsCA,
		DNSNames:           c.DNSNames,
		IPs:                c.IPAddresses,
		Emails:             c.EmailAddresses,
		Roles:              ssntp.RoleFromCert(c),
		SignatureAlgorithm: c.SignatureAlgorithm,
		Fingerprint:        sha256.Sum256(c.Raw),
	}
	switch pub := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		in.Key = "ECDSA " + pub.Curve.Params().Name
		in.KeyBits = pub.Curve.Params().BitSize
	case *rsa.PublicKey:
		in.Key = "RSA"
		in.KeyBits = pub.N.BitLen()
	case ed25519.PublicKey:
		in.Key = "Ed25519"
		in.KeyBits = 256
	default:
		in.Key = c.PublicKeyAlgorithm.String()
	}
	for _, blk := range blocks(pemBytes) {
		if isKeyBlock(blk) {
			in.HasKey = true
			break
		}
	}
	return in, nil
}

// String renders the Info as aligned "Field: value" lines.
func (in Info) String() string {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-13s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	roles := strings.TrimSuffix(in.Roles.String(), "-")
	if roles == "" {
		roles = "none"
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	ips := make([]string, len(in.IPs))
	for i, ip := range in.IPs {
		ips[i] = ip.String()
	}
	fp := make([]string, len(in.Fingerprint))
	for i, x := range in.Fingerprint {
		fp[i] = fmt.Sprintf("%02X", x)
	}
	serial := "none"
	if in.Serial != nil {
		serial = fmt.Sprintf("%x", in.Serial)
	}

	line("Subject", "%s", in.Subject)
	line("Issuer", "%s", in.Issuer)
	line("Serial", "%s", serial)
	line("Not before", "%s", in.NotBefore.UTC().Format(time.RFC3339))
	line("Not after", "%s", in.NotAfter.UTC().Format(time.RFC3339))
	line("Key", "%s (%d bits)", in.Key, in.KeyBits)
	line("CA", "%t", in.IsCA)
	line("DNS names", "%s", list(in.DNSNames))
	line("IP addresses", "%s", list(ips))
	line("Emails", "%s", list(in.Emails))
	line("Roles", "%s (0x%02x)", roles, uint32(in.Roles))
	line("Signature", "%s", in.SignatureAlgorithm)
	line("SHA-256", "%s", strings.Join(fp, ":"))
	line("Private key", "%t", in.HasKey)
	return b.String()
}
