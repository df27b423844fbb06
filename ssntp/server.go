package ssntp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// ServerNotifier receives what a server's clients send. Each method is
// called on the reading goroutine of the client's connection, in wire
// order, after forwarding; a slow callback stalls only that client.
type ServerNotifier interface {
	ConnectNotify(id uuid.UUID, role Role)
	DisconnectNotify(id uuid.UUID, role Role)
	StatusNotify(id uuid.UUID, status Status, f *Frame)
	CommandNotify(id uuid.UUID, cmd Command, f *Frame)
	EventNotify(id uuid.UUID, event Event, f *Frame)
	ErrorNotify(id uuid.UUID, err Error, f *Frame)
}

// Server is an SSNTP server: it accepts mutual-TLS clients, checks their
// roles, relays frames by its forwarding rules and lets the application
// address clients by UUID.
//
// mu guards sessions, byRole and clusterConfig. Each session has its own
// goroutine that owns its read side; writers serialise on the session.
type Server struct {
	cfg   Config
	ntf   ServerNotifier
	creds *credentials
	tls   *tls.Config
	self  Node
	rules map[ruleKey]ForwardRule

	ln        net.Listener
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu            sync.RWMutex
	sessions      map[uuid.UUID]*session
	byRole        [6]map[uuid.UUID]*session // one set per role bit
	pending       map[net.Conn]struct{}     // accepted, not yet registered
	clusterConfig []byte
}

type session struct {
	*wireConn
	id   uuid.UUID
	role Role // advertised in CONNECT; what forwarding and notifications use
	// superseded is set when a newer connection took this UUID: the old
	// one then leaves without telling the application.
	superseded atomic.Bool
}

// NewServer checks the configuration and loads the certificates.
func NewServer(cfg Config, ntf ServerNotifier) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ntf == nil {
		return nil, errors.New("ssntp: server needs a notifier")
	}
	c := cfg.withDefaults()
	creds, err := loadCredentials(&c)
	if err != nil {
		return nil, err
	}
	rules, err := buildRules(c.ForwardRules)
	if err != nil {
		return nil, err
	}
	role := c.Role
	if role == UNKNOWN {
		role = creds.role
	}
	c.Role = role
	s := &Server{
		cfg:           c,
		ntf:           ntf,
		creds:         creds,
		tls:           creds.base,
		self:          Node{UUID: c.UUID[:], Role: uint32(creds.role)},
		rules:         rules,
		closed:        make(chan struct{}),
		sessions:      make(map[uuid.UUID]*session),
		pending:       make(map[net.Conn]struct{}),
		clusterConfig: c.ClusterConfig,
	}
	for i := range s.byRole {
		s.byRole[i] = make(map[uuid.UUID]*session)
	}
	return s, nil
}

// UUID is the server's own UUID.
func (s *Server) UUID() uuid.UUID { return s.cfg.UUID }

// Role is the role the server advertises in CONNECTED.
func (s *Server) Role() Role { return s.cfg.Role }

