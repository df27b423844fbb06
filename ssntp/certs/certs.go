// Package certs mints and inspects the X.509 certificates with which SSNTP
// peers prove their roles: a self-signed trust anchor (in ciao also the
// scheduler's own certificate) and leaves signed directly by it, in the
// profile the 2016 ciao-cert produced, so that original peers accept them
// (ssntp.md §3.2–3.4). Everything works on PEM bytes in memory, so tests mint
// fresh certificates instead of shipping fixtures that expire.
//
// A certificate file holds the CERTIFICATE block followed by the private key
// block ("EC PRIVATE KEY" SEC1 or "RSA PRIVATE KEY" PKCS#1), which is what
// tls.X509KeyPair(b, b) and the original peers load.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ssntp"
)

// Defaults applied to zero fields of a Template.
const (
	DefaultEmail    = "ciao-devel@lists.clearlinux.org"
	DefaultRSABits  = 2048
	DefaultValidity = 365 * 24 * time.Hour

	// MinRSABits is the smallest RSA key accepted; shorter keys are
	// breakable and recent Go releases refuse to generate them anyway.
	MinRSABits = 2048
)

// clockSkew backdates the default NotBefore, because a certificate minted on
// one machine is often presented within seconds to a peer whose clock is a
// little behind, and "certificate is not yet valid" is a confusing failure.
const clockSkew = 5 * time.Minute

// allRoles is every role bit that has an OID; other bits cannot be proven by
// a certificate.
const allRoles = ssntp.SERVER | ssntp.Controller | ssntp.AGENT | ssntp.SCHEDULER | ssntp.NETAGENT | ssntp.CNCIAGENT

// Sentinel errors; match them with errors.Is.
var (
	ErrInvalidTemplate = errors.New("certs: invalid template")
	ErrUnknownKeyType  = errors.New("certs: unknown key type")
	ErrNoCertificate   = errors.New("certs: no CERTIFICATE block")
	ErrNoPrivateKey    = errors.New("certs: no private key block")
	ErrKeyMismatch     = errors.New("certs: private key does not match the certificate")
	ErrNotCA           = errors.New("certs: certificate is not a CA (CA:TRUE)")
)

// KeyType selects the key algorithm of a new certificate. The signature
// algorithm follows the signing key: ECDSA-SHA256 for P-256, ECDSA-SHA512
// for P-521, SHA256-RSA for RSA.
type KeyType int

// Key types. The zero value is ECDSA P-256, because the key dominates the
// cost of an SSNTP connection set-up and P-256 is the cheapest to handshake.
const (
	KeyECDSAP256 KeyType = iota // ECDSA on NIST P-256 (default)
	KeyRSA                      // RSA, Template.RSABits long
	KeyECDSAP521                // ECDSA on NIST P-521, the original's -elliptic-key
)

var keyTypeNames = []string{
	KeyECDSAP256: "ecdsa",
	KeyRSA:       "rsa",
	KeyECDSAP521: "p521",
}

// String returns the name ParseKeyType accepts.
func (k KeyType) String() string {
	if k >= 0 && int(k) < len(keyTypeNames) {
		return keyTypeNames[k]
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// ParseKeyType parses "ecdsa" (alias "p256"), "rsa" or "p521".
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "ecdsa", "p256":
		return KeyECDSAP256, nil
	case "rsa":
		return KeyRSA, nil
	case "p521":
		return KeyECDSAP521, nil
	}
	return 0, fmt.Errorf("%w %q (want ecdsa, rsa or p521)", ErrUnknownKeyType, s)
}

