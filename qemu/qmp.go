package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// Defaults applied when the caller's context has no deadline, so that no
// QMP call can block forever on a wedged QEMU.
const (
	DefaultQMPConnectTimeout = 10 * time.Second
	DefaultQMPCommandTimeout = 30 * time.Second
)

// ErrQMPDisconnected is returned by commands once the socket is gone,
// either because QEMU exited or because Close was called.
var ErrQMPDisconnected = errors.New("qemu: qmp disconnected")

// Event is an asynchronous QMP event such as SHUTDOWN, POWERDOWN, STOP or
// DEVICE_DELETED.
type Event struct {
	Name string
	Data map[string]any // nil when the event has no data
	Time time.Time
}

// Status is the answer to query-status.
type Status struct {
	// Status is QEMU's run state: "running", "paused", "prelaunch",
	// "shutdown", ...
	Status  string `json:"status"`
	Running bool   `json:"running"`
}

// QMPOption configures Connect.
type QMPOption func(*qmpOptions)

type qmpOptions struct {
	logger      Logger
	eventBuffer int
}

// WithLogger routes the wrapper's logging to l.
func WithLogger(l Logger) QMPOption { return func(o *qmpOptions) { o.logger = l } }

// WithEventBuffer sets how many events may wait unread before new ones are
// dropped (default 64).
func WithEventBuffer(n int) QMPOption { return func(o *qmpOptions) { o.eventBuffer = n } }

// QMP is one session on a QEMU monitor socket. Methods may be called from
// several goroutines.
//
// Who owns what: the fields set in Connect never change afterwards. The
// reader goroutine (read) is the only one to read from conn and the only
// one to send on or close events, replies and readDone. cmdMu serialises
// commands: a command holds it from writing its request until its reply
// (or the end of the session) arrives, because QMP answers in order and
// the replies carry nothing we match on. closing is closed once, by Close.
//
// The connection is ours (not a library's), so the handshake is bounded by
// deadlines on conn and never needs a second goroutine; an earlier version
// aborted go-qemu's handshake by calling its Disconnect from another
// goroutine, which raced with the handshake's own writes.
type QMP struct {
	conn   net.Conn
	dec    *json.Decoder // used by Connect, then only by read
	logger Logger

	// Version is QEMU's version from the greeting, e.g. "7.2.19".
	Version string

	cmdMu sync.Mutex // held by one command from request to reply

	events   chan Event
	replies  chan qmpReply
	pumpDone chan struct{} // closed when the socket's stream ends
	closing  chan struct{} // closed by Close

	closeOnce sync.Once
}

// qmpReply is one answer to a command: the raw message, or the read error
// that ended the session.
type qmpReply struct {
	raw []byte
	err error
}

