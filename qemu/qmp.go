package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
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
// several goroutines: go-qemu serialises commands on the socket. The event
// pump goroutine owns the events channel and is the only one to close it.
type QMP struct {
	mon    *qmp.SocketMonitor
	logger Logger

	// Version is QEMU's version from the greeting, e.g. "7.2.19".
	Version string

	events   chan Event
	pumpDone chan struct{} // closed when the socket's event stream ends

	closeOnce sync.Once
}

// Connect dials the QMP unix socket, reads the greeting and negotiates
// capabilities. ctx bounds the whole handshake (DefaultQMPConnectTimeout
// if it has no deadline). QEMU serves one QMP client per socket, so a
// second client hangs until the first disconnects; the deadline is what
// turns that into an error.
func Connect(ctx context.Context, socketPath string, opts ...QMPOption) (*QMP, error) {
	o := qmpOptions{eventBuffer: 64}
	for _, opt := range opts {
		opt(&o)
	}
	logger := orNop(o.logger)
	ctx, cancel := withDefaultTimeout(ctx, DefaultQMPConnectTimeout)
	defer cancel()

	type result struct {
		mon *qmp.SocketMonitor
		err error
	}
	// go-qemu's dial and handshake take no context, so they run in a
	// goroutine and the monitor is handed over through dialed so that
	// an abort can close the connection under a blocked handshake.
	done := make(chan result, 1)
	dialed := make(chan *qmp.SocketMonitor, 1)
	go func() {
		timeout := DefaultQMPConnectTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		mon, err := qmp.NewSocketMonitor("unix", socketPath, timeout)
		if err != nil {
			close(dialed)
			done <- result{err: err}
			return
		}
		dialed <- mon
		done <- result{mon: mon, err: mon.Connect()}
	}()

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Disconnect closes the socket, so a handshake blocked on the
		// greeting returns. go-qemu gives no way to abort a Connect that
		// is past its last read, so in the (tiny) window where the
		// handshake completes just as ctx expires the two may overlap;
		// the second Disconnect below makes sure nothing is leaked.
		go func() {
			if mon, ok := <-dialed; ok {
				_ = mon.Disconnect()
			}
			if r := <-done; r.err == nil {
				_ = r.mon.Disconnect()
			}
		}()
		return nil, fmt.Errorf("qemu: qmp connect %s: %w", socketPath, ctx.Err())
	}
	if r.err != nil {
		if r.mon != nil {
			_ = r.mon.Disconnect()
		}
		return nil, fmt.Errorf("qemu: qmp connect %s: %w", socketPath, r.err)
	}

	q := &QMP{
		mon:      r.mon,
		logger:   logger,
		events:   make(chan Event, o.eventBuffer),
		pumpDone: make(chan struct{}),
	}
	if r.mon.Version != nil {
		q.Version = r.mon.Version.String()
	}
	evs, err := r.mon.Events(context.Background())
	if err != nil {
		_ = r.mon.Disconnect()
		return nil, fmt.Errorf("qemu: qmp events: %w", err)
	}
	go q.pump(evs)
	logger.Infof("qmp connected to %s (qemu %s)", socketPath, q.Version)
	return q, nil
}

// pump forwards events without ever blocking: go-qemu reads command
// replies and events on the same goroutine, so a consumer that stops
// reading Events must not stall commands. Events that do not fit are
// dropped with a warning.
func (q *QMP) pump(evs <-chan qmp.Event) {
	defer close(q.pumpDone)
	defer close(q.events)
	for e := range evs {
		ev := Event{
			Name: e.Event,
			Data: e.Data,
			// QEMU sends microseconds; the 2016 client passed them as
			// nanoseconds, which we do not copy.
			Time: time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000),
		}
		select {
		case q.events <- ev:
		default:
			q.logger.Warningf("qmp: event buffer full, dropping %s", ev.Name)
		}
	}
}

// Events delivers QMP events in order. It is closed when the socket reaches
// EOF (QEMU exited) or on Close. If the socket instead fails with an error
// (e.g. a reset because QEMU died with a command unread), go-qemu holds
// that error until the next command or Close, so Events stays open:
// callers that must know QEMU is gone should also watch the process
// (pidfile) and then call Close.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the session has ended.
func (q *QMP) Done() <-chan struct{} { return q.pumpDone }

// Close ends the session without stopping the VM: it closes the socket,
// which fails commands still waiting for a reply, then waits for the event
// pump to finish, after which Events is closed. Safe to call more than
// once.
func (q *QMP) Close() error {
	var err error
	q.closeOnce.Do(func() {
		err = q.mon.Disconnect()
		<-q.pumpDone
	})
	return err
}

// execute runs one command. ctx bounds the wait (DefaultQMPCommandTimeout
// without a deadline). A caller that gives up does not cancel the command
// in QEMU: QMP has no cancellation, so it still runs and its reply is
// discarded.
func (q *QMP) execute(ctx context.Context, name string, args any) ([]byte, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultQMPCommandTimeout)
	defer cancel()
	cmd, err := json.Marshal(qmp.Command{Execute: name, Args: args})
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, err)
	}
	// No trailing newline: QEMU parses a JSON stream and does not consume
	// a newline after "quit", and closing a unix socket with unread bytes
	// resets it instead of sending EOF (see Events).
	select {
	case <-q.pumpDone:
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, ErrQMPDisconnected)
	default:
	}
	type result struct {
		out []byte
		err error
	}
	// Buffered so the goroutine can finish even if nobody waits; it ends
	// at the latest when the socket closes.
	done := make(chan result, 1)
	go func() {
		out, err := q.mon.Run(cmd)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			select {
			case <-q.pumpDone:
				return nil, fmt.Errorf("qemu: qmp %s: %w", name, ErrQMPDisconnected)
			default:
			}
			return nil, fmt.Errorf("qemu: qmp %s: %w", name, r.err)
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("qemu: qmp %s: %w", name, ctx.Err())
	}
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
