package ssntp

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
)

// Defaults of the 2016 protocol.
const (
	DefaultPort           = 8888
	DefaultConnectTimeout = 30 * time.Second // server waits this long for CONNECT
	DefaultWriteTimeout   = 30 * time.Second // every frame write
	// DefaultMaxFrameSize bounds one gob message. SSNTP itself has no limit;
	// the largest real payload (STATS of a full node) is a few hundred KiB.
	DefaultMaxFrameSize = 16 << 20

	// AnyPort as Config.Port makes a server listen on a free port chosen
	// by the system, as tests and benchmarks need.
	AnyPort = -1
)

// Logger is what the library logs through. Daemons pass glog (the default);
// tests route it to t.Log.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
}

type glogLogger struct{}

func (glogLogger) Infof(format string, args ...any) {
	if glog.V(2) {
		glog.InfoDepth(1, fmt.Sprintf(format, args...))
	}
}
func (glogLogger) Warningf(format string, args ...any) {
	glog.WarningDepth(1, fmt.Sprintf(format, args...))
}
func (glogLogger) Errorf(format string, args ...any) {
	glog.ErrorDepth(1, fmt.Sprintf(format, args...))
}

// Config configures a Client or a Server. Build it with NewConfig (or a
// literal), set what you need, and the constructor validates it.
type Config struct {
	// UUID names this endpoint on the wire. Zero means a random one.
	UUID uuid.UUID

	// CAcert is the PEM file of trusted anchors; CACertPEM, if set, is used
	// instead of the file.
	CAcert    string
	CACertPEM []byte
	// Cert is the PEM file holding this endpoint's certificate followed by
	// its private key; CertPEM, if set, is used instead of the file.
	Cert    string
	CertPEM []byte

	// Role is the role advertised in CONNECT (client) or CONNECTED
	// (server). Zero means every role the certificate holds. It must be a
	// subset of the certificate's roles.
	Role Role

	// URI is the server host (client) or the listen host (server; empty =
	// all interfaces). With Transport "unix" it is the socket path.
	URI string
	// Port defaults to 8888 when zero; AnyPort lets a server take any free
	// port (read it back with Server.Addr). Ignored for unix sockets.
	Port int
	// Transport is "tcp" (default) or "unix".
	Transport string
	// ServerName overrides the name a client checks the server's
	// certificate against (default: the host it dialled, "localhost" for
	// unix sockets).
	ServerName string

	// Trace, if set, is applied to every frame sent without an explicit
	// trace.
	Trace *TraceConfig

	// ConnectTimeout bounds the server's wait for CONNECT (TLS handshake
	// included).
	ConnectTimeout time.Duration
	// WriteTimeout bounds each frame write.
	WriteTimeout time.Duration
	// MaxFrameSize bounds each received gob message.
	MaxFrameSize int
	// BackoffUnit scales the client's reconnection delays: a failed pass
	// over the server addresses waits a random whole number of units in
	// [1, M], M cycling 5, 10, 20, 40. Default one second.
	BackoffUnit time.Duration

	// ClusterConfig is the configuration document a server sends in every
	// CONNECTED (and replaces with each CONFIGURE from a Controller).
	ClusterConfig []byte
	// ForwardRules tell a server what to relay between clients.
	ForwardRules []ForwardRule

	// Log receives the library's logs; nil means glog.
	Log Logger
}

