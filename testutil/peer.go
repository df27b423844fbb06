package testutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// WaitTimeout bounds every Next: long enough for a loaded CI machine, short
// enough that a missing frame fails the test instead of the test binary.
const WaitTimeout = 10 * time.Second

// RecordKind says what a Record is.
type RecordKind uint8

// Record kinds.
const (
	RecordFrame      RecordKind = iota // a frame arrived
	RecordConnect                      // a connection came up
	RecordDisconnect                   // a connection went down
)

// Record is one thing a fake saw.
type Record struct {
	Kind RecordKind
	// Peer and Role are the client a FakeServer heard from (or saw come and
	// go), as it advertised itself. Client-side fakes leave them zero: their
	// only peer is the server, and Frame.Origin names who made the frame.
	Peer  uuid.UUID
	Role  ssntp.Role
	Frame *ssntp.Frame // RecordFrame only
}

func (r Record) String() string {
	var b strings.Builder
	switch r.Kind {
	case RecordConnect:
		b.WriteString("connect")
	case RecordDisconnect:
		b.WriteString("disconnect")
	default:
		b.WriteString(frameName(r.Frame.Type, r.Frame.Operand))
		fmt.Fprintf(&b, " origin %s, %d bytes", r.Frame.Origin, len(r.Frame.Payload))
	}
	if !r.Peer.IsNil() {
		fmt.Fprintf(&b, " (client %s %q)", r.Peer, r.Role)
	}
	return b.String()
}

// frameName is "EVENT Node Connected (6)".
func frameName(t ssntp.Type, op uint8) string {
	name := ""
	switch t {
	case ssntp.COMMAND:
		name = ssntp.Command(op).String()
	case ssntp.STATUS:
		name = ssntp.Status(op).String()
	case ssntp.EVENT:
		name = ssntp.Event(op).String()
	case ssntp.ERROR:
		name = ssntp.Error(op).String()
	}
	if name == "" {
		return fmt.Sprintf("%s %d", t, op)
	}
	return fmt.Sprintf("%s %s (%d)", t, name, op)
}

// Recorder queues what a fake receives so that a test can wait for it.
// Every fake embeds one. Next takes the oldest matching record not taken
// yet and leaves the others queued, so a test asks only about what it
// cares for, in any order. All methods are safe for concurrent use.
//
// mu guards records, taken and changed.
type Recorder struct {
	name string // who is recording, for failure messages

	mu      sync.Mutex
	records []Record      // everything, in arrival order
	taken   []bool        // taken[i]: records[i] was returned by a Next
	changed chan struct{} // closed (and replaced) when a record arrives
}

func newRecorder(name string) *Recorder {
	return &Recorder{name: name, changed: make(chan struct{})}
}

// add queues a record and wakes every waiter.
func (r *Recorder) add(rec Record) {
	r.mu.Lock()
	r.records = append(r.records, rec)
	r.taken = append(r.taken, false)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Received returns everything recorded so far, taken or not, in arrival
// order.
func (r *Recorder) Received() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Next waits for the next frame of type t with operand op, takes it and
// returns it. It fails the test, listing what did arrive, if none comes
// within WaitTimeout.
func (r *Recorder) Next(tb testing.TB, t ssntp.Type, op uint8) *ssntp.Frame {
	tb.Helper()
	return r.wait(tb, frameMatch(t, op), frameName(t, op), WaitTimeout).Frame
}

// NextCommand is Next for a COMMAND.
func (r *Recorder) NextCommand(tb testing.TB, c ssntp.Command) *ssntp.Frame {
	tb.Helper()
	return r.Next(tb, ssntp.COMMAND, uint8(c))
}

// NextStatus is Next for a STATUS.
func (r *Recorder) NextStatus(tb testing.TB, s ssntp.Status) *ssntp.Frame {
	tb.Helper()
	return r.Next(tb, ssntp.STATUS, uint8(s))
}

// NextEvent is Next for an EVENT.
func (r *Recorder) NextEvent(tb testing.TB, e ssntp.Event) *ssntp.Frame {
	tb.Helper()
	return r.Next(tb, ssntp.EVENT, uint8(e))
}

// NextError is Next for an ERROR.
func (r *Recorder) NextError(tb testing.TB, e ssntp.Error) *ssntp.Frame {
	tb.Helper()
	return r.Next(tb, ssntp.ERROR, uint8(e))
}

// NextConnect waits for a connection to come up: on a FakeServer, a
// client's (Peer and Role say whose); on a client-side fake, its own
// reconnection (constructors take the first one).
func (r *Recorder) NextConnect(tb testing.TB) Record {
	tb.Helper()
	return r.wait(tb, kindMatch(RecordConnect), "connect", WaitTimeout)
}

// NextDisconnect waits for a connection to go down.
func (r *Recorder) NextDisconnect(tb testing.TB) Record {
	tb.Helper()
	return r.wait(tb, kindMatch(RecordDisconnect), "disconnect", WaitTimeout)
}

// Nothing fails the test if a frame of type t with operand op is waiting
// or arrives within d. It takes nothing.
func (r *Recorder) Nothing(tb testing.TB, t ssntp.Type, op uint8, d time.Duration) {
	tb.Helper()
	match := frameMatch(t, op)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		i := r.findLocked(match)
		var rec Record
		if i >= 0 {
			rec = r.records[i]
		}
		changed := r.changed
		r.mu.Unlock()
		if i >= 0 {
			tb.Fatalf("testutil: %s: got %s, expected none within %v", r.name, rec, d)
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		}
	}
}

func frameMatch(t ssntp.Type, op uint8) func(Record) bool {
	return func(rec Record) bool {
		return rec.Kind == RecordFrame && rec.Frame.Type == t && rec.Frame.Operand == op
	}
}

func kindMatch(k RecordKind) func(Record) bool {
	return func(rec Record) bool { return rec.Kind == k }
}

// findLocked returns the index of the oldest record not taken that
// matches, or -1.
func (r *Recorder) findLocked(match func(Record) bool) int {
	for i, rec := range r.records {
		if !r.taken[i] && match(rec) {
			return i
		}
	}
	return -1
}

// wait takes the oldest untaken match, waiting up to timeout for one.
func (r *Recorder) wait(tb testing.TB, match func(Record) bool, what string, timeout time.Duration) Record {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if i := r.findLocked(match); i >= 0 {
			r.taken[i] = true
			rec := r.records[i]
			r.mu.Unlock()
			return rec
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("testutil: %s: no %s within %v; %s", r.name, what, timeout, r.summary())
			return Record{}
		}
	}
}

// maxListed bounds the failure listing: a launcher's periodic STATS would
// otherwise bury the message.
const maxListed = 50

// summary lists what arrived, newest last, marking what Next already took.
func (r *Recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.records) == 0 {
		return "nothing arrived"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "arrived (%d, * = already taken):", len(r.records))
	start := 0
	if len(r.records) > maxListed {
		start = len(r.records) - maxListed
		fmt.Fprintf(&b, "\n\t... %d older", start)
	}
	for i := start; i < len(r.records); i++ {
		mark := " "
		if r.taken[i] {
			mark = "*"
		}
		fmt.Fprintf(&b, "\n\t%s %s", mark, r.records[i])
	}
	return b.String()
}
