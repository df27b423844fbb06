package devcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

// certHosts are the names in every certificate: the cluster host, the
// loopback names and this machine's host name.
func (c Config) certHosts() []string {
	hosts := []string{c.Host, "localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// roleCerts are the SSNTP certificates signed by the CA, by file name.
var roleCerts = map[string]ssntp.Role{
	"controller": ssntp.Controller,
	"agent":      ssntp.AGENT,
	"netagent":   ssntp.NETAGENT,
	"cnciagent":  ssntp.CNCIAGENT,
}

// writeCerts makes the CA (which is the scheduler's certificate, as in
// 2016), a certificate per role and the HTTPS pair of the API. Existing
// files are kept, so a second run changes nothing.
func (c Config) writeCerts() error {
	dir := c.Path("pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	anchorFile := c.roleCert("scheduler")
	if !exists(anchorFile) || !exists(c.caCert()) {
		ca, anchor, err := certs.CreateAnchor(certs.Template{Hosts: c.certHosts(), Roles: ssntp.SCHEDULER | ssntp.SERVER,
			Organization: "ciao dev cluster"})
		if err != nil {
			return fmt.Errorf("certificates: CA: %w", err)
		}
		if err := os.WriteFile(c.caCert(), ca, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(anchorFile, anchor, 0o600); err != nil {
			return err
		}
	}
	anchor, err := certs.LoadAnchor(anchorFile)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	for name, role := range roleCerts {
		path := c.roleCert(name)
		if exists(path) {
			continue
		}
		pemb, err := anchor.CreateCert(certs.Template{Hosts: c.certHosts(), Roles: role, Organization: "ciao dev cluster"})
		if err != nil {
			return fmt.Errorf("certificates: %s: %w", name, err)
		}
		if err := os.WriteFile(path, pemb, 0o600); err != nil {
			return err
		}
	}
	if exists(c.httpsCert()) && exists(c.httpsKey()) {
		return nil
	}
	cert, key, err := selfSigned(c.certHosts())
	if err != nil {
		return fmt.Errorf("certificates: HTTPS: %w", err)
	}
	if err := os.WriteFile(c.httpsKey(), key, 0o600); err != nil {
		return err
	}
	return os.WriteFile(c.httpsCert(), cert, 0o644)
}

// selfSigned makes the API's certificate: self-signed (clients trust it
// directly through CIAO_CA_CERT_FILE), valid for two years.
func selfSigned(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: hosts[0], Organization: []string{"ciao dev cluster"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// ClusterConfiguration is the configuration.yaml the scheduler hands to
// every client (tooling.md §4).
// network selects the underlay as compute and management network.
func (c Config) ClusterConfiguration(network bool) ([]byte, error) {
	var conf payloads.Configure
	conf.InitDefaults()
	p := &conf.Configure
	p.Scheduler.ConfigStorageURI = c.configFile()
	p.Storage.CephID = "ciao"
	p.Controller.ComputePort = c.APIPort
	p.Controller.HTTPSCACert = c.httpsCert()
	p.Controller.HTTPSKey = c.httpsKey()
	p.Controller.IdentityUser = "controller"
	p.Controller.IdentityPassword = "unused-built-in-identity"
	// The water marks are the launchers' flags; the cluster's limits are
	// off as in the 2016 singlevm.
	p.Launcher.DiskLimit, p.Launcher.MemoryLimit = false, false
	p.Launcher.ComputeNetwork = []string{"127.0.0.0/8"}
	p.Launcher.ManagementNetwork = []string{"127.0.0.0/8"}
	if network {
		p.Launcher.ComputeNetwork = []string{underlayNet()}
		p.Launcher.ManagementNetwork = []string{underlayNet()}
	}
	p.IdentityService.URL = c.APIURL()
	p.ImageService.URL = c.APIURL()
	return yaml.Marshal(&conf)
}

// Credentials of the two identities the dev cluster makes.
type Credentials struct {
	AdminPassword string
	DemoPassword  string
	// AdminProject and DemoProject are the project (tenant) ids, set once
	// the identities exist.
	AdminProject, DemoProject string
}

// loadOrMakeCredentials keeps the passwords of an earlier run (in
// pki/passwords, mode 0600) so that a second run does not change them.
func (c Config) loadOrMakeCredentials() (Credentials, error) {
	path := c.Path("pki", "passwords")
	if b, err := os.ReadFile(path); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			return Credentials{AdminPassword: f[0], DemoPassword: f[1]}, nil
		}
	}
	cr := Credentials{AdminPassword: randomHex(12), DemoPassword: randomHex(12)}
	if err := os.WriteFile(path, []byte(cr.AdminPassword+" "+cr.DemoPassword+"\n"), 0o600); err != nil {
		return cr, err
	}
	return cr, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// EnvFile is the shell file that sets ciao-cli's environment for a user of
// the cluster: admin.env (cloud admin) or demo.env (the demo tenant).
func (c Config) EnvFile(user string) string { return c.Path(user + ".env") }

// cliEnv is ciao-cli's environment for user with password.
//
// The tenant is given by id: ciao-cli scopes a login by project name to
// domain name "default", which the controller's identity (domain name
// "Default", id "default") refuses with 401.
func (c Config) cliEnv(user, password, project string) []string {
	return []string{
		"CIAO_CONTROLLER=" + c.Host,
		"CIAO_COMPUTEPORT=" + strconv.Itoa(c.APIPort),
		"CIAO_IDENTITY=" + c.APIURL(),
		"CIAO_USERNAME=" + user,
		"CIAO_PASSWORD=" + password,
		"CIAO_TENANT_ID=" + project,
		"CIAO_CA_CERT_FILE=" + c.httpsCert(),
	}
}

// writeEnvFiles writes admin.env and demo.env (mode 0600: they hold
// passwords). Each also puts the cluster's bin/ on PATH.
func (c Config) writeEnvFiles(cr Credentials) error {
	for user, up := range map[string][2]string{"admin": {cr.AdminPassword, cr.AdminProject}, "demo": {cr.DemoPassword, cr.DemoProject}} {
		var b strings.Builder
		fmt.Fprintf(&b, "# ciao-cli environment of %s on the ciao dev cluster (%s)\n", user, c.StateDir)
		for _, kv := range c.cliEnv(user, up[0], up[1]) {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
		}
		fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shellQuote(c.Path("bin")))
		if err := os.WriteFile(c.EnvFile(user), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ReadEnvFile parses an env file written by writeEnvFiles into KEY=value
// pairs (PATH excluded).
func ReadEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "PATH" {
			continue
		}
		v = shellUnquote(v)
		env = append(env, k+"="+v)
	}
	return env, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// copyFile copies src to dst (mode 0644) through a temporary file.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(dst, b, 0o644)
}

// shellQuote quotes s for sh: single quotes, with ' written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellUnquote reverses shellQuote.
func shellUnquote(s string) string {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return s
	}
	return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'")
}
