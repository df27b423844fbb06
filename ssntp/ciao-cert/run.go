package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

// config holds the command line as given; resolve checks and interprets it.
type config struct {
	Hosts        string // comma-separated; the first names the files
	IPs          string // comma-separated
	Anchor       bool
	AnchorCert   string
	Roles        string // comma-separated role words
	Email        string
	Organization string
	Directory    string
	Verify       bool
	Dump         string
	KeyType      string
	Elliptic     bool
	RSABits      int
	Validity     string // days, or a time.Duration
}

func newConfig() config {
	return config{
		Email:     certs.DefaultEmail,
		Directory: ".",
		KeyType:   certs.KeyECDSAP256.String(),
		RSABits:   certs.DefaultRSABits,
		Validity:  "365",
	}
}

// job is a resolved config: what to write, where, and signed by what.
type job struct {
	dump       string
	anchor     bool
	anchorCert string
	dir        string
	firstHost  string
	tmpl       certs.Template
	verify     bool
}

// resolve validates the command line and interprets it; every usage error
// surfaces here, before anything is written.
func (c config) resolve() (job, error) {
	if c.Dump != "" {
		return job{dump: c.Dump}, nil
	}
	j := job{anchor: c.Anchor, anchorCert: c.AnchorCert, dir: c.Directory, verify: c.Verify}
	switch {
	case c.Anchor && c.AnchorCert != "":
		return job{}, errors.New("-anchor and -anchor-cert exclude each other: an anchor signs itself")
	case !c.Anchor && c.AnchorCert == "":
		return job{}, errors.New("need -anchor to create the trust anchor, or -anchor-cert FILE to sign with one")
	}

	hosts := splitList(c.Hosts)
	if len(hosts) == 0 {
		return job{}, errors.New("missing -host: at least one host name is required; the first names the files")
	}
	j.firstHost = hosts[0]
	if strings.ContainsAny(j.firstHost, `/\`) {
		return job{}, fmt.Errorf("-host %q cannot name a file", j.firstHost)
	}

	var ips []net.IP
	for _, s := range splitList(c.IPs) {
		ip := net.ParseIP(s)
		if ip == nil {
			return job{}, fmt.Errorf("-ip: %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}

	if strings.TrimSpace(c.Roles) == "" {
		return job{}, errors.New("missing -role: give one or more of agent, scheduler, controller, netagent, server, cnciagent")
	}
	roles, err := ssntp.ParseRoles(c.Roles)
	if err != nil {
		return job{}, fmt.Errorf("-role: %w", err)
	}

	kt, err := certs.ParseKeyType(c.KeyType)
	if err != nil {
		return job{}, fmt.Errorf("-key-type: %w", err)
	}
	if c.Elliptic {
		if kt == certs.KeyRSA {
			return job{}, errors.New("-elliptic-key contradicts -key-type rsa")
		}
		kt = certs.KeyECDSAP521
	}

	validity, err := parseValidity(c.Validity)
	if err != nil {
		return job{}, fmt.Errorf("-validity: %w", err)
	}

	j.tmpl = certs.Template{
		Hosts:        hosts,
		IPs:          ips,
		Email:        c.Email,
		Organization: c.Organization,
		Roles:        roles,
		KeyType:      kt,
		RSABits:      c.RSABits,
		Validity:     validity,
	}
	if err := j.tmpl.Validate(); err != nil {
		return job{}, err
	}
	return j, nil
}

// splitList splits a comma-separated flag value, dropping blank entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseValidity accepts a number of days ("365", "30d") or a Go duration
// ("720h").
func parseValidity(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil {
		d = time.Duration(n) * 24 * time.Hour
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is neither a number of days nor a duration such as 720h", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return d, nil
}

// run carries out the command line; progress goes to out.
func run(cfg config, out io.Writer) error {
	j, err := cfg.resolve()
	if err != nil {
		return err
	}
	switch {
	case j.dump != "":
		return dump(j.dump, out)
	case j.anchor:
		return createAnchor(j, out)
	}
	return createLeaf(j, out)
}

func dump(path string, out io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	in, err := certs.Describe(b)
	if err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	_, err = fmt.Fprintf(out, "%s\n%s", path, in)
	return err
}

// certName is the file holding a certificate and its key; RoleString ends
// with a dash, so "cert-Scheduler-localhost.pem".
func (j job) certName() string {
	return filepath.Join(j.dir, "cert-"+j.tmpl.Roles.String()+j.firstHost+".pem")
}

func createAnchor(j job, out io.Writer) error {
	certPEM, certAndKey, err := certs.CreateAnchor(j.tmpl)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	caName := filepath.Join(j.dir, "CAcert-"+j.firstHost+".pem")
	if err := writeFile(caName, certPEM, 0o644, out); err != nil {
		return err
	}
	name := j.certName()
	if err := writeFile(name, certAndKey, 0o600, out); err != nil {
		return err
	}
	if j.verify {
		return verify(caName, certPEM, name, certAndKey, out)
	}
	return nil
}

func createLeaf(j job, out io.Writer) error {
	anchor, err := certs.LoadAnchor(j.anchorCert)
	if errors.Is(err, certs.ErrNoPrivateKey) {
		return fmt.Errorf("anchor %s has no private key: give the cert-<Roles><host>.pem file written by -anchor, not CAcert-<host>.pem", j.anchorCert)
	}
	if err != nil {
		return err
	}
	leaf, err := anchor.CreateCert(j.tmpl)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	name := j.certName()
	if err := writeFile(name, leaf, 0o600, out); err != nil {
		return err
	}
	if j.verify {
		return verify(j.anchorCert, anchor.CertPEM(), name, leaf, out)
	}
	return nil
}

// verify checks the certificate as written against the anchor certificate,
// the same chain check a peer's TLS stack makes.
func verify(anchorName string, anchorPEM []byte, name string, certPEM []byte, out io.Writer) error {
	roles, err := certs.Verify(anchorPEM, certPEM)
	if err != nil {
		return fmt.Errorf("%s against %s: %w", name, anchorName, err)
	}
	r := strings.TrimSuffix(roles.String(), "-")
	if r == "" {
		r = "none"
	}
	_, err = fmt.Fprintf(out, "%s: verified against %s, roles %s: OK\n", name, anchorName, r)
	return err
}

// writeFile replaces path atomically so that a key file never exists,
// even briefly, with looser permissions than perm, and an interrupted run
// leaves the old file intact.
func writeFile(path string, data []byte, perm os.FileMode, out io.Writer) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".ciao-cert-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = fmt.Fprintf(out, "wrote %s\n", path)
	return err
}
