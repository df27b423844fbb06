package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// Timeouts of every fake: short, so a stuck peer fails a test quickly
// instead of holding it for the 30 s protocol defaults.
const (
	fakeWriteTimeout   = 5 * time.Second
	fakeConnectTimeout = 5 * time.Second
	fakeBackoffUnit    = 10 * time.Millisecond
)

// peerClient is what the client-side fakes share: the SSNTP client, the
// recorder and the raw senders. Its exported methods are promoted to
// FakeAgent, FakeController and FakeCNCIAgent.
//
// cl is written once, before ready is closed, and only read after; the
// notifier callbacks may run before Dial has even returned it (see
// client).
type peerClient struct {
	*Recorder
	log ssntp.Logger
	id  uuid.UUID

	cl       *ssntp.Client
	ready    chan struct{}
	dialDone <-chan struct{} // the Dial context's Done

	// Reactions of the specific fake, run on the client's reading
	// goroutine before the record is queued, so that state a test reads
	// after Next is already up to date.
	onConnect func(cl *ssntp.Client)
	onFrame   func(cl *ssntp.Client, f *ssntp.Frame)
}

// dial connects a client-side fake with a certificate for certRole and
// waits for its first connection. The client is closed at cleanup.
func (p *peerClient) dial(tb testing.TB, kind fakeKind, port int, certRole ssntp.Role, s *settings) {
	tb.Helper()
	cfg := TestCerts(tb).Config(tb, certRole)
	cfg.Port = port
	cfg.BackoffUnit = fakeBackoffUnit
	cfg.WriteTimeout = fakeWriteTimeout
	cfg.ConnectTimeout = fakeConnectTimeout
	for _, m := range s.config {
		m(&cfg)
	}
	if cfg.Log == nil {
		cfg.Log = Logger(tb)
	}
	if cfg.UUID.IsNil() {
		// Known before Dial, so that failure messages can name the fake.
		cfg.UUID = uuid.Generate()
	}
	p.id = cfg.UUID
	p.log = cfg.Log
	p.Recorder = newRecorder(kind.String() + " " + cfg.UUID.String())
	p.ready = make(chan struct{})

	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel() // after close(p.ready): see client
	p.dialDone = ctx.Done()
	cl, err := ssntp.Dial(ctx, cfg, clientNotifier{p})
	if err != nil {
		tb.Fatalf("testutil: %s: dialling port %d: %v", p.name, port, err)
	}
	p.cl = cl
	close(p.ready)
	tb.Cleanup(func() { cl.Close() })
	p.NextConnect(tb)
}

// client returns the SSNTP client once Dial has returned it, or nil if
// Dial failed. A callback must not wait for ready alone: when Dial gives
// up it closes the client, which waits for the very callback that would
// be waiting.
func (p *peerClient) client() *ssntp.Client {
	select {
	case <-p.ready:
		return p.cl
	case <-p.dialDone:
		select {
		case <-p.ready:
			return p.cl
		default:
			return nil
		}
	}
}

// UUID is the fake's SSNTP UUID.
func (p *peerClient) UUID() uuid.UUID { return p.id }

// Client is the fake's SSNTP client, for what the helpers do not cover
// (SendFrame, ClusterConfiguration...).
func (p *peerClient) Client() *ssntp.Client { return p.cl }

// Close disconnects the fake for good, as a daemon exiting would. Cleanup
// does it anyway; calling it twice is fine.
func (p *peerClient) Close() { p.cl.Close() }

// SendCommand sends a COMMAND, failing the test if it cannot.
func (p *peerClient) SendCommand(tb testing.TB, c ssntp.Command, payload []byte) {
	tb.Helper()
	p.must(tb, p.cl.SendCommand(c, payload), ssntp.COMMAND, uint8(c))
}

// SendStatus sends a STATUS, failing the test if it cannot.
func (p *peerClient) SendStatus(tb testing.TB, s ssntp.Status, payload []byte) {
	tb.Helper()
	p.must(tb, p.cl.SendStatus(s, payload), ssntp.STATUS, uint8(s))
}

// SendEvent sends an EVENT, failing the test if it cannot.
func (p *peerClient) SendEvent(tb testing.TB, e ssntp.Event, payload []byte) {
	tb.Helper()
	p.must(tb, p.cl.SendEvent(e, payload), ssntp.EVENT, uint8(e))
}

// SendError sends an ERROR, failing the test if it cannot.
func (p *peerClient) SendError(tb testing.TB, e ssntp.Error, payload []byte) {
	tb.Helper()
	p.must(tb, p.cl.SendError(e, payload), ssntp.ERROR, uint8(e))
}

// SendTracedCommand sends a COMMAND with a trace, failing the test if it
// cannot.
func (p *peerClient) SendTracedCommand(tb testing.TB, c ssntp.Command, payload []byte, tc *ssntp.TraceConfig) {
	tb.Helper()
	p.must(tb, p.cl.SendTracedCommand(c, payload, tc), ssntp.COMMAND, uint8(c))
}

func (p *peerClient) must(tb testing.TB, err error, t ssntp.Type, op uint8) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("testutil: %s: sending %s: %v", p.name, frameName(t, op), err)
	}
}

// reply sends from a callback. The test may be tearing the cluster down,
// so a failure is logged, not fatal; the test notices the missing frame.
func (p *peerClient) reply(err error, t ssntp.Type, op uint8) {
	if err != nil {
		p.log.Warningf("testutil: %s: sending %s: %v", p.name, frameName(t, op), err)
	}
}

// clientNotifier keeps the notifier methods off the fakes' API.
type clientNotifier struct{ p *peerClient }

func (n clientNotifier) ConnectNotify() {
	if cl := n.p.client(); cl != nil && n.p.onConnect != nil {
		n.p.onConnect(cl)
	}
	n.p.add(Record{Kind: RecordConnect})
}

func (n clientNotifier) DisconnectNotify() { n.p.add(Record{Kind: RecordDisconnect}) }

func (n clientNotifier) frame(f *ssntp.Frame) {
	if cl := n.p.client(); cl != nil && n.p.onFrame != nil {
		n.p.onFrame(cl, f)
	}
	n.p.add(Record{Kind: RecordFrame, Frame: f})
}

func (n clientNotifier) StatusNotify(_ ssntp.Status, f *ssntp.Frame)   { n.frame(f) }
func (n clientNotifier) CommandNotify(_ ssntp.Command, f *ssntp.Frame) { n.frame(f) }
func (n clientNotifier) EventNotify(_ ssntp.Event, f *ssntp.Frame)     { n.frame(f) }
func (n clientNotifier) ErrorNotify(_ ssntp.Error, f *ssntp.Frame)     { n.frame(f) }
