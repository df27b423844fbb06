package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
)

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidOrganization     = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// unhex turns "30 1C 06 …" into bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// extension returns the extension with the given OID, failing if absent.
func extension(t testing.TB, c *x509.Certificate, oid asn1.ObjectIdentifier) (value []byte, critical bool) {
	t.Helper()
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e.Value, e.Critical
		}
	}
	t.Fatalf("certificate has no extension %v", oid)
	return nil, false
}

func mustParse(t testing.TB, pemBytes []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCertificate(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newAnchor(t testing.TB, tmpl Template) (certPEM, certAndKeyPEM []byte) {
	t.Helper()
	certPEM, certAndKeyPEM, err := CreateAnchor(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, certAndKeyPEM
}

func newLeaf(t testing.TB, anchor []byte, tmpl Template) []byte {
	t.Helper()
	b, err := CreateCert(anchor, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEKUDER is conformance check T3: the EKU extension value is
// anyExtendedKeyUsage then the role OIDs in OID order.
func TestEKUDER(t *testing.T) {
	_, anchor := newAnchor(t, Template{Hosts: []string{"localhost"}, Roles: ssntp.SCHEDULER})
	oid := func(n int) string { return "06 09 2B 06 01 04 01 82 57 08 0" + string(rune('0'+n)) }
	cases := []struct {
		name  string
		roles ssntp.Role
		want  string
	}{
		{"T3 agent|netagent", ssntp.AGENT | ssntp.NETAGENT,
			"30 1C 06 04 55 1D 25 00 06 09 2B 06 01 04 01 82 57 08 01 06 09 2B 06 01 04 01 82 57 08 04"},
		{"none", 0, "30 06 06 04 55 1D 25 00"},
		{"scheduler", ssntp.SCHEDULER, "30 11 06 04 55 1D 25 00 " + oid(2)},
		{"server", ssntp.SERVER, "30 11 06 04 55 1D 25 00 " + oid(5)},
		{"cnciagent|controller", ssntp.CNCIAGENT | ssntp.Controller, "30 1C 06 04 55 1D 25 00 " + oid(3) + " " + oid(6)},
		{"all", allRoles, "30 48 06 04 55 1D 25 00 " +
			oid(1) + " " + oid(2) + " " + oid(3) + " " + oid(4) + " " + oid(5) + " " + oid(6)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []*x509.Certificate{
				mustParse(t, newLeaf(t, anchor, Template{Roles: tc.roles})),
				mustParse(t, func() []byte { c, _ := newAnchor(t, Template{Roles: tc.roles}); return c }()),
			} {
				got, critical := extension(t, c, oidExtKeyUsage)
				if want := unhex(t, tc.want); !bytes.Equal(got, want) {
					t.Errorf("CA=%t EKU = % X, want % X", c.IsCA, got, want)
				}
				if critical {
					t.Errorf("CA=%t EKU is critical", c.IsCA)
				}
			}
		})
	}
}

// TestRoleRoundTrip is conformance check T2 through real certificates:
// every role mask, anchors included, comes back from RoleFromCert and from
// Verify.
func TestRoleRoundTrip(t *testing.T) {
	anchorCert, anchor := newAnchor(t, Template{Hosts: []string{"localhost"}, Roles: ssntp.SCHEDULER})
	a, err := ParseAnchor(anchor)
	if err != nil {
		t.Fatal(err)
	}
	for r := ssntp.Role(0); r <= allRoles; r++ {
		t.Run(r.String()+"leaf", func(t *testing.T) {
			leaf, err := a.CreateCert(Template{Roles: r})
			if err != nil {
				t.Fatal(err)
			}
			if got := ssntp.RoleFromCert(mustParse(t, leaf)); got != r {
				t.Errorf("RoleFromCert = %#x, want %#x", got, r)
			}
			got, err := Verify(anchorCert, leaf)
			if err != nil || got != r {
				t.Errorf("Verify = %#x, %v; want %#x", got, err, r)
			}
		})
	}
	for _, r := range []ssntp.Role{0, ssntp.SCHEDULER, ssntp.SCHEDULER | ssntp.SERVER, allRoles} {
		t.Run(r.String()+"anchor", func(t *testing.T) {
			cert, _ := newAnchor(t, Template{Roles: r})
			if got := ssntp.RoleFromCert(mustParse(t, cert)); got != r {
				t.Errorf("RoleFromCert = %#x, want %#x", got, r)
			}
			got, err := Verify(cert, cert)
			if err != nil || got != r {
				t.Errorf("Verify(self) = %#x, %v; want %#x", got, err, r)
			}
		})
	}
}

// TestProfile checks the fields of ssntp.md §3.2 other than the EKU.
func TestProfile(t *testing.T) {
	anchorCert, anchor := newAnchor(t, Template{
		Hosts:        []string{"localhost", "198.51.100.1", " ", "sched.example"},
		IPs:          []net.IP{net.ParseIP("198.51.100.1"), net.ParseIP("2001:db8::1")},
		Organization: "Intel",
		Roles:        ssntp.SCHEDULER,
	})
	leafPEM := newLeaf(t, anchor, Template{Hosts: []string{"node1"}, Organization: "Other", Roles: ssntp.AGENT, Email: "ops@example.com"})
	ca, leaf := mustParse(t, anchorCert), mustParse(t, leafPEM)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)

	cases := []struct {
		name   string
		c      *x509.Certificate
		bc     string
		dns    []string
		ips    []string
		email  string
		org    string
		issuer *x509.Certificate
	}{
		{"anchor", ca, "30 03 01 01 FF", []string{"localhost", "sched.example"},
			[]string{"198.51.100.1", "2001:db8::1"}, DefaultEmail, "Intel", ca},
		{"leaf", leaf, "30 00", []string{"node1"}, nil, "ops@example.com", "Other", ca},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			if c.Version != 3 {
				t.Errorf("version %d", c.Version)
			}
			if ku, crit := extension(t, c, oidKeyUsage); !bytes.Equal(ku, unhex(t, "03 02 02 A4")) || !crit {
				t.Errorf("KeyUsage = % X critical=%t, want 03 02 02 A4 critical", ku, crit)
			}
			if bc, crit := extension(t, c, oidBasicConstraints); !bytes.Equal(bc, unhex(t, tc.bc)) || !crit {
				t.Errorf("BasicConstraints = % X critical=%t, want %s critical", bc, crit, tc.bc)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.Cmp(limit) >= 0 {
				t.Errorf("serial %x outside (0, 2^128)", c.SerialNumber)
			}
			if n := c.Subject.Names; len(n) != 1 || !n[0].Type.Equal(oidOrganization) || n[0].Value != tc.org {
				t.Errorf("subject attributes %v, want only O=%s", n, tc.org)
			}
			if !bytes.Equal(c.RawIssuer, tc.issuer.RawSubject) {
				t.Errorf("issuer %v, want %v", c.Issuer, tc.issuer.Subject)
			}
			if strings.Join(c.DNSNames, ",") != strings.Join(tc.dns, ",") {
				t.Errorf("DNS SANs %q, want %q", c.DNSNames, tc.dns)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if strings.Join(ips, ",") != strings.Join(tc.ips, ",") {
				t.Errorf("IP SANs %q, want %q", ips, tc.ips)
			}
			if len(c.EmailAddresses) != 1 || c.EmailAddresses[0] != tc.email {
				t.Errorf("email SANs %q, want %q", c.EmailAddresses, tc.email)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != DefaultValidity+clockSkew {
				t.Errorf("validity %v, want %v", got, DefaultValidity+clockSkew)
			}
			if skew := time.Since(c.NotBefore); skew < clockSkew-time.Minute || skew > clockSkew+time.Minute {
				t.Errorf("NotBefore %v is %v ago, want about %v", c.NotBefore, skew, clockSkew)
			}
		})
	}
	if ca.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("anchor and leaf share a serial")
	}
	// Key identifiers keep the chain walkable for tools that would take
	// the leaf, whose issuer equals its subject, for self-signed.
	if len(ca.SubjectKeyId) != 20 || len(leaf.SubjectKeyId) != 20 || bytes.Equal(ca.SubjectKeyId, leaf.SubjectKeyId) {
		t.Errorf("SubjectKeyIds anchor % X leaf % X", ca.SubjectKeyId, leaf.SubjectKeyId)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
		t.Errorf("leaf AuthorityKeyId % X, want anchor's SubjectKeyId % X", leaf.AuthorityKeyId, ca.SubjectKeyId)
	}
}

func TestEmptyOrganization(t *testing.T) {
	cert, _ := newAnchor(t, Template{})
	n := mustParse(t, cert).Subject.Names
	if len(n) != 1 || !n[0].Type.Equal(oidOrganization) || n[0].Value != "" {
		t.Errorf("subject %v, want O= (empty)", n)
	}
}

func TestExplicitValidity(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, _ := newAnchor(t, Template{NotBefore: start, Validity: 48 * time.Hour})
	c := mustParse(t, cert)
	if !c.NotBefore.Equal(start) || !c.NotAfter.Equal(start.Add(48*time.Hour)) {
		t.Errorf("validity %v – %v, want %v + 48h", c.NotBefore, c.NotAfter, start)
	}
	if _, err := Verify(cert, cert); err == nil {
		t.Error("Verify accepted a certificate that is not yet valid")
	}
}

func TestKeyTypes(t *testing.T) {
	cases := []struct {
		tmpl    Template
		keyType string
		bits    int
		block   string
		sig     x509.SignatureAlgorithm
	}{
		{Template{}, "ECDSA P-256", 256, "EC PRIVATE KEY", x509.ECDSAWithSHA256},
		{Template{KeyType: KeyECDSAP521}, "ECDSA P-521", 521, "EC PRIVATE KEY", x509.ECDSAWithSHA512},
		{Template{KeyType: KeyRSA}, "RSA", 2048, "RSA PRIVATE KEY", x509.SHA256WithRSA},
		{Template{KeyType: KeyRSA, RSABits: 3072}, "RSA", 3072, "RSA PRIVATE KEY", x509.SHA256WithRSA},
	}
	for _, tc := range cases {
		t.Run(tc.tmpl.KeyType.String()+"-"+tc.keyType, func(t *testing.T) {
			if testing.Short() && tc.bits > 2048 {
				t.Skip("slow RSA key")
			}
			tc.tmpl.Hosts = []string{"localhost"}
			certPEM, anchor := newAnchor(t, tc.tmpl)
			leaf := newLeaf(t, anchor, tc.tmpl)
			for name, b := range map[string][]byte{"anchor": anchor, "leaf": leaf} {
				bl := blocks(b)
				if len(bl) != 2 || bl[0].Type != "CERTIFICATE" || bl[1].Type != tc.block {
					t.Errorf("%s: blocks %v, want CERTIFICATE then %s", name, blockTypes(bl), tc.block)
				}
				if _, err := tls.X509KeyPair(b, b); err != nil {
					t.Errorf("%s: tls.X509KeyPair: %v", name, err)
				}
				in, err := Describe(b)
				if err != nil {
					t.Fatal(err)
				}
				if in.Key != tc.keyType || in.KeyBits != tc.bits || in.SignatureAlgorithm != tc.sig {
					t.Errorf("%s: key %s/%d sig %v, want %s/%d %v", name, in.Key, in.KeyBits, in.SignatureAlgorithm, tc.keyType, tc.bits, tc.sig)
				}
			}
			if bl := blocks(certPEM); len(bl) != 1 || bl[0].Type != "CERTIFICATE" {
				t.Errorf("anchor certPEM blocks %v, want one CERTIFICATE", blockTypes(bl))
			}
		})
	}
}

// TestSignatureFollowsSigner mixes key types: the leaf's signature is
// made by, and named after, the anchor's key.
func TestSignatureFollowsSigner(t *testing.T) {
	_, anchor := newAnchor(t, Template{KeyType: KeyECDSAP521})
	c := mustParse(t, newLeaf(t, anchor, Template{KeyType: KeyRSA}))
	if c.SignatureAlgorithm != x509.ECDSAWithSHA512 || c.PublicKeyAlgorithm != x509.RSA {
		t.Errorf("signature %v key %v, want ECDSA-SHA512 over an RSA key", c.SignatureAlgorithm, c.PublicKeyAlgorithm)
	}
}

func blockTypes(bl []*pem.Block) []string {
	var s []string
	for _, b := range bl {
		s = append(s, b.Type)
	}
	return s
}

func TestErrors(t *testing.T) {
	anchorCert, anchor := newAnchor(t, Template{Roles: ssntp.SCHEDULER})
	leaf := newLeaf(t, anchor, Template{Roles: ssntp.AGENT})
	_, otherAnchor := newAnchor(t, Template{})
	// The anchor's certificate with another anchor's key.
	mismatched := append(append([]byte{}, anchorCert...), otherAnchor[bytes.Index(otherAnchor, []byte("-----BEGIN EC")):]...)

	cases := []struct {
		name   string
		anchor []byte
		tmpl   Template
		want   error
	}{
		{"no key", anchorCert, Template{}, ErrNoPrivateKey},
		{"no certificate", []byte("garbage"), Template{}, ErrNoCertificate},
		{"leaf as anchor", leaf, Template{}, ErrNotCA},
		{"key mismatch", mismatched, Template{}, ErrKeyMismatch},
		{"short RSA", anchor, Template{KeyType: KeyRSA, RSABits: 1024}, ErrInvalidTemplate},
		{"negative validity", anchor, Template{Validity: -time.Hour}, ErrInvalidTemplate},
		{"role without OID", anchor, Template{Roles: 0x40}, ErrInvalidTemplate},
		{"bad key type", anchor, Template{KeyType: 9}, ErrInvalidTemplate},
		{"bad IP", anchor, Template{IPs: []net.IP{{1, 2, 3}}}, ErrInvalidTemplate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CreateCert(tc.anchor, tc.tmpl)
			if !errors.Is(err, tc.want) {
				t.Errorf("CreateCert error %v, want %v", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "create certificate: ") {
				t.Errorf("error %q does not name the step", err)
			}
		})
	}
	if _, _, err := CreateAnchor(Template{Roles: 0x80}); !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("CreateAnchor error %v, want ErrInvalidTemplate", err)
	}
	if _, err := LoadAnchor(t.TempDir() + "/missing.pem"); err == nil {
		t.Error("LoadAnchor of a missing file succeeded")
	}
	if _, err := Verify([]byte("nothing"), leaf); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("Verify with empty anchor: %v, want ErrNoCertificate", err)
	}
	if _, err := Describe(nil); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("Describe(nil): %v, want ErrNoCertificate", err)
	}
}