// Listen binds the configured address. Serve then accepts on it.
func (s *Server) Listen() error {
	network := "tcp"
	if s.cfg.Transport == "unix" {
		network = "unix"
		_ = os.Remove(s.cfg.URI) // a stale socket from a crash
	}
	ln, err := net.Listen(network, s.cfg.address())
	if err != nil {
		return fmt.Errorf("ssntp: listen: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address, once Listen has succeeded.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts clients until Close. It returns nil after Close.
func (s *Server) Serve() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of descriptors and the like: back off, keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.cfg.Log.Warningf("ssntp: accept: %v; retrying in %v", err, delay)
				select {
				case <-time.After(delay):
				case <-s.closed:
					return nil
				}
				continue
			}
			return fmt.Errorf("ssntp: accept: %w", err)
		}
		delay = 0
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			nc.Close()
			return nil
		default:
		}
		s.pending[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(nc)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Close stops accepting, closes every client connection (sending nothing,
// as the protocol has no goodbye), waits for every session goroutine to
// finish and calls DisconnectNotify for each client that was registered.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closed)
		if s.ln != nil {
			s.ln.Close()
		}
		for nc := range s.pending {
			nc.Close()
		}
		for _, ss := range s.sessions {
			ss.close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return nil
}

// handle runs the handshake of one client, then hands the connection to a
// new goroutine for its read loop. The TLS handshake's cryptography grows
// a goroutine's stack well beyond what reading needs; starting the long
// lived reader afresh keeps an idle connection's stack small.
func (s *Server) handle(nc net.Conn) {
	defer s.wg.Done()
	ss, err := s.handshake(nc)
	s.mu.Lock()
	delete(s.pending, nc)
	s.mu.Unlock()
	if err != nil {
		s.cfg.Log.Warningf("ssntp: client %s: %v", nc.RemoteAddr(), err)
		nc.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readLoop(ss)
	}()
}

// handshake runs TLS, reads CONNECT, checks it, answers CONNECTED and
// registers the session. On refusal it sends the 2016 error frame (Origin
// nil, as the original) and returns an error; the caller closes.
func (s *Server) handshake(nc net.Conn) (*session, error) {
	tc := tls.Server(nc, s.tls)
	if err := tc.SetDeadline(time.Now().Add(s.cfg.ConnectTimeout)); err != nil {
		return nil, err
	}
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	wc := newWireConn(tc, uint64(s.cfg.MaxFrameSize), s.cfg.WriteTimeout, s.self)
	certRole := peerRole(tc.ConnectionState())

	var cf ConnectFrame
	if err := wc.decodeHandshake(&cf); err != nil {
		_ = wc.sendError(ConnectionFailure, uuid.Nil)
		return nil, fmt.Errorf("%w: reading CONNECT: %v", ErrHandshake, err)
	}
	// Role first, as the original: a role the certificate does not prove
	// aborts, whatever else the frame says. Role 0 proves nothing and would
	// match no rule; refuse it too.
	if cf.Role == UNKNOWN || !certRole.HasRole(cf.Role) {
		_ = wc.sendError(ConnectionAborted, uuid.Nil)
		return nil, fmt.Errorf("%w: CONNECT role %q, certificate has %q", ErrRoleMismatch, cf.Role, certRole)
	}
	if cf.Type != COMMAND || Command(cf.Operand) != CONNECT {
		_ = wc.sendError(ConnectionFailure, uuid.Nil)
		return nil, fmt.Errorf("%w: first frame is %s operand %d, not CONNECT", ErrHandshake, cf.Type, cf.Operand)
	}
	id, err := uuid.FromBytes(cf.Source)
	if err != nil {
		_ = wc.sendError(ConnectionFailure, uuid.Nil)
		return nil, fmt.Errorf("%w: CONNECT source: %v", ErrHandshake, err)
	}
	ss := &session{wireConn: wc, id: id, role: cf.Role}

	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	cc := s.clusterConfig
	old := s.registerLocked(ss)
	s.mu.Unlock()

	if old != nil {
		// The same endpoint reconnected before we noticed its old socket
		// die. Retire the old session quietly; the application sees one
		// disconnect and one connect, in that order.
		old.superseded.Store(true)
		old.close()
		s.cfg.Log.Infof("ssntp: %s reconnected; closing its previous connection", id)
		s.ntf.DisconnectNotify(id, old.role)
	}

	connected := &ConnectedFrame{
		Major:         Major,
		Minor:         Minor,
		Type:          STATUS,
		Operand:       uint8(CONNECTED),
		Role:          s.cfg.Role,
		Source:        s.cfg.UUID[:],
		Destination:   id[:],
		PayloadLength: uint32(len(cc)),
		Payload:       cc,
	}
	if err := wc.encode(connected); err != nil {
		s.unregister(ss)
		return nil, fmt.Errorf("%w: writing CONNECTED: %v", ErrHandshake, err)
	}
	if err := tc.SetReadDeadline(time.Time{}); err != nil {
		s.unregister(ss)
		return nil, err
	}
	s.cfg.Log.Infof("ssntp: %s connected from %s as %q", id, nc.RemoteAddr(), ss.role)
	s.ntf.ConnectNotify(id, ss.role)
	return ss, nil
}

// registerLocked adds ss and returns the session it replaces, if any.
func (s *Server) registerLocked(ss *session) *session {
	old := s.sessions[ss.id]
	if old != nil {
		s.removeLocked(old)
	}
	s.sessions[ss.id] = ss
	for b := ss.role; b != 0; b &= b - 1 {
		if i := bits.TrailingZeros32(uint32(b)); i < len(s.byRole) {
			s.byRole[i][ss.id] = ss
		}
	}
	return old
}

func (s *Server) removeLocked(ss *session) {
	if s.sessions[ss.id] != ss {
		return // already replaced by a newer connection
	}
	delete(s.sessions, ss.id)
	for b := ss.role; b != 0; b &= b - 1 {
		if i := bits.TrailingZeros32(uint32(b)); i < len(s.byRole) {
			delete(s.byRole[i], ss.id)
		}
	}
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	s.removeLocked(ss)
	s.mu.Unlock()
}

func (s *Server) readLoop(ss *session) {
	defer func() {
		s.unregister(ss)
		ss.close()
		if !ss.superseded.Load() {
			s.ntf.DisconnectNotify(ss.id, ss.role)
		}
	}()
	for {
		f, err := ss.readFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.cfg.Log.Warningf("ssntp: %s: dropping connection: %v", ss.id, err)
			} else {
				s.cfg.Log.Infof("ssntp: %s disconnected", ss.id)
			}
			return
		}
		s.dispatch(ss, f)
	}
}

