package ssntp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// event is one notification seen by a recorder.
type event struct {
	kind string // connect, disconnect, status, command, event, error
	id   uuid.UUID
	role ssntp.Role
	op   uint8
	f    *ssntp.Frame
}

// recorder implements both notifier interfaces and queues what it sees.
type recorder struct{ ch chan event }

func newRecorder() *recorder { return &recorder{ch: make(chan event, 10000)} }

func (r *recorder) ConnectNotify(id uuid.UUID, role ssntp.Role) {
	r.ch <- event{kind: "connect", id: id, role: role}
}
func (r *recorder) DisconnectNotify(id uuid.UUID, role ssntp.Role) {
	r.ch <- event{kind: "disconnect", id: id, role: role}
}
func (r *recorder) StatusNotify(id uuid.UUID, s ssntp.Status, f *ssntp.Frame) {
	r.ch <- event{kind: "status", id: id, op: uint8(s), f: f}
}
func (r *recorder) CommandNotify(id uuid.UUID, c ssntp.Command, f *ssntp.Frame) {
	r.ch <- event{kind: "command", id: id, op: uint8(c), f: f}
}
func (r *recorder) EventNotify(id uuid.UUID, e ssntp.Event, f *ssntp.Frame) {
	r.ch <- event{kind: "event", id: id, op: uint8(e), f: f}
}
func (r *recorder) ErrorNotify(id uuid.UUID, e ssntp.Error, f *ssntp.Frame) {
	r.ch <- event{kind: "error", id: id, op: uint8(e), f: f}
}

// clientRecorder adapts a recorder to ssntp.ClientNotifier.
type clientRecorder struct{ *recorder }

func (c clientRecorder) ConnectNotify()    { c.ch <- event{kind: "connect"} }
func (c clientRecorder) DisconnectNotify() { c.ch <- event{kind: "disconnect"} }
func (c clientRecorder) StatusNotify(s ssntp.Status, f *ssntp.Frame) {
	c.ch <- event{kind: "status", op: uint8(s), f: f}
}
func (c clientRecorder) CommandNotify(cmd ssntp.Command, f *ssntp.Frame) {
	c.ch <- event{kind: "command", op: uint8(cmd), f: f}
}
func (c clientRecorder) EventNotify(e ssntp.Event, f *ssntp.Frame) {
	c.ch <- event{kind: "event", op: uint8(e), f: f}
}
func (c clientRecorder) ErrorNotify(e ssntp.Error, f *ssntp.Frame) {
	c.ch <- event{kind: "error", op: uint8(e), f: f}
}

// next waits for the next notification of the given kind, skipping others.
func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.ch:
			if e.kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s notification within 10s", kind)
		}
	}
}

// none checks that no notification of the kind arrives for a short while.
func (r *recorder) none(t *testing.T, kind string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-r.ch:
			if e.kind == kind {
				t.Fatalf("unexpected %s notification: %+v", kind, e)
			}
		case <-deadline:
			return
		}
	}
}

type testServer struct {
	*ssntp.Server
	rec  *recorder
	port int
}

func startServer(t *testing.T, mutate func(*ssntp.Config)) *testServer {
	t.Helper()
	c := testutil.TestCerts(t)
	cfg := c.Config(t, ssntp.SCHEDULER|ssntp.SERVER)
	cfg.Port = ssntp.AnyPort
	cfg.Role = ssntp.SCHEDULER
	cfg.ConnectTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	rec := newRecorder()
	srv, err := ssntp.NewServer(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	port := 0
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	return &testServer{Server: srv, rec: rec, port: port}
}

func dialClient(t *testing.T, s *testServer, role ssntp.Role, mutate func(*ssntp.Config)) (*ssntp.Client, *recorder) {
	t.Helper()
	cfg := testutil.TestCerts(t).Config(t, role)
	cfg.Port = s.port
	cfg.BackoffUnit = 10 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := ssntp.Dial(ctx, cfg, clientRecorder{rec})
	if err != nil {
		t.Fatalf("Dial as %q: %v", role, err)
	}
	t.Cleanup(func() { cl.Close() })
	rec.next(t, "connect")
	return cl, rec
}

// rawConn is a hand-driven client for sending what a well-behaved client
// never would.
type rawConn struct {
	tc  *tls.Conn
	enc *gob.Encoder
	dec *gob.Decoder
}

func rawDial(t *testing.T, s *testServer, cert []byte) *rawConn {
	t.Helper()
	c := testutil.TestCerts(t)
	pair, err := tls.X509KeyPair(cert, cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CACert)
	tc, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port), &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &rawConn{tc: tc, enc: gob.NewEncoder(tc), dec: gob.NewDecoder(tc)}
}