// Template describes a certificate to mint. The zero value is usable: every
// zero field takes the default documented on it.
type Template struct {
	// Hosts are the names the peer is reached by. Entries that parse as IP
	// addresses become IP SANs, the others DNS SANs; empty entries are
	// skipped. A server certificate needs the name clients dial.
	Hosts []string
	// IPs are added to the IP SANs.
	IPs []net.IP
	// Email is the single rfc822Name SAN; empty means DefaultEmail.
	Email string
	// Organization is the subject's only attribute, O=<Organization>. It
	// is emitted even when empty, as the original did.
	Organization string
	// Roles are proven by one private EKU OID per bit. Zero is allowed
	// (an anchor that is not a scheduler, or a deliberately role-less
	// test certificate).
	Roles ssntp.Role
	// KeyType of the new key; the zero value is ECDSA P-256.
	KeyType KeyType
	// RSABits is the RSA modulus size for KeyRSA; zero means
	// DefaultRSABits.
	RSABits int
	// Validity is how long the certificate lasts from its creation; zero
	// means DefaultValidity.
	Validity time.Duration
	// NotBefore, if set, starts the validity period there and NotAfter is
	// NotBefore+Validity. Zero means now minus a few minutes, to tolerate
	// clock skew between peers.
	NotBefore time.Time
}

// Validate reports the first field that cannot produce a certificate.
func (t Template) Validate() error {
	if t.KeyType < 0 || int(t.KeyType) >= len(keyTypeNames) {
		return fmt.Errorf("%w: key type %d", ErrInvalidTemplate, int(t.KeyType))
	}
	if t.RSABits != 0 && t.RSABits < MinRSABits {
		return fmt.Errorf("%w: RSA key of %d bits is below %d", ErrInvalidTemplate, t.RSABits, MinRSABits)
	}
	if t.Validity < 0 {
		return fmt.Errorf("%w: negative validity %v", ErrInvalidTemplate, t.Validity)
	}
	if extra := t.Roles &^ allRoles; extra != 0 {
		return fmt.Errorf("%w: role bits %#x have no OID", ErrInvalidTemplate, uint32(extra))
	}
	for i, ip := range t.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return fmt.Errorf("%w: IPs[%d] is not an IP address", ErrInvalidTemplate, i)
		}
	}
	return nil
}

// certificate returns the x509 template for t, which must be valid.
func (t Template) certificate(isCA bool, now time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	validity := t.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	notBefore, notAfter := t.NotBefore, t.NotBefore.Add(validity)
	if notBefore.IsZero() {
		notBefore, notAfter = now.Add(-clockSkew), now.Add(validity)
	}
	email := t.Email
	if email == "" {
		email = DefaultEmail
	}

	c := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{t.Organization}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		// keyCertSign on leaves too: the 2016 profile (DER 03 02 02 A4)
		// put the same KeyUsage on every certificate.
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		// anyExtendedKeyUsage keeps the TLS stacks' serverAuth/clientAuth
		// checks happy; the private OIDs that follow carry the roles.
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		UnknownExtKeyUsage: t.Roles.OIDs(),
		EmailAddresses:     []string{email},
	}
	for _, h := range t.Hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			c.IPAddresses = appendIP(c.IPAddresses, ip)
		} else {
			c.DNSNames = append(c.DNSNames, h)
		}
	}
	for _, ip := range t.IPs {
		c.IPAddresses = appendIP(c.IPAddresses, ip)
	}
	return c, nil
}

// appendIP adds ip unless it is already listed, so "-host 10.0.0.1 -ip
// 10.0.0.1" does not produce a duplicate SAN.
func appendIP(ips []net.IP, ip net.IP) []net.IP {
	for _, have := range ips {
		if have.Equal(ip) {
			return ips
		}
	}
	return append(ips, ip)
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newSerial draws uniformly from [0, 2^128) as the original did, but redraws
// zero, which RFC 5280 forbids and which is drawn with probability 2^-128.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// keyID derives a key identifier from the subjectPublicKey bits by RFC 7093
// method 1 (SHA-256 truncated to 160 bits), so that anchors and leaves get
// identifiers made the same way whatever Go release minted them.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key identifier: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("key identifier: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

func generateKey(t Template) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch t.KeyType {
	case KeyECDSAP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP521:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case KeyRSA:
		bits := t.RSABits
		if bits == 0 {
			bits = DefaultRSABits
		}
		k, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("%w %d", ErrUnknownKeyType, int(t.KeyType))
	}
	if err != nil {
		return nil, fmt.Errorf("generate %v key: %w", t.KeyType, err)
	}
	return k, nil
}

