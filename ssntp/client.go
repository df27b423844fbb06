package ssntp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// ClientNotifier receives what the server sends a client. Methods are
// called on the client's reading goroutine, in wire order.
type ClientNotifier interface {
	ConnectNotify()
	DisconnectNotify()
	StatusNotify(status Status, f *Frame)
	CommandNotify(cmd Command, f *Frame)
	EventNotify(event Event, f *Frame)
	ErrorNotify(err Error, f *Frame)
}

// Client is an SSNTP client. Dial connects it; it then reconnects by
// itself, with the same UUID, whenever the connection drops, until Close.
//
// mu guards conn, serverUUID and clusterConfig. One goroutine (run) owns
// dialling and reading.
type Client struct {
	cfg   Config
	ntf   ClientNotifier
	creds *credentials
	self  Node
	addrs []string

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu            sync.Mutex
	conn          *wireConn
	serverUUID    uuid.UUID
	serverRole    Role
	clusterConfig []byte
	err           error // why the client stopped, if it did by itself
}

// Dial connects to the server and returns once the CONNECT/CONNECTED
// exchange has succeeded. Like the 2016 client it keeps trying, with
// backoff, while no server answers; it gives up on ctx, on Close, or on a
// handshake refusal that retrying cannot fix (a role the certificates do
// not prove).
func Dial(ctx context.Context, cfg Config, ntf ClientNotifier) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ntf == nil {
		return nil, errors.New("ssntp: client needs a notifier")
	}
	c := cfg.withDefaults()
	creds, err := loadCredentials(&c)
	if err != nil {
		return nil, err
	}
	if c.Role == UNKNOWN {
		c.Role = creds.role
	}
	cl := &Client{
		cfg:   c,
		ntf:   ntf,
		creds: creds,
		self:  Node{UUID: c.UUID[:], Role: uint32(c.Role)},
		addrs: serverAddresses(&c, creds.anchors),
		done:  make(chan struct{}),
	}
	cl.ctx, cl.cancel = context.WithCancel(context.Background())

	first := make(chan error, 1)
	go cl.run(first)
	select {
	case err := <-first:
		if err != nil {
			cl.Close()
			return nil, err
		}
		return cl, nil
	case <-ctx.Done():
		cl.Close()
		return nil, ctx.Err()
	}
}