func (r *rawConn) connect(t *testing.T, cf *ssntp.ConnectFrame) {
	t.Helper()
	if err := r.enc.Encode(cf); err != nil {
		t.Fatal(err)
	}
}

// expectRefusal reads the server's answer: an ERROR frame with op, then EOF.
func (r *rawConn) expectRefusal(t *testing.T, op ssntp.Error) {
	t.Helper()
	_ = r.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f ssntp.ConnectedFrame
	if err := r.dec.Decode(&f); err != nil {
		t.Fatalf("reading refusal: %v", err)
	}
	if f.Type != ssntp.ERROR || ssntp.Error(f.Operand) != op {
		t.Fatalf("got type %s operand %d, want ERROR %d", f.Type, f.Operand, op)
	}
	var more [1]byte
	if n, err := r.tc.Read(more[:]); err == nil {
		t.Fatalf("connection still open after refusal (read %d bytes)", n)
	}
}

func goodConnect(id uuid.UUID, role ssntp.Role) *ssntp.ConnectFrame {
	return &ssntp.ConnectFrame{Minor: 1, Role: role, Source: id[:], Destination: uuid.Nil[:]}
}

// stillServing proves the server keeps serving other clients after a bad
// one.
func stillServing(t *testing.T, s *testServer) {
	t.Helper()
	cl, _ := dialClient(t, s, ssntp.AGENT, nil)
	if err := cl.SendStatus(ssntp.READY, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	for {
		e := s.rec.next(t, "status")
		if e.id == cl.UUID() && string(e.f.Payload) == "still here" {
			return
		}
	}
}

func TestHandshake(t *testing.T) {
	// T10, T13: CONNECTED carries the server role, its UUID, our UUID and
	// the cluster configuration; a subset of the certificate's roles is
	// accepted.
	conf := []byte("configure:\n  scheduler:\n    storage_uri: /etc/ciao/configuration.yaml\n")
	s := startServer(t, func(c *ssntp.Config) { c.ClusterConfig = conf })
	cl, _ := dialClient(t, s, ssntp.AGENT|ssntp.NETAGENT, func(c *ssntp.Config) { c.Role = ssntp.AGENT })
	if cl.ServerUUID() != s.UUID() {
		t.Fatalf("server uuid %s, want %s", cl.ServerUUID(), s.UUID())
	}
	if !bytes.Equal(cl.ClusterConfiguration(), conf) {
		t.Fatalf("cluster configuration %q", cl.ClusterConfiguration())
	}
	e := s.rec.next(t, "connect")
	if e.id != cl.UUID() || e.role != ssntp.AGENT {
		t.Fatalf("server saw %s as %q", e.id, e.role)
	}
	if got := s.Clients(ssntp.AGENT); len(got) != 1 || got[0] != cl.UUID() {
		t.Fatalf("Clients(AGENT) = %v", got)
	}
	if got := s.Clients(ssntp.NETAGENT); len(got) != 0 {
		t.Fatalf("advertised role not used: Clients(NETAGENT) = %v", got)
	}
}

func TestHandshakeRawConnected(t *testing.T) {
	// T10 at the byte level and T14: CONNECT with another version is
	// accepted; CONNECTED has Type 1, Operand 0, Role 0x08, our UUID.
	s := startServer(t, nil)
	r := rawDial(t, s, testutil.TestCerts(t).Cert(t, ssntp.AGENT))
	id := uuid.Generate()
	cf := goodConnect(id, ssntp.AGENT)
	cf.Major, cf.Minor = 5, 9
	r.connect(t, cf)
	var got ssntp.ConnectedFrame
	if err := r.dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Type != ssntp.STATUS || got.Operand != 0 || got.Role != ssntp.SCHEDULER ||
		!bytes.Equal(got.Destination, id[:]) || !bytes.Equal(got.Source, s.UUID().Bytes()) || got.Minor != 1 {
		t.Fatalf("CONNECTED = %+v", got)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	// T11, T12 and the malformed CONNECTs of §7.5: the spec's error, then
	// the connection closes, and the server goes on serving.
	s := startServer(t, nil)
	agentCert := testutil.TestCerts(t).Cert(t, ssntp.AGENT)
	cases := []struct {
		name string
		cf   *ssntp.ConnectFrame
		want ssntp.Error
	}{
		{"role not in certificate", goodConnect(uuid.Generate(), ssntp.Controller), ssntp.ConnectionAborted},
		{"role zero", goodConnect(uuid.Generate(), 0), ssntp.ConnectionAborted},
		{"type STATUS", func() *ssntp.ConnectFrame {
			cf := goodConnect(uuid.Generate(), ssntp.AGENT)
			cf.Type = ssntp.STATUS
			return cf
		}(), ssntp.ConnectionFailure},
		{"operand START", func() *ssntp.ConnectFrame {
			cf := goodConnect(uuid.Generate(), ssntp.AGENT)
			cf.Operand = uint8(ssntp.START)
			return cf
		}(), ssntp.ConnectionFailure},
		{"short source", &ssntp.ConnectFrame{Minor: 1, Role: ssntp.AGENT, Source: []byte{1, 2, 3}}, ssntp.ConnectionFailure},
		{"no source", &ssntp.ConnectFrame{Minor: 1, Role: ssntp.AGENT}, ssntp.ConnectionFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawDial(t, s, agentCert)
			r.connect(t, tc.cf)
			r.expectRefusal(t, tc.want)
		})
	}
	t.Run("garbage before CONNECT", func(t *testing.T) {
		r := rawDial(t, s, agentCert)
		if _, err := r.tc.Write([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		r.expectRefusal(t, ssntp.ConnectionFailure)
	})
	t.Run("frame instead of CONNECT", func(t *testing.T) {
		// A Frame-shaped first message decodes by field names; its role is
		// then 0.
		r := rawDial(t, s, agentCert)
		if err := r.enc.Encode(&ssntp.Frame{Minor: 1, Type: ssntp.STATUS, Operand: 1, Origin: uuid.Generate()}); err != nil {
			t.Fatal(err)
		}
		r.expectRefusal(t, ssntp.ConnectionAborted)
	})
	stillServing(t, s)
}

func TestHandshakeSilentClient(t *testing.T) {
	// T17 with a short timeout: ConnectionFailure, then close.
	s := startServer(t, func(c *ssntp.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	r := rawDial(t, s, testutil.TestCerts(t).Cert(t, ssntp.AGENT))
	start := time.Now()
	r.expectRefusal(t, ssntp.ConnectionFailure)
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("refused after %v, before the timeout", el)
	}
	// An HTTP request is an incomplete gob message: refused at the timeout.
	r = rawDial(t, s, testutil.TestCerts(t).Cert(t, ssntp.AGENT))
	if _, err := r.tc.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r.expectRefusal(t, ssntp.ConnectionFailure)
}

func TestHandshakeTLSRefusals(t *testing.T) {
	// A certificate from another CA, and a plain-TCP client: the
	// connection is closed and the server keeps serving.
	s := startServer(t, nil)
	other, err := testutil.NewCerts(certs.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("other CA", func(t *testing.T) {
		cfg := other.Config(t, ssntp.AGENT)
		cfg.Port = s.port
		cfg.BackoffUnit = time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()}); err == nil {
			t.Fatal("client with a foreign certificate connected")
		}
	})
	t.Run("plain TCP", func(t *testing.T) {
		nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("hello, is this SSNTP?\n")); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(nc); err != nil && !errors.Is(err, net.ErrClosed) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("plain TCP connection left open")
			}
		}
	})
	stillServing(t, s)
}