// signatureAlgorithm pins the algorithm the 2016 profile used for each
// signing key, rather than leaving it to the defaults of the Go release.
func signatureAlgorithm(signer crypto.Signer) x509.SignatureAlgorithm {
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P384():
			return x509.ECDSAWithSHA384
		case elliptic.P521():
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	}
	return x509.UnknownSignatureAlgorithm
}

func marshalKey(k crypto.Signer) (*pem.Block, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("marshal key: %w", err)
		}
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}, nil
	case *rsa.PrivateKey:
		return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}, nil
	}
	return nil, fmt.Errorf("marshal key: unsupported key %T", k)
}

// encode returns the certificate block followed, if key is not nil, by the
// key block.
func encode(der []byte, key crypto.Signer) ([]byte, error) {
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	if key == nil {
		return buf.Bytes(), nil
	}
	blk, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(&buf, blk); err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return buf.Bytes(), nil
}

// mint generates a key, signs a certificate for it and returns the DER and
// the key. A nil parent means self-signed.
func mint(t Template, isCA bool, parent *x509.Certificate, parentKey crypto.Signer) ([]byte, crypto.Signer, error) {
	if err := t.Validate(); err != nil {
		return nil, nil, err
	}
	key, err := generateKey(t)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := t.certificate(isCA, time.Now())
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SubjectKeyId, err = keyID(key.Public()); err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	} else {
		// Go leaves out the AuthorityKeyId when issuer and subject names
		// are equal, which this profile makes them (both just O=<org>).
		// Without it, and the leaf's own SubjectKeyId, openssl takes the
		// leaf for self-signed and cannot verify or show the chain.
		tmpl.AuthorityKeyId = parent.SubjectKeyId
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(parentKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	return der, key, nil
}

// CreateAnchor mints a self-signed CA:TRUE certificate, the trust anchor of
// a ciao cluster. In ciao the anchor is also the scheduler's own
// certificate, so give it Roles SCHEDULER and the scheduler's Hosts.
// certPEM holds the certificate alone (the CA file every peer trusts);
// certAndKeyPEM holds the same certificate followed by its private key.
func CreateAnchor(t Template) (certPEM, certAndKeyPEM []byte, err error) {
	der, key, err := mint(t, true, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("create anchor: %w", err)
	}
	if certPEM, err = encode(der, nil); err != nil {
		return nil, nil, fmt.Errorf("create anchor: %w", err)
	}
	if certAndKeyPEM, err = encode(der, key); err != nil {
		return nil, nil, fmt.Errorf("create anchor: %w", err)
	}
	return certPEM, certAndKeyPEM, nil
}

// Anchor is a parsed trust anchor with its signing key. Parse it once to
// mint many leaves.
type Anchor struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// ParseAnchor parses a certificate-and-key PEM produced by CreateAnchor (or
// the original ciao-cert -server). The certificate must be a CA and the key
// must match it, since otherwise every leaf it signs would fail
// verification later, far from the cause.
func ParseAnchor(certAndKeyPEM []byte) (*Anchor, error) {
	cert, key, err := ParseCertAndKey(certAndKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse anchor: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("parse anchor: %w", ErrNotCA)
	}
	return &Anchor{Cert: cert, Key: key}, nil
}

// LoadAnchor reads and parses an anchor certificate-and-key file.
func LoadAnchor(path string) (*Anchor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load anchor: %w", err)
	}
	a, err := ParseAnchor(b)
	if err != nil {
		return nil, fmt.Errorf("load anchor %s: %w", path, err)
	}
	return a, nil
}

// CertPEM returns the anchor certificate alone, the content of the CA file.
func (a *Anchor) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Cert.Raw})
}

// CreateCert mints a CA:FALSE leaf signed by the anchor's key, with the
// anchor's subject as issuer, and returns its certificate-and-key PEM.
func (a *Anchor) CreateCert(t Template) ([]byte, error) {
	der, key, err := mint(t, false, a.Cert, a.Key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	out, err := encode(der, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return out, nil
}

// CreateCert mints a leaf signed by the anchor in anchorCertAndKeyPEM; see
// Anchor.CreateCert.
func CreateCert(anchorCertAndKeyPEM []byte, t Template) ([]byte, error) {
	a, err := ParseAnchor(anchorCertAndKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return a.CreateCert(t)
}