func TestParseKeyType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want KeyType
		ok   bool
	}{
		{"ecdsa", KeyECDSAP256, true}, {"p256", KeyECDSAP256, true},
		{"rsa", KeyRSA, true}, {"p521", KeyECDSAP521, true},
		{"RSA", 0, false}, {"", 0, false}, {"ed25519", 0, false},
	} {
		got, err := ParseKeyType(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseKeyType(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "p256" && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
		if !tc.ok && !errors.Is(err, ErrUnknownKeyType) {
			t.Errorf("ParseKeyType(%q) error %v, want ErrUnknownKeyType", tc.in, err)
		}
	}
}

func TestVerify(t *testing.T) {
	anchorCert, anchor := newAnchor(t, Template{Roles: ssntp.SCHEDULER})
	otherCert, other := newAnchor(t, Template{Roles: ssntp.SCHEDULER})
	leaf := newLeaf(t, anchor, Template{Roles: ssntp.AGENT | ssntp.NETAGENT})
	expired := newLeaf(t, anchor, Template{NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	foreign := newLeaf(t, other, Template{Roles: ssntp.AGENT})
	both := append(append([]byte{}, otherCert...), anchorCert...)

	cases := []struct {
		name         string
		anchor, cert []byte
		want         ssntp.Role
		ok           bool
	}{
		{"leaf", anchorCert, leaf, ssntp.AGENT | ssntp.NETAGENT, true},
		{"leaf against cert+key file", anchor, leaf, ssntp.AGENT | ssntp.NETAGENT, true},
		{"anchor itself", anchorCert, anchor, ssntp.SCHEDULER, true},
		{"second of two anchors", both, leaf, ssntp.AGENT | ssntp.NETAGENT, true},
		{"other anchor", anchorCert, foreign, 0, false},
		{"other anchor's self", anchorCert, otherCert, 0, false},
		{"expired", anchorCert, expired, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.anchor, tc.cert)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("Verify = %#x, %v; want %#x ok=%t", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	_, anchor := newAnchor(t, Template{Organization: "Intel", Roles: ssntp.SCHEDULER})
	leaf := newLeaf(t, anchor, Template{
		Hosts: []string{"node1", "10.1.2.3"}, Organization: "Intel",
		Roles: ssntp.AGENT | ssntp.NETAGENT,
	})
	in, err := Describe(leaf)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, leaf)
	if in.Subject != "O=Intel" || in.Issuer != "O=Intel" || in.IsCA || !in.HasKey ||
		in.Roles != ssntp.AGENT|ssntp.NETAGENT || in.Serial.Cmp(c.SerialNumber) != 0 ||
		len(in.IPs) != 1 || !in.IPs[0].Equal(net.IPv4(10, 1, 2, 3)) ||
		strings.Join(in.DNSNames, ",") != "node1" || strings.Join(in.Emails, ",") != DefaultEmail {
		t.Errorf("Describe = %+v", in)
	}
	s := in.String()
	for _, want := range []string{
		"Subject:      O=Intel", "CNAgent-NetworkingAgent (0x14)", "ECDSA P-256 (256 bits)",
		"10.1.2.3", "node1", "ECDSA-SHA256", "CA:           false", "Private key:  true",
		strings.ToUpper(hex.EncodeToString(in.Fingerprint[:1])) + ":",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}

	cert, _ := newAnchor(t, Template{})
	in, err = Describe(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !in.IsCA || in.HasKey || in.Roles != 0 || !strings.Contains(in.String(), "Roles:        none (0x00)") {
		t.Errorf("anchor Describe = %+v\n%s", in, in)
	}
}

func TestAnchorCertPEM(t *testing.T) {
	certPEM, anchor := newAnchor(t, Template{})
	a, err := ParseAnchor(anchor)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.CertPEM(), certPEM) {
		t.Error("Anchor.CertPEM differs from CreateAnchor's certPEM")
	}
	if !bytes.HasPrefix(anchor, certPEM) {
		t.Error("cert+key PEM does not start with the same certificate")
	}
}

func BenchmarkCreateCertECDSA(b *testing.B) { benchmarkCreateCert(b, KeyECDSAP256) }
func BenchmarkCreateCertRSA(b *testing.B)   { benchmarkCreateCert(b, KeyRSA) }

func benchmarkCreateCert(b *testing.B, kt KeyType) {
	_, anchorPEM := newAnchor(b, Template{KeyType: kt, Roles: ssntp.SCHEDULER})
	a, err := ParseAnchor(anchorPEM)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := Template{KeyType: kt, Hosts: []string{"localhost"}, Roles: ssntp.AGENT}
	for b.Loop() {
		if _, err := a.CreateCert(tmpl); err != nil {
			b.Fatal(err)
		}
	}
}