// fakeServer runs a TLS listener that answers CONNECT with whatever the
// test wants, to check the client's side of the handshake.
func fakeServer(t *testing.T, answer func(r *rawConn, cf *ssntp.ConnectFrame)) int {
	t.Helper()
	c := testutil.TestCerts(t)
	pair, err := tls.X509KeyPair(c.AnchorKey, c.AnchorKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CACert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		tc := nc.(*tls.Conn)
		r := &rawConn{tc: tc, enc: gob.NewEncoder(tc), dec: gob.NewDecoder(tc)}
		var cf ssntp.ConnectFrame
		if err := r.dec.Decode(&cf); err != nil {
			t.Errorf("fake server: %v", err)
			return
		}
		answer(r, &cf)
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestClientChecksServerRole(t *testing.T) {
	// T15: a server claiming a role its certificate lacks gets
	// ConnectionFailure from the client (origin = client UUID), and the
	// client gives up.
	got := make(chan *ssntp.Frame, 1)
	port := fakeServer(t, func(r *rawConn, cf *ssntp.ConnectFrame) {
		srv := uuid.Generate()
		_ = r.enc.Encode(&ssntp.ConnectedFrame{Minor: 1, Type: ssntp.STATUS, Role: ssntp.Controller,
			Source: srv[:], Destination: cf.Source})
		var f ssntp.Frame
		if err := r.dec.Decode(&f); err == nil {
			got <- &f
		}
		close(got)
	})
	cfg := testutil.TestCerts(t).Config(t, ssntp.AGENT)
	cfg.Port = port
	cfg.UUID = uuid.Generate()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()})
	if !errors.Is(err, ssntp.ErrRoleMismatch) {
		t.Fatalf("Dial error %v, want ErrRoleMismatch", err)
	}
	f := <-got
	if f == nil || f.Type != ssntp.ERROR || f.Error() != ssntp.ConnectionFailure || f.Origin != cfg.UUID {
		t.Fatalf("client sent %+v", f)
	}
}