// serverAddresses is the 2016 dial list: the configured host, every IP
// and then DNS name of the CA certificate, and localhost last.
func serverAddresses(c *Config, anchors []*x509.Certificate) []string {
	if c.Transport == "unix" {
		return []string{c.URI}
	}
	port := strconv.Itoa(c.Port)
	var out []string
	seen := map[string]bool{}
	add := func(h string) {
		a := net.JoinHostPort(h, port)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if c.URI != "" {
		add(c.URI)
	}
	for _, a := range anchors {
		for _, ip := range a.IPAddresses {
			add(ip.String())
		}
	}
	for _, a := range anchors {
		for _, n := range a.DNSNames {
			add(n)
		}
	}
	add("localhost")
	return out
}

// UUID is the client's own UUID.
func (cl *Client) UUID() uuid.UUID { return cl.cfg.UUID }

// Role is the role the client advertises.
func (cl *Client) Role() Role { return cl.cfg.Role }

// ServerUUID is the UUID the server gave in its last CONNECTED.
func (cl *Client) ServerUUID() uuid.UUID {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.serverUUID
}

// ClusterConfiguration is the configuration document from the last
// CONNECTED, or from a later CONFIGURE command.
func (cl *Client) ClusterConfiguration() []byte {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.clusterConfig
}

// Done is closed when the client has stopped for good.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err says why a client stopped by itself; nil while running or after
// Close.
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// Close stops reconnecting, gives frames already sent up to a second to
// reach the socket, closes the connection (the protocol has no goodbye)
// and waits for the client's goroutines to end.
func (cl *Client) Close() error {
	cl.cancel()
	cl.mu.Lock()
	if cl.conn != nil {
		if cl.conn.enc != nil {
			cl.conn.drain(time.Second)
		}
		cl.conn.close()
	}
	cl.mu.Unlock()
	<-cl.done
	return nil
}

// errFatal marks handshake outcomes that retrying cannot change.
type errFatal struct{ error }

func (e errFatal) Unwrap() error { return e.error }

// run owns the connection: dial, handshake, read until it breaks, repeat.
func (cl *Client) run(first chan<- error) {
	defer close(cl.done)
	for {
		wc, err := cl.connect()
		if err != nil {
			if first != nil {
				first <- err
			} else if cl.ctx.Err() == nil {
				cl.cfg.Log.Errorf("ssntp: giving up: %v", err)
				cl.mu.Lock()
				cl.err = err
				cl.mu.Unlock()
			}
			return
		}
		if first != nil {
			first <- nil
			first = nil
		}
		cl.ntf.ConnectNotify()
		connected := time.Now()
		cl.readLoop(wc)
		cl.mu.Lock()
		cl.conn = nil
		cl.mu.Unlock()
		wc.close()
		cl.ntf.DisconnectNotify()
		if cl.ctx.Err() != nil {
			return
		}
		// A connection that ends soon after it began was most likely
		// refused by the server (another endpoint with our UUID took our
		// place, say): reconnecting at once would make two such clients
		// evict each other in a tight loop. Otherwise reconnect at once,
		// as the 2016 client does after a server restart.
		if lived := time.Since(connected); lived < 5*cl.cfg.BackoffUnit {
			wait := time.Duration(1+rand.IntN(5)) * cl.cfg.BackoffUnit
			cl.cfg.Log.Warningf("ssntp: connection lasted only %v; reconnecting in %v", lived.Round(time.Millisecond), wait)
			select {
			case <-time.After(wait):
			case <-cl.ctx.Done():
				return
			}
		}
	}
}

// connect dials passes over the address list until a handshake succeeds,
// waiting between failed passes as the 2016 client does.
func (cl *Client) connect() (*wireConn, error) {
	maxDelay := []int{5, 10, 20, 40}
	for pass := 0; ; pass++ {
		var lastErr error
		for _, addr := range cl.addrs {
			if cl.ctx.Err() != nil {
				return nil, ErrClosed
			}
			wc, err := cl.handshakeAside(addr)
			if err == nil {
				return wc, nil
			}
			var fatal errFatal
			if errors.As(err, &fatal) {
				return nil, err
			}
			lastErr = err
			cl.cfg.Log.Infof("ssntp: connecting to %s: %v", addr, err)
		}
		m := maxDelay[pass%len(maxDelay)]
		wait := time.Duration(1+rand.IntN(m)) * cl.cfg.BackoffUnit
		cl.cfg.Log.Warningf("ssntp: no server answered (%v); retrying in %v", lastErr, wait)
		select {
		case <-time.After(wait):
		case <-cl.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// handshakeAside runs the handshake on a short-lived goroutine: its
// cryptography grows the stack far beyond what the long-lived reading
// goroutine needs, and a grown stack stays with its goroutine.
func (cl *Client) handshakeAside(addr string) (*wireConn, error) {
	type result struct {
		wc  *wireConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		wc, err := cl.handshake(addr)
		ch <- result{wc, err}
	}()
	r := <-ch
	return r.wc, r.err
}

func (cl *Client) handshake(addr string) (*wireConn, error) {
	network := "tcp"
	host := cl.cfg.ServerName
	if cl.cfg.Transport == "unix" {
		network = "unix"
		if host == "" {
			host = "localhost"
		}
	} else if host == "" {
		host, _, _ = net.SplitHostPort(addr)
	}
	d := net.Dialer{Timeout: cl.cfg.ConnectTimeout}
	ctx, cancel := context.WithTimeout(cl.ctx, cl.cfg.ConnectTimeout)
	defer cancel()
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cl.creds.clientConfig(host))
	ok := false
	defer func() {
		if !ok {
			tc.Close()
		}
	}()
	// Closing the socket is what interrupts a blocked handshake on Close.
	cl.mu.Lock()
	cl.conn = &wireConn{nc: tc}
	cl.mu.Unlock()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	serverCertRole := peerRole(tc.ConnectionState())
	wc := newWireConn(tc, uint64(cl.cfg.MaxFrameSize), cl.cfg.WriteTimeout, cl.self)
	cl.mu.Lock()
	cl.conn = wc
	cl.mu.Unlock()

	id := cl.cfg.UUID
	connect := &ConnectFrame{
		Major:       Major,
		Minor:       Minor,
		Type:        COMMAND,
		Operand:     uint8(CONNECT),
		Role:        cl.cfg.Role,
		Source:      id[:],
		Destination: uuid.Nil[:],
	}
	if err := wc.encode(connect); err != nil {
		return nil, fmt.Errorf("%w: writing CONNECT: %v", ErrHandshake, err)
	}
	// Nothing more is sent until CONNECTED arrives: a 2016 server reads
	// CONNECT with a throw-away buffered decoder and would swallow it.
	if deadline, ok := ctx.Deadline(); ok {
		_ = tc.SetReadDeadline(deadline)
	}
	var cf ConnectedFrame
	if err := wc.decodeHandshake(&cf); err != nil {
		return nil, fmt.Errorf("%w: reading CONNECTED: %v", ErrHandshake, err)
	}
	_ = tc.SetReadDeadline(time.Time{})
	switch {
	case cf.Type == STATUS && Status(cf.Operand) == CONNECTED:
	case cf.Type == ERROR && Error(cf.Operand) == ConnectionAborted:
		return nil, errFatal{fmt.Errorf("%w: server aborted the connection: our certificate does not prove role %q", ErrRoleMismatch, cl.cfg.Role)}
	case cf.Type == ERROR:
		return nil, fmt.Errorf("%w: server answered %s", ErrHandshake, Error(cf.Operand))
	default:
		return nil, fmt.Errorf("%w: invalid CONNECTED frame (type %s, operand %d)", ErrHandshake, cf.Type, cf.Operand)
	}
	srv, err := uuid.FromBytes(cf.Source)
	if err != nil {
		return nil, fmt.Errorf("%w: CONNECTED source: %v", ErrHandshake, err)
	}
	if !serverCertRole.HasRole(cf.Role) {
		_ = wc.sendError(ConnectionFailure, id)
		return nil, errFatal{fmt.Errorf("%w: server claims role %q, its certificate has %q", ErrRoleMismatch, cf.Role, serverCertRole)}
	}
	cl.mu.Lock()
	cl.serverUUID = srv
	cl.serverRole = cf.Role
	cl.clusterConfig = cf.Payload
	cl.mu.Unlock()
	ok = true
	cl.cfg.Log.Infof("ssntp: connected to %s (%s) as %s", addr, srv, id)
	return wc, nil
}

func (cl *Client) readLoop(wc *wireConn) {
	for {
		f, err := wc.readFrame()
		if err != nil {
			if cl.ctx.Err() == nil {
				if errors.Is(err, io.EOF) {
					cl.cfg.Log.Warningf("ssntp: server closed the connection")
				} else {
					cl.cfg.Log.Warningf("ssntp: connection lost: %v", err)
				}
			}
			return
		}
		switch f.Type {
		case COMMAND:
			if Command(f.Operand) == CONFIGURE {
				cl.mu.Lock()
				cl.clusterConfig = f.Payload
				cl.mu.Unlock()
			}
			cl.ntf.CommandNotify(Command(f.Operand), f)
		case STATUS:
			cl.ntf.StatusNotify(Status(f.Operand), f)
		case EVENT:
			cl.ntf.EventNotify(Event(f.Operand), f)
		case ERROR:
			cl.ntf.ErrorNotify(Error(f.Operand), f)
		default:
			if err := wc.writeFrame(newFrame(ERROR, uint8(InvalidFrameType), cl.cfg.UUID, nil, nil, cl.self)); err != nil {
				cl.cfg.Log.Warningf("ssntp: replying InvalidFrameType: %v", err)
			}
		}
	}
}

func (cl *Client) send(t Type, op uint8, payload []byte, tc *TraceConfig) error {
	if len(payload) > cl.cfg.MaxFrameSize {
		return fmt.Errorf("%w: payload of %d bytes", ErrFrameTooLarge, len(payload))
	}
	cl.mu.Lock()
	wc := cl.conn
	cl.mu.Unlock()
	if wc == nil || wc.enc == nil {
		if cl.ctx.Err() != nil {
			return ErrClosed
		}
		return ErrNotConnected
	}
	if tc == nil {
		tc = cl.cfg.Trace
	}
	return wc.writeFrame(newFrame(t, op, cl.cfg.UUID, payload, tc, cl.self))
}

// SendCommand sends a COMMAND to the server.
func (cl *Client) SendCommand(cmd Command, payload []byte) error {
	return cl.send(COMMAND, uint8(cmd), payload, nil)
}

// SendStatus sends a STATUS to the server.
func (cl *Client) SendStatus(st Status, payload []byte) error {
	return cl.send(STATUS, uint8(st), payload, nil)
}

// SendEvent sends an EVENT to the server.
func (cl *Client) SendEvent(ev Event, payload []byte) error {
	return cl.send(EVENT, uint8(ev), payload, nil)
}

// SendError sends an ERROR to the server.
func (cl *Client) SendError(e Error, payload []byte) error {
	return cl.send(ERROR, uint8(e), payload, nil)
}

// SendTracedCommand sends a COMMAND with the given trace.
func (cl *Client) SendTracedCommand(cmd Command, payload []byte, tc *TraceConfig) error {
	return cl.send(COMMAND, uint8(cmd), payload, tc)
}

// SendTracedStatus sends a STATUS with the given trace.
func (cl *Client) SendTracedStatus(st Status, payload []byte, tc *TraceConfig) error {
	return cl.send(STATUS, uint8(st), payload, tc)
}

// SendTracedEvent sends an EVENT with the given trace.
func (cl *Client) SendTracedEvent(ev Event, payload []byte, tc *TraceConfig) error {
	return cl.send(EVENT, uint8(ev), payload, tc)
}

// SendTracedError sends an ERROR with the given trace.
func (cl *Client) SendTracedError(e Error, payload []byte, tc *TraceConfig) error {
	return cl.send(ERROR, uint8(e), payload, tc)
}

// SendFrame sends an already built frame as is. It exists for tests and
// tools that must put unusual frames on the wire (an unknown type, say).
func (cl *Client) SendFrame(f *Frame) error {
	cl.mu.Lock()
	wc := cl.conn
	cl.mu.Unlock()
	if wc == nil || wc.enc == nil {
		return ErrNotConnected
	}
	return wc.writeFrame(f)
}
