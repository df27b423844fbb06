package ssntp

import (
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// Protocol version carried in every frame. Peers never check it.
const (
	Major = 0
	Minor = 1

	// pathTraceFlag is bit 7 of Major: set when the frame carries a hop
	// list that every receiver extends.
	pathTraceFlag = 0x80
)

// ConnectFrame is the first value a client sends. Field names, order and
// kinds are the wire schema: gob matches fields by name and the 2016 peers
// decode exactly these.
type ConnectFrame struct {
	Major       uint8
	Minor       uint8
	Type        Type
	Operand     uint8
	Role        Role
	Source      []byte
	Destination []byte
}

// ConnectedFrame is the server's reply to a successful CONNECT; Payload is
// the cluster configuration.
type ConnectedFrame struct {
	Major         uint8
	Minor         uint8
	Type          Type
	Operand       uint8
	Role          Role
	Source        []byte
	Destination   []byte
	PayloadLength uint32
	Payload       []byte
}

// Frame is every other frame, in both directions. Origin is the endpoint
// that created the frame and survives forwarding.
type Frame struct {
	Major         uint8
	Minor         uint8
	Type          Type
	Operand       uint8
	Origin        uuid.UUID
	PayloadLength uint32
	Trace         *FrameTrace
	Payload       []byte
}

// FrameTrace is a frame's optional trace: a label that travels end to end
// and, with path tracing, one Node per endpoint that handled the frame.
type FrameTrace struct {
	Label          []byte
	StartTimestamp time.Time
	EndTimestamp   time.Time
	PathLength     uint8
	Path           []Node
}

// Node is one hop of a path-traced frame.
type Node struct {
	UUID        []byte
	Role        uint32
	TxTimestamp time.Time
	RxTimestamp time.Time
}

// Version returns the protocol major version without the trace flag.
func (f *Frame) Version() uint8 { return f.Major &^ pathTraceFlag }

// PathTrace reports whether the frame carries a hop list (trace present and
// bit 7 of Major set).
func (f *Frame) PathTrace() bool {
	return f.Trace != nil && f.Major&pathTraceFlag != 0
}

// Command returns the operand as a Command (meaningful for COMMAND frames).
func (f *Frame) Command() Command { return Command(f.Operand) }

// Status returns the operand as a Status.
func (f *Frame) Status() Status { return Status(f.Operand) }

// Event returns the operand as an Event.
func (f *Frame) Event() Event { return Event(f.Operand) }

// Error returns the operand as an Error.
func (f *Frame) Error() Error { return Error(f.Operand) }

// OperandString names the operand as the 2016 TraceReport does: the
// operand's name for commands, statuses and events, the decimal code for
// errors.
func (f *Frame) OperandString() string {
	switch f.Type {
	case COMMAND:
		return f.Command().String()
	case STATUS:
		return f.Status().String()
	case EVENT:
		return f.Event().String()
	case ERROR:
		return uitoa(uint64(f.Operand))
	}
	return ""
}

// SetEndStamp records the time the final consumer finished with a traced
// frame. It travels only inside TraceReport payloads.
func (f *Frame) SetEndStamp() {
	if f.Trace != nil {
		f.Trace.EndTimestamp = time.Now().UTC()
	}
}

// Duration is the time from the first hop's transmission to the last hop's
// reception, or zero for frames without a usable path.
func (f *Frame) Duration() time.Duration {
	if !f.PathTrace() || len(f.Trace.Path) < 2 {
		return 0
	}
	first := f.Trace.Path[0].TxTimestamp
	last := f.Trace.Path[len(f.Trace.Path)-1].RxTimestamp
	if first.IsZero() || last.IsZero() {
		return 0
	}
	return last.Sub(first)
}

// TraceConfig asks for a frame to be traced.
type TraceConfig struct {
	// Label travels end to end, e.g. the controller's trace label.
	Label []byte
	// Start is when the traced operation began; only sent with PathTrace.
	Start time.Time
	// PathTrace makes every endpoint append a timestamped hop.
	PathTrace bool
}

func uitoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// newFrame builds a frame created by this endpoint.
func newFrame(t Type, operand uint8, origin uuid.UUID, payload []byte, tc *TraceConfig, self Node) *Frame {
	f := &Frame{
		Major:         Major,
		Minor:         Minor,
		Type:          t,
		Operand:       operand,
		Origin:        origin,
		PayloadLength: uint32(len(payload)),
		Payload:       payload,
	}
	if tc == nil {
		return f
	}
	f.Trace = &FrameTrace{Label: tc.Label}
	if tc.PathTrace {
		f.Major |= pathTraceFlag
		f.Trace.StartTimestamp = utc(tc.Start)
		f.Trace.Path = []Node{self}
		f.Trace.PathLength = 1
	}
	return f
}

// utc converts to UTC so gob emits the 15-byte version-1 time encoding the
// 2016 peers (Go 1.7) can read; a zone with a seconds offset would produce
// version 2, which they reject.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