func TestClientWaitsForConnected(t *testing.T) {
	// T16: nothing is sent between CONNECT and CONNECTED.
	quiet := make(chan error, 1)
	port := fakeServer(t, func(r *rawConn, cf *ssntp.ConnectFrame) {
		_ = r.tc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [1]byte
		_, err := r.tc.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			quiet <- nil
		} else {
			quiet <- fmt.Errorf("client sent data before CONNECTED (err %v)", err)
		}
		_ = r.tc.SetReadDeadline(time.Time{})
		srv := uuid.Generate()
		_ = r.enc.Encode(&ssntp.ConnectedFrame{Minor: 1, Type: ssntp.STATUS, Role: ssntp.SCHEDULER,
			Source: srv[:], Destination: cf.Source})
		var f ssntp.Frame
		_ = r.dec.Decode(&f)
	})
	cfg := testutil.TestCerts(t).Config(t, ssntp.AGENT)
	cfg.Port = port
	cfg.Trace = &ssntp.TraceConfig{Label: []byte("x")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := <-quiet; err != nil {
		t.Fatal(err)
	}
	if err := cl.SendStatus(ssntp.READY, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSteadyState(t *testing.T) {
	s := startServer(t, nil)
	cl, crec := dialClient(t, s, ssntp.AGENT, nil)
	t.Run("invalid frame type", func(t *testing.T) {
		// T18: ERROR InvalidFrameType with the server's UUID as origin,
		// and the connection stays up.
		if err := cl.SendFrame(&ssntp.Frame{Minor: 1, Type: 7, Origin: cl.UUID()}); err != nil {
			t.Fatal(err)
		}
		e := crec.next(t, "error")
		if ssntp.Error(e.op) != ssntp.InvalidFrameType || e.f.Origin != s.UUID() || len(e.f.Payload) != 0 {
			t.Fatalf("reply %+v", e.f)
		}
	})
	t.Run("unknown operand", func(t *testing.T) {
		// T19: delivered to the application, no reply.
		if err := cl.SendCommand(42, []byte("?")); err != nil {
			t.Fatal(err)
		}
		e := s.rec.next(t, "command")
		if e.op != 42 || e.id != cl.UUID() {
			t.Fatalf("server saw %+v", e)
		}
		crec.none(t, "error", 100*time.Millisecond)
	})
	t.Run("both directions", func(t *testing.T) {
		for _, k := range []struct {
			kind string
			send func() error
		}{
			{"command", func() error { return s.SendCommand(cl.UUID(), ssntp.START, []byte("start: {}")) }},
			{"status", func() error { return s.SendStatus(cl.UUID(), ssntp.READY, []byte("s")) }},
			{"event", func() error { return s.SendEvent(cl.UUID(), ssntp.TenantAdded, []byte("e")) }},
			{"error", func() error { return s.SendError(cl.UUID(), ssntp.StartFailure, []byte("x")) }},
		} {
			if err := k.send(); err != nil {
				t.Fatal(err)
			}
			if e := crec.next(t, k.kind); e.f.Origin != s.UUID() {
				t.Fatalf("%s origin %s", k.kind, e.f.Origin)
			}
		}
		for _, k := range []struct {
			kind string
			send func() error
		}{
			{"command", func() error { return cl.SendCommand(ssntp.STATS, []byte("c")) }},
			{"status", func() error { return cl.SendStatus(ssntp.FULL, nil) }},
			{"event", func() error { return cl.SendEvent(ssntp.InstanceDeleted, []byte("e")) }},
			{"error", func() error { return cl.SendError(ssntp.DeleteFailure, []byte("x")) }},
		} {
			if err := k.send(); err != nil {
				t.Fatal(err)
			}
			if e := s.rec.next(t, k.kind); e.f.Origin != cl.UUID() || int(e.f.PayloadLength) != len(e.f.Payload) {
				t.Fatalf("%s frame %+v", k.kind, e.f)
			}
		}
	})
	t.Run("configure updates the cluster configuration", func(t *testing.T) {
		if err := s.SendCommand(cl.UUID(), ssntp.CONFIGURE, []byte("configure: new")); err != nil {
			t.Fatal(err)
		}
		crec.next(t, "command")
		if string(cl.ClusterConfiguration()) != "configure: new" {
			t.Fatalf("client configuration %q", cl.ClusterConfiguration())
		}
	})
	t.Run("unknown destination", func(t *testing.T) {
		if err := s.SendCommand(uuid.Generate(), ssntp.STOP, nil); !errors.Is(err, ssntp.ErrNotConnected) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestControllerConfigure(t *testing.T) {
	// §7.4: CONFIGURE from a Controller replaces what later CONNECTEDs
	// carry; from anyone else it does not.
	s := startServer(t, func(c *ssntp.Config) { c.ClusterConfig = []byte("configure: old\n") })
	agent, _ := dialClient(t, s, ssntp.AGENT, nil)
	if err := agent.SendCommand(ssntp.CONFIGURE, []byte("configure: agent\n")); err != nil {
		t.Fatal(err)
	}
	s.rec.next(t, "command")
	ctl, _ := dialClient(t, s, ssntp.Controller, nil)
	if err := ctl.SendCommand(ssntp.CONFIGURE, []byte("configure: new\n")); err != nil {
		t.Fatal(err)
	}
	for e := s.rec.next(t, "command"); e.id != ctl.UUID(); e = s.rec.next(t, "command") {
	}
	late, _ := dialClient(t, s, ssntp.AGENT, nil)
	if string(late.ClusterConfiguration()) != "configure: new\n" {
		t.Fatalf("late client got %q", late.ClusterConfiguration())
	}
}

func TestForwarding(t *testing.T) {
	// T20 at the library level: a role rule reaches every client with the
	// role but not the sender; a callback rule reaches the chosen client
	// with origin and payload unchanged; a discard reaches nobody.
	var agentID uuid.UUID
	s := startServer(t, func(c *ssntp.Config) {
		c.ForwardRules = []ssntp.ForwardRule{
			ssntp.CommandRule(ssntp.STATS, ssntp.Controller, nil),
			ssntp.CommandRule(ssntp.START, 0, func(src uuid.UUID, role ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
				if !role.HasRole(ssntp.Controller) {
					return ssntp.ForwardDestination{Decision: ssntp.Discard}
				}
				var d ssntp.ForwardDestination
				d.AddRecipient(agentID)
				d.AddRecipient(uuid.Generate()) // unknown: skipped
				return d
			}),
		}
	})
	ctl1, rec1 := dialClient(t, s, ssntp.Controller, nil)
	_, rec2 := dialClient(t, s, ssntp.Controller, nil)
	agent, arec := dialClient(t, s, ssntp.AGENT, nil)
	agentID = agent.UUID()

	if err := agent.SendCommand(ssntp.STATS, []byte("stats")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{rec1, rec2} {
		e := r.next(t, "command")
		if e.f.Origin != agent.UUID() || string(e.f.Payload) != "stats" || e.f.Command() != ssntp.STATS {
			t.Fatalf("controller got %+v", e.f)
		}
	}
	if e := s.rec.next(t, "command"); e.id != agent.UUID() {
		t.Fatal("server application not notified after forwarding")
	}
	if err := ctl1.SendCommand(ssntp.START, []byte("start")); err != nil {
		t.Fatal(err)
	}
	e := arec.next(t, "command")
	if e.f.Origin != ctl1.UUID() || string(e.f.Payload) != "start" || e.f.Command() != ssntp.START {
		t.Fatalf("agent got %+v", e.f)
	}
	// A START from the agent itself is discarded by the callback.
	if err := agent.SendCommand(ssntp.START, []byte("rogue")); err != nil {
		t.Fatal(err)
	}
	arec.none(t, "command", 100*time.Millisecond)
	rec1.none(t, "command", 0)
}

func TestPathTrace(t *testing.T) {
	// T21: Controller → server → agent arrives with three hops.
	var agentID uuid.UUID
	s := startServer(t, func(c *ssntp.Config) {
		c.ForwardRules = []ssntp.ForwardRule{ssntp.CommandRule(ssntp.START, 0,
			func(uuid.UUID, ssntp.Role, *ssntp.Frame) ssntp.ForwardDestination { return ssntp.ForwardTo(agentID) })}
	})
	ctl, _ := dialClient(t, s, ssntp.Controller, nil)
	agent, arec := dialClient(t, s, ssntp.AGENT, nil)
	agentID = agent.UUID()
	start := time.Now().Add(-time.Second)
	if err := ctl.SendTracedCommand(ssntp.START, []byte("p"), &ssntp.TraceConfig{Label: []byte("lbl"), Start: start, PathTrace: true}); err != nil {
		t.Fatal(err)
	}
	f := arec.next(t, "command").f
	if !f.PathTrace() || f.Version() != 0 || string(f.Trace.Label) != "lbl" || !f.Trace.StartTimestamp.Equal(start) {
		t.Fatalf("trace %+v", f.Trace)
	}
	p := f.Trace.Path
	if len(p) != 3 || f.Trace.PathLength != 3 {
		t.Fatalf("%d hops (PathLength %d), want 3", len(p), f.Trace.PathLength)
	}
	ctlID, srvID := ctl.UUID(), s.UUID()
	checks := []struct {
		id     []byte
		role   ssntp.Role
		tx, rx bool
	}{
		{ctlID[:], ssntp.Controller, true, false},
		{srvID[:], ssntp.SCHEDULER | ssntp.SERVER, true, true},
		{agentID[:], ssntp.AGENT, false, true},
	}
	for i, c := range checks {
		if !bytes.Equal(p[i].UUID, c.id) || ssntp.Role(p[i].Role) != c.role ||
			p[i].TxTimestamp.IsZero() == c.tx || p[i].RxTimestamp.IsZero() == c.rx {
			t.Fatalf("hop %d = %+v", i, p[i])
		}
	}
	if f.Duration() <= 0 {
		t.Fatalf("duration %v", f.Duration())
	}
}

func TestReconnect(t *testing.T) {
	// T22: the server drops us; we come back with the same UUID.
	s := startServer(t, nil)
	cl, crec := dialClient(t, s, ssntp.AGENT, nil)
	first := s.rec.next(t, "connect")
	port := s.port
	s.Close()
	crec.next(t, "disconnect")
	if err := cl.SendStatus(ssntp.READY, nil); err == nil {
		// A send may race the read loop noticing; it must not succeed
		// once the disconnect has been notified.
		t.Fatal("send succeeded while disconnected")
	}
	s2 := startServer(t, func(c *ssntp.Config) { c.Port = port })
	crec.next(t, "connect")
	e := s2.rec.next(t, "connect")
	if e.id != first.id || e.id != cl.UUID() {
		t.Fatalf("reconnected as %s, was %s", e.id, first.id)
	}
	if err := cl.SendStatus(ssntp.READY, []byte("back")); err != nil {
		t.Fatal(err)
	}
	s2.rec.next(t, "status")
}

func TestDuplicateUUID(t *testing.T) {
	// §8.5: a second connection with the same UUID replaces the first; the
	// application sees disconnect then connect, the old connection is
	// closed, and the dying session does not remove the new one. (The
	// first endpoint is a raw connection, which does not reconnect.)
	s := startServer(t, nil)
	id := uuid.Generate()
	r := rawDial(t, s, testutil.TestCerts(t).Cert(t, ssntp.AGENT))
	r.connect(t, goodConnect(id, ssntp.AGENT))
	var cf ssntp.ConnectedFrame
	if err := r.dec.Decode(&cf); err != nil {
		t.Fatal(err)
	}
	s.rec.next(t, "connect")
	cl2, _ := dialClient(t, s, ssntp.AGENT, func(c *ssntp.Config) { c.UUID = id })
	if e := s.rec.next(t, "disconnect"); e.id != id {
		t.Fatal("old session not retired")
	}
	if e := s.rec.next(t, "connect"); e.id != id {
		t.Fatal("new session not announced")
	}
	_ = r.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("old connection still open")
	}
	if err := cl2.SendStatus(ssntp.READY, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if e := s.rec.next(t, "status"); string(e.f.Payload) != "new" {
		t.Fatalf("status %q", e.f.Payload)
	}
	s.rec.none(t, "disconnect", 100*time.Millisecond)
	if got := s.Clients(ssntp.AGENT); len(got) != 1 {
		t.Fatalf("clients %v", got)
	}
}

func TestDuplicateClientsBackOff(t *testing.T) {
	// Two live clients with one UUID evict each other; each waits before
	// reconnecting, so they do not spin.
	s := startServer(t, nil)
	id := uuid.Generate()
	dialClient(t, s, ssntp.AGENT, func(c *ssntp.Config) { c.UUID = id; c.BackoffUnit = 50 * time.Millisecond })
	dialClient(t, s, ssntp.AGENT, func(c *ssntp.Config) { c.UUID = id; c.BackoffUnit = 50 * time.Millisecond })
	connects := 0
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case e := <-s.rec.ch:
			if e.kind == "connect" {
				connects++
			}
		case <-deadline:
			done = true
		}
	}
	// Without backoff this is thousands; with it, a few per second.
	if connects > 40 {
		t.Fatalf("%d connections in a second: the clients spin", connects)
	}
}

func TestBadStreams(t *testing.T) {
	// After the handshake: an oversized frame, a corrupt and a truncated
	// gob stream each end that client's connection only.
	s := startServer(t, func(c *ssntp.Config) { c.MaxFrameSize = 1024 })
	agentCert := testutil.TestCerts(t).Cert(t, ssntp.AGENT)
	handshaken := func(t *testing.T) *rawConn {
		r := rawDial(t, s, agentCert)
		r.connect(t, goodConnect(uuid.Generate(), ssntp.AGENT))
		var cf ssntp.ConnectedFrame
		if err := r.dec.Decode(&cf); err != nil {
			t.Fatal(err)
		}
		s.rec.next(t, "connect")
		return r
	}
	cases := []struct {
		name  string
		write func(r *rawConn) error
	}{
		{"oversized payload", func(r *rawConn) error {
			return r.enc.Encode(&ssntp.Frame{Minor: 1, Type: ssntp.COMMAND, Operand: 3, Payload: make([]byte, 4096)})
		}},
		{"corrupt stream", func(r *rawConn) error {
			_, err := r.tc.Write([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff})
			return err
		}},
		{"bad length prefix", func(r *rawConn) error {
			_, err := r.tc.Write([]byte{0xf0, 1, 2, 3})
			return err
		}},
		{"truncated stream", func(r *rawConn) error {
			if _, err := r.tc.Write([]byte{0x40, 0x01, 0x02}); err != nil {
				return err
			}
			return r.tc.CloseWrite()
		}},
		{"wrong kind", func(r *rawConn) error {
			return r.enc.Encode(&frameSliceOrigin{Minor: 1, Type: 1, Operand: 1, Origin: []byte{1}})
		}},
		{"short trace hop", func(r *rawConn) error {
			return r.enc.Encode(&ssntp.Frame{Major: 0x80, Minor: 1, Type: ssntp.STATUS, Operand: 1,
				Trace: &ssntp.FrameTrace{Path: []ssntp.Node{{UUID: []byte{1}}}}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := handshaken(t)
			if err := tc.write(r); err != nil {
				t.Fatal(err)
			}
			s.rec.next(t, "disconnect")
			s.rec.none(t, "status", 0)
		})
	}
	stillServing(t, s)
}

func TestUnixTransport(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ssntp.sock")
	s := startServer(t, func(c *ssntp.Config) { c.Transport = "unix"; c.URI = sock })
	cl, _ := dialClient(t, s, ssntp.AGENT, func(c *ssntp.Config) { c.Transport = "unix"; c.URI = sock })
	if err := cl.SendStatus(ssntp.READY, []byte("unix")); err != nil {
		t.Fatal(err)
	}
	if e := s.rec.next(t, "status"); string(e.f.Payload) != "unix" {
		t.Fatalf("got %q", e.f.Payload)
	}
}

func TestClientAddressFromCA(t *testing.T) {
	// §2: with no URI the client tries the CA certificate's SANs.
	s := startServer(t, nil)
	cl, _ := dialClient(t, s, ssntp.AGENT, func(c *ssntp.Config) { c.URI = "" })
	if cl.ServerUUID() != s.UUID() {
		t.Fatal("not connected to the test server")
	}
}

func TestConfigErrors(t *testing.T) {
	c := testutil.TestCerts(t)
	good := c.Config(t, ssntp.AGENT)
	cases := []struct {
		name   string
		mutate func(*ssntp.Config)
	}{
		{"no CA", func(cfg *ssntp.Config) { cfg.CACertPEM = nil }},
		{"no cert", func(cfg *ssntp.Config) { cfg.CertPEM = nil }},
		{"bad transport", func(cfg *ssntp.Config) { cfg.Transport = "udp" }},
		{"bad port", func(cfg *ssntp.Config) { cfg.Port = 70000 }},
		{"role not in cert", func(cfg *ssntp.Config) { cfg.Role = ssntp.Controller }},
		{"CA not PEM", func(cfg *ssntp.Config) { cfg.CACertPEM = []byte("nope") }},
		{"missing files", func(cfg *ssntp.Config) { cfg.CACertPEM, cfg.CAcert = nil, "/nonexistent/ca.pem" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mutate(&cfg)
			if _, err := ssntp.NewServer(cfg, newRecorder()); err == nil {
				t.Fatal("NewServer accepted a bad configuration")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()}); err == nil {
				t.Fatal("Dial accepted a bad configuration")
			}
		})
	}
	t.Run("bad forward rule", func(t *testing.T) {
		cfg := c.Config(t, ssntp.SCHEDULER|ssntp.SERVER)
		cfg.ForwardRules = []ssntp.ForwardRule{{Type: ssntp.COMMAND, Operand: 1}}
		if _, err := ssntp.NewServer(cfg, newRecorder()); err == nil {
			t.Fatal("rule without destination accepted")
		}
	})
}

func TestCloseWhileDialling(t *testing.T) {
	// Dial blocks while no server answers and returns on ctx; nothing
	// leaks (TestMain checks goroutines).
	cfg := testutil.TestCerts(t).Config(t, ssntp.AGENT)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg.URI = "127.0.0.1"
	cfg.BackoffUnit = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestClientRefusesShortServerUUID(t *testing.T) {
	// §7.5: a CONNECTED whose Source is not 16 bytes crashed 2016 clients;
	// ours refuses the handshake with an error.
	port := fakeServer(t, func(r *rawConn, cf *ssntp.ConnectFrame) {
		_ = r.enc.Encode(&ssntp.ConnectedFrame{Minor: 1, Type: ssntp.STATUS, Role: ssntp.SCHEDULER,
			Source: []byte{1, 2, 3}, Destination: cf.Source})
		var f ssntp.Frame
		_ = r.dec.Decode(&f)
	})
	cfg := testutil.TestCerts(t).Config(t, ssntp.AGENT)
	cfg.Port = port
	cfg.BackoffUnit = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := ssntp.Dial(ctx, cfg, clientRecorder{newRecorder()}); err == nil {
		t.Fatal("handshake with a short server UUID succeeded")
	}
}