// qmpMessage is the union of what QEMU sends: the greeting, command
// replies and events.
type qmpMessage struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
		} `json:"version"`
	} `json:"QMP"`
	Return    json.RawMessage `json:"return"`
	Error     *qmpError       `json:"error"`
	Event     string          `json:"event"`
	Data      map[string]any  `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Connect dials the QMP unix socket, reads the greeting and negotiates
// capabilities. ctx bounds the whole handshake (DefaultQMPConnectTimeout
// if it has no deadline); cancelling ctx aborts it at once. QEMU serves
// one QMP client per socket, so a second client hangs until the first
// disconnects; the deadline is what turns that into an error.
func Connect(ctx context.Context, socketPath string, opts ...QMPOption) (*QMP, error) {
	o := qmpOptions{eventBuffer: 64}
	for _, opt := range opts {
		opt(&o)
	}
	logger := orNop(o.logger)
	ctx, cancel := withDefaultTimeout(ctx, DefaultQMPConnectTimeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp connect %s: %w", socketPath, err)
	}
	// A deadline in the past fails the blocked read or write at once;
	// it is set from ctx's own goroutine, and conn is only closed here.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	q := &QMP{
		conn:     conn,
		dec:      json.NewDecoder(conn),
		logger:   logger,
		events:   make(chan Event, o.eventBuffer),
		replies:  make(chan qmpReply),
		pumpDone: make(chan struct{}),
		closing:  make(chan struct{}),
	}
	err = q.handshake()
	if !stop() {
		// ctx ended: whatever the handshake says, the caller gave up.
		conn.Close()
		return nil, fmt.Errorf("qemu: qmp connect %s: %w", socketPath, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qemu: qmp connect %s: %w", socketPath, err)
	}
	go q.read()
	logger.Infof("qmp connected to %s (qemu %s)", socketPath, q.Version)
	return q, nil
}

// handshake reads the greeting and enables commands. It runs before the
// reader goroutine exists, so it reads conn itself.
func (q *QMP) handshake() error {
	var greet qmpMessage
	if err := q.dec.Decode(&greet); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if greet.QMP == nil {
		return errors.New("greeting: not a QMP greeting")
	}
	v := greet.QMP.Version.QEMU
	q.Version = fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
	if _, err := io.WriteString(q.conn, `{"execute":"qmp_capabilities"}`); err != nil {
		return fmt.Errorf("qmp_capabilities: %w", err)
	}
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			return fmt.Errorf("qmp_capabilities: %w", err)
		}
		if m.Event != "" {
			continue // not expected before negotiation; harmless
		}
		if m.Error != nil {
			return fmt.Errorf("qmp_capabilities: %s", m.Error.Desc)
		}
		return nil
	}
}

// read is the reader goroutine. It forwards events without ever blocking:
// command replies and events share the socket, so a consumer that stops
// reading Events must not stall commands. Events that do not fit are
// dropped with a warning. When the stream ends (EOF, reset, Close) it
// closes events, replies and pumpDone.
func (q *QMP) read() {
	defer close(q.pumpDone)
	defer close(q.replies)
	defer close(q.events)
	for {
		var raw json.RawMessage
		if err := q.dec.Decode(&raw); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				q.logger.Infof("qmp: session ended: %v", err)
			}
			return
		}
		var m qmpMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			q.logger.Warningf("qmp: ignoring message: %v", err)
			continue
		}
		if m.Event == "" {
			select {
			case q.replies <- qmpReply{raw: raw}:
			case <-q.closing:
				return
			}
			continue
		}
		ev := Event{
			Name: m.Event,
			Data: m.Data,
			// QEMU sends microseconds; the 2016 client passed them as
			// nanoseconds, which we do not copy.
			Time: time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000),
		}
		select {
		case q.events <- ev:
		default:
			q.logger.Warningf("qmp: event buffer full, dropping %s", ev.Name)
		}
	}
}

// Events delivers QMP events in order. It is closed when the socket's
// stream ends: EOF (QEMU exited), a read error such as a reset, or Close.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the session has ended.
func (q *QMP) Done() <-chan struct{} { return q.pumpDone }

// Close ends the session without stopping the VM: it closes the socket,
// which fails commands still waiting for a reply, then waits for the
// reader goroutine to finish, after which Events is closed. Safe to call
// more than once.
func (q *QMP) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closing)
		err = q.conn.Close()
		<-q.pumpDone
	})
	return err
}

// execute runs one command. ctx bounds the wait (DefaultQMPCommandTimeout
// without a deadline). A caller that gives up does not cancel the command
// in QEMU: QMP has no cancellation, so it still runs, its reply is
// discarded, and the next command waits for that reply first.
func (q *QMP) execute(ctx context.Context, name string, args any) ([]byte, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultQMPCommandTimeout)
	defer cancel()
	cmd, err := json.Marshal(struct {
		Execute string `json:"execute"`
		Args    any    `json:"arguments,omitempty"`
	}{name, args})
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, err)
	}
	select {
	case <-q.pumpDone:
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, ErrQMPDisconnected)
	default:
	}
	// Buffered so the goroutine can finish even if nobody waits; it ends
	// at the latest when the session does (replies is then closed).
	done := make(chan qmpReply, 1)
	go func() {
		q.cmdMu.Lock()
		defer q.cmdMu.Unlock()
		// No trailing newline: QEMU parses a JSON stream and does not
		// consume a newline after "quit", and closing a unix socket with
		// unread bytes resets it instead of sending EOF.
		if _, err := q.conn.Write(cmd); err != nil {
			done <- qmpReply{err: err}
			return
		}
		r, ok := <-q.replies
		if !ok {
			r.err = ErrQMPDisconnected
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if q.disconnected(r.err) {
				return nil, fmt.Errorf("qemu: qmp %s: %w", name, ErrQMPDisconnected)
			}
			return nil, fmt.Errorf("qemu: qmp %s: %w", name, r.err)
		}
		var m qmpMessage
		if err := json.Unmarshal(r.raw, &m); err != nil {
			return nil, fmt.Errorf("qemu: qmp %s reply: %w", name, err)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("qemu: qmp %s: %s", name, m.Error.Desc)
		}
		return r.raw, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, ctx.Err())
	}
}

// disconnected says whether err, from a command, means the session is
// over: it has ended, Close was called (a write can then fail before the
// reader has noticed), or the peer is gone.
func (q *QMP) disconnected(err error) bool {
	select {
	case <-q.pumpDone:
		return true
	case <-q.closing:
		return true
	default:
	}
	return errors.Is(err, ErrQMPDisconnected) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// Status runs query-status.
func (q *QMP) Status(ctx context.Context) (Status, error) {
	out, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return Status{}, err
	}
	var r struct {
		Return Status `json:"return"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return Status{}, fmt.Errorf("qemu: qmp query-status reply: %w", err)
	}
	return r.Return, nil
}

// SystemPowerdown asks the guest to power off (ACPI power button). It
// returns when QEMU has accepted the request, not when the guest is down:
// a guest without an OS (or one that ignores ACPI) never shuts down, so
// callers watch Events for SHUTDOWN and fall back to Quit.
func (q *QMP) SystemPowerdown(ctx context.Context) error {
	_, err := q.execute(ctx, "system_powerdown", nil)
	return err
}

// Quit makes QEMU exit immediately (no guest shutdown). QEMU sends a
// SHUTDOWN event and closes the socket.
func (q *QMP) Quit(ctx context.Context) error {
	_, err := q.execute(ctx, "quit", nil)
	return err
}

// Stop pauses the guest's vCPUs.
func (q *QMP) Stop(ctx context.Context) error {
	_, err := q.execute(ctx, "stop", nil)
	return err
}

// Cont resumes the guest (also starts one launched with -S).
func (q *QMP) Cont(ctx context.Context) error {
	_, err := q.execute(ctx, "cont", nil)
	return err
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
