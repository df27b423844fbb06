package launcher

import (
	"fmt"
	"time"

	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// Path tracing (ssntp.md §11, launcher.md §6.1 and §9.2). The SSNTP client
// appends the launcher's own hop (its UUID, role and receive time) to a
// path-traced START when it reads the frame. The main loop keeps the frame
// on the instance's record; when the START has succeeded it sets the end
// stamp and queues the frame; the next periodic report sends the queue as
// one TraceReport event and clears it. All of this state is owned by the
// main loop.

// queueTrace queues rec's traced START, if it has one, stamping its end.
func (l *Launcher) queueTrace(rec *instRecord, end time.Time) {
	if rec.trace == nil {
		return
	}
	rec.trace.Trace.EndTimestamp = end.UTC()
	l.traces = append(l.traces, rec.trace)
	rec.trace = nil
}

// sendTraces sends the queued traces as a TraceReport and clears the
// queue. A failed send loses them, as a lost STATS is lost.
func (l *Launcher) sendTraces() {
	if len(l.traces) == 0 {
		return
	}
	b, err := traceReport(l.traces)
	l.traces = nil
	if err != nil {
		glog.Errorf("launcher: encoding TraceReport: %v", err)
		return
	}
	l.send("TraceReport", func() error { return l.client.SendEvent(ssntp.TraceReport, b) })
}

// traceReport encodes frames as a TraceReport payload.
func traceReport(frames []*ssntp.Frame) ([]byte, error) {
	tr := payloads.Trace{Frames: make([]payloads.FrameTrace, 0, len(frames))}
	for _, f := range frames {
		tr.Frames = append(tr.Frames, frameTrace(f))
	}
	return yaml.Marshal(&tr)
}

// frameTrace is one traced frame's TraceReport entry. Frame start and end
// stamps are always written (a zero time as 0001-01-01T00:00:00Z); a hop's
// missing stamp is "".
func frameTrace(f *ssntp.Frame) payloads.FrameTrace {
	ft := payloads.FrameTrace{Type: f.Type.String(), Operand: f.OperandString(), Nodes: []payloads.SSNTPNode{}}
	if f.Trace == nil {
		return ft
	}
	ft.Label = string(f.Trace.Label)
	ft.StartTimestamp = f.Trace.StartTimestamp.UTC().Format(payloads.TimestampLayout)
	ft.EndTimestamp = f.Trace.EndTimestamp.UTC().Format(payloads.TimestampLayout)
	for _, n := range f.Trace.Path {
		ft.Nodes = append(ft.Nodes, payloads.SSNTPNode{
			SSNTPUUID:   hopID(n.UUID),
			SSNTPRole:   ssntp.Role(n.Role).String(),
			TxTimestamp: hopStamp(n.TxTimestamp),
			RxTimestamp: hopStamp(n.RxTimestamp),
		})
	}
	return ft
}

func hopStamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(payloads.TimestampLayout)
}

// hopID prints a hop's UUID; the SSNTP library only builds 16-byte hops,
// so the hex form is for a peer that sent something else.
func hopID(b []byte) string {
	if id, err := uuid.FromBytes(b); err == nil {
		return id.String()
	}
	return fmt.Sprintf("%x", b)
}