func (c *Config) withDefaults() Config {
	cfg := *c
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Transport == "" {
		cfg.Transport = "tcp"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.BackoffUnit == 0 {
		cfg.BackoffUnit = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = glogLogger{}
	}
	if cfg.UUID.IsNil() {
		cfg.UUID = uuid.Generate()
	}
	return cfg
}

// Validate checks what can be checked without touching files.
func (c *Config) Validate() error {
	if c.CAcert == "" && len(c.CACertPEM) == 0 {
		return errors.New("ssntp: config: no CA certificate (CAcert or CACertPEM)")
	}
	if c.Cert == "" && len(c.CertPEM) == 0 {
		return errors.New("ssntp: config: no certificate (Cert or CertPEM)")
	}
	switch c.Transport {
	case "", "tcp", "unix":
	default:
		return fmt.Errorf("ssntp: config: unknown transport %q (want tcp or unix)", c.Transport)
	}
	if c.Port < AnyPort || c.Port > 65535 {
		return fmt.Errorf("ssntp: config: port %d out of range", c.Port)
	}
	if c.MaxFrameSize < 0 {
		return errors.New("ssntp: config: negative MaxFrameSize")
	}
	return nil
}

// address is where a server listens or the first place a client dials.
func (c *Config) address() string {
	if c.Transport == "unix" {
		return c.URI
	}
	port := c.Port
	if port == AnyPort {
		port = 0
	}
	return net.JoinHostPort(c.URI, strconv.Itoa(port))
}

// credentials are the parsed certificates of an endpoint.
type credentials struct {
	pool    *x509.CertPool
	anchors []*x509.Certificate
	cert    tls.Certificate
	role    Role        // roles of our own certificate
	base    *tls.Config // shared by every connection using these credentials

	mu      sync.Mutex
	clients map[string]*tls.Config // client configs by server name
}

// clientConfig returns the shared client TLS configuration that checks
// the server's certificate against serverName.
func (cr *credentials) clientConfig(serverName string) *tls.Config {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if c, ok := cr.clients[serverName]; ok {
		return c
	}
	if cr.clients == nil {
		cr.clients = make(map[string]*tls.Config)
	}
	c := cr.base.Clone()
	c.ServerName = serverName
	cr.clients[serverName] = c
	return c
}

// credCache shares parsed credentials between endpoints of one process
// that use the same files (a load tool running thousands of clients, a
// daemon that reconnects): parsing is not free, and each parsed copy
// would otherwise stay alive with its connection.
var credCache struct {
	sync.Mutex
	m map[[sha256.Size]byte]*credentials
}

func loadCredentials(c *Config) (*credentials, error) {
	caPEM, certPEM, err := readPEMs(c)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(caPEM)
	h.Write([]byte{0})
	h.Write(certPEM)
	var key [sha256.Size]byte
	h.Sum(key[:0])
	credCache.Lock()
	cr := credCache.m[key]
	credCache.Unlock()
	if cr == nil {
		if cr, err = parseCredentials(caPEM, certPEM); err != nil {
			return nil, err
		}
		credCache.Lock()
		if credCache.m == nil {
			credCache.m = make(map[[sha256.Size]byte]*credentials)
		}
		credCache.m[key] = cr
		credCache.Unlock()
	}
	if c.Role != UNKNOWN && !cr.role.HasRole(c.Role) {
		return nil, fmt.Errorf("%w: configured role %q, certificate has %q", ErrRoleMismatch, c.Role, cr.role)
	}
	return cr, nil
}

func readPEMs(c *Config) (caPEM, certPEM []byte, err error) {
	caPEM = c.CACertPEM
	if len(caPEM) == 0 {
		if caPEM, err = os.ReadFile(c.CAcert); err != nil {
			return nil, nil, fmt.Errorf("ssntp: reading CA certificate: %w", err)
		}
	}
	certPEM = c.CertPEM
	if len(certPEM) == 0 {
		if certPEM, err = os.ReadFile(c.Cert); err != nil {
			return nil, nil, fmt.Errorf("ssntp: reading certificate: %w", err)
		}
	}
	return caPEM, certPEM, nil
}

func parseCredentials(caPEM, certPEM []byte) (*credentials, error) {
	cr := &credentials{pool: x509.NewCertPool()}
	for rest := caPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ssntp: parsing CA certificate: %w", err)
		}
		cr.pool.AddCert(ca)
		cr.anchors = append(cr.anchors, ca)
	}
	if len(cr.anchors) == 0 {
		return nil, errors.New("ssntp: CA file holds no certificate")
	}
	// The certificate file holds the certificate and then its key; the
	// standard loader skips the blocks it does not want.
	cert, err := tls.X509KeyPair(certPEM, certPEM)
	if err != nil {
		return nil, fmt.Errorf("ssntp: loading certificate and key: %w", err)
	}
	cr.cert = cert
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("ssntp: parsing certificate: %w", err)
		}
	}
	cr.role = RoleFromCert(leaf)
	if cr.role == UNKNOWN {
		return nil, errors.New("ssntp: certificate holds no SSNTP role")
	}
	cr.base = cr.tlsConfig()
	return cr, nil
}

// tlsConfig is shared by both ends. TLS 1.2 is the floor: the 2016 peers
// negotiate 1.2, new peers get 1.3. X25519 first keeps the handshake cheap.
func (cr *credentials) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates:     []tls.Certificate{cr.cert},
		RootCAs:          cr.pool,
		ClientCAs:        cr.pool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		MinVersion:       tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
}

// peerRole returns the roles proven by the peer's leaf certificate.
func peerRole(cs tls.ConnectionState) Role {
	if len(cs.PeerCertificates) == 0 {
		return UNKNOWN
	}
	return RoleFromCert(cs.PeerCertificates[0])
}