func (s *Server) dispatch(ss *session, f *Frame) {
	if f.Type > EVENT {
		// Answer with our own UUID as the origin, as the 2016 server does.
		if err := ss.writeFrame(newFrame(ERROR, uint8(InvalidFrameType), s.cfg.UUID, nil, nil, s.self)); err != nil {
			s.cfg.Log.Warningf("ssntp: %s: replying InvalidFrameType: %v", ss.id, err)
		}
		return
	}
	if f.Type == COMMAND && Command(f.Operand) == CONFIGURE && ss.role.HasRole(Controller) {
		s.mu.Lock()
		s.clusterConfig = append([]byte(nil), f.Payload...)
		s.mu.Unlock()
	}
	if rule, ok := s.rules[ruleKey{f.Type, f.Operand}]; ok {
		s.forward(ss, rule, f)
	}
	switch f.Type {
	case COMMAND:
		s.ntf.CommandNotify(ss.id, Command(f.Operand), f)
	case STATUS:
		s.ntf.StatusNotify(ss.id, Status(f.Operand), f)
	case EVENT:
		s.ntf.EventNotify(ss.id, Event(f.Operand), f)
	case ERROR:
		s.ntf.ErrorNotify(ss.id, Error(f.Operand), f)
	}
}

func (s *Server) forward(src *session, rule ForwardRule, f *Frame) {
	var dests []*session
	if rule.Forwarder != nil {
		d := rule.Forwarder(src.id, src.role, f)
		if d.Decision != Forward {
			return
		}
		s.mu.RLock()
		for _, id := range d.Recipients {
			if ss := s.sessions[id]; ss != nil {
				dests = append(dests, ss)
			}
		}
		s.mu.RUnlock()
	} else {
		dests = s.sessionsWithRole(rule.Dest, src)
	}
	for _, d := range dests {
		if err := d.writeFrame(f); err != nil {
			s.cfg.Log.Warningf("ssntp: forwarding %s %s from %s to %s: %v", f.Type, f.OperandString(), src.id, d.id, err)
		}
	}
}

// sessionsWithRole lists every client whose advertised role includes r,
// except skip.
func (s *Server) sessionsWithRole(r Role, skip *session) []*session {
	if r == UNKNOWN {
		return nil
	}
	i := bits.TrailingZeros32(uint32(r))
	if i >= len(s.byRole) {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*session, 0, len(s.byRole[i]))
	for _, ss := range s.byRole[i] {
		if ss != skip && ss.role.HasRole(r) {
			out = append(out, ss)
		}
	}
	return out
}

// ClusterConfiguration is the document currently sent in CONNECTED.
func (s *Server) ClusterConfiguration() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clusterConfig
}

// SetClusterConfiguration replaces the document sent in later CONNECTEDs.
func (s *Server) SetClusterConfiguration(b []byte) {
	s.mu.Lock()
	s.clusterConfig = append([]byte(nil), b...)
	s.mu.Unlock()
}

// Clients returns the UUIDs of the connected clients whose advertised role
// includes r (all clients for UNKNOWN).
func (s *Server) Clients(r Role) []uuid.UUID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []uuid.UUID
	for id, ss := range s.sessions {
		if ss.role.HasRole(r) {
			out = append(out, id)
		}
	}
	return out
}

func (s *Server) send(dest uuid.UUID, t Type, op uint8, payload []byte, tc *TraceConfig) error {
	s.mu.RLock()
	ss := s.sessions[dest]
	s.mu.RUnlock()
	if ss == nil {
		return fmt.Errorf("%w: no client %s", ErrNotConnected, dest)
	}
	if tc == nil {
		tc = s.cfg.Trace
	}
	if len(payload) > s.cfg.MaxFrameSize {
		return fmt.Errorf("%w: payload of %d bytes", ErrFrameTooLarge, len(payload))
	}
	return ss.writeFrame(newFrame(t, op, s.cfg.UUID, payload, tc, s.self))
}

// SendCommand sends a COMMAND to one client.
func (s *Server) SendCommand(dest uuid.UUID, cmd Command, payload []byte) error {
	return s.send(dest, COMMAND, uint8(cmd), payload, nil)
}

// SendStatus sends a STATUS to one client.
func (s *Server) SendStatus(dest uuid.UUID, st Status, payload []byte) error {
	return s.send(dest, STATUS, uint8(st), payload, nil)
}

// SendEvent sends an EVENT to one client.
func (s *Server) SendEvent(dest uuid.UUID, ev Event, payload []byte) error {
	return s.send(dest, EVENT, uint8(ev), payload, nil)
}

// SendError sends an ERROR to one client.
func (s *Server) SendError(dest uuid.UUID, e Error, payload []byte) error {
	return s.send(dest, ERROR, uint8(e), payload, nil)
}

// SendTracedCommand sends a COMMAND with the given trace.
func (s *Server) SendTracedCommand(dest uuid.UUID, cmd Command, payload []byte, tc *TraceConfig) error {
	return s.send(dest, COMMAND, uint8(cmd), payload, tc)
}

// SendTracedEvent sends an EVENT with the given trace.
func (s *Server) SendTracedEvent(dest uuid.UUID, ev Event, payload []byte, tc *TraceConfig) error {
	return s.send(dest, EVENT, uint8(ev), payload, tc)
}

// SendFrame forwards an existing frame unchanged (origin, payload and
// trace kept) to one client.
func (s *Server) SendFrame(dest uuid.UUID, f *Frame) error {
	s.mu.RLock()
	ss := s.sessions[dest]
	s.mu.RUnlock()
	if ss == nil {
		return fmt.Errorf("%w: no client %s", ErrNotConnected, dest)
	}
	return ss.writeFrame(f)
}
