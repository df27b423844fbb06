package launcher

import (
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestTraceReport: a path-traced START that succeeds comes back in a
// TraceReport event (ssntp.md §11, payloads.md §5.5) with the label, the
// START's type and operand, the caller's start stamp, the launcher's end
// stamp and both hops: the scheduler's transmission and the launcher's
// reception. An untraced START and a label-only START are not reported.
func TestTraceReport(t *testing.T) {
	srv, l, _, _ := simLauncher(t, nil)
	const (
		plain     = "0a1b2c3d-0000-4000-8000-0000000000a1"
		labelOnly = "0a1b2c3d-0000-4000-8000-0000000000a2"
		traced    = "0a1b2c3d-0000-4000-8000-0000000000a3"
	)
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(plain)))
	srv.SendTracedCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(labelOnly)),
		&ssntp.TraceConfig{Label: []byte("label-only")})
	waitStats(t, srv, "untraced instances active", func(s payloads.Stat) bool {
		return stateIs(plain, payloads.InstanceActive)(s) && stateIs(labelOnly, payloads.InstanceActive)(s)
	})

	start := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	before := time.Now().UTC()
	srv.SendTracedCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(traced)),
		&ssntp.TraceConfig{Label: []byte("boot-trace"), Start: start, PathTrace: true})
	tr := srv.NextTraceReport(t)
	after := time.Now().UTC()

	if len(tr.Frames) != 1 {
		t.Fatalf("TraceReport has %d frames, want only the path-traced START: %+v", len(tr.Frames), tr)
	}
	f := tr.Frames[0]
	if f.Label != "boot-trace" || f.Type != "COMMAND" || f.Operand != "START" {
		t.Errorf("frame label/type/operand = %q/%q/%q", f.Label, f.Type, f.Operand)
	}
	if f.StartTimestamp != "2026-11-27T08:00:00.123456789Z" {
		t.Errorf("start_timestamp %q", f.StartTimestamp)
	}
	stamp := func(what, s string) time.Time {
		t.Helper()
		ts, err := time.Parse(payloads.TimestampLayout, s)
		if err != nil {
			t.Fatalf("%s %q: %v", what, s, err)
		}
		return ts
	}
	if len(f.Nodes) != 2 {
		t.Fatalf("%d hops, want scheduler and launcher: %+v", len(f.Nodes), f.Nodes)
	}
	sched, agent := f.Nodes[0], f.Nodes[1]
	if sched.SSNTPUUID != srv.UUID().String() || sched.SSNTPRole != (ssntp.SCHEDULER|ssntp.SERVER).String() ||
		sched.RxTimestamp != "" {
		t.Errorf("scheduler hop %+v", sched)
	}
	if agent.SSNTPUUID != l.id.String() || agent.SSNTPRole != ssntp.AGENT.String() || agent.TxTimestamp != "" {
		t.Errorf("launcher hop %+v", agent)
	}
	tx := stamp("scheduler tx", sched.TxTimestamp)
	rx := stamp("launcher rx", agent.RxTimestamp)
	end := stamp("end", f.EndTimestamp)
	if tx.Before(before) || rx.Before(tx) || end.Before(rx) || end.After(after) {
		t.Errorf("stamps out of order: sent %v, tx %v, rx %v, end %v, report %v", before, tx, rx, end, after)
	}

	// The queue is cleared: the next report comes only with the next
	// traced START.
	srv.SendTracedCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance("0a1b2c3d-0000-4000-8000-0000000000a4")),
		&ssntp.TraceConfig{Label: []byte("second"), Start: start, PathTrace: true})
	if tr := srv.NextTraceReport(t); len(tr.Frames) != 1 || tr.Frames[0].Label != "second" {
		t.Errorf("second TraceReport %+v", tr)
	}
}

// TestTraceReportFailedStart: a traced START that fails is not reported.
func TestTraceReportFailedStart(t *testing.T) {
	srv, l, _, _ := simLauncher(t, nil)
	const id = "0a1b2c3d-0000-4000-8000-0000000000b1"
	srv.SendTracedCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(id), testutil.StartMemMB(1<<30)),
		&ssntp.TraceConfig{Label: []byte("too-big"), PathTrace: true})
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartFullComputeNode {
		t.Fatalf("failure %+v", f)
	}
	const ok = "0a1b2c3d-0000-4000-8000-0000000000b2"
	srv.SendTracedCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(ok)),
		&ssntp.TraceConfig{Label: []byte("fits"), PathTrace: true})
	if tr := srv.NextTraceReport(t); len(tr.Frames) != 1 || tr.Frames[0].Label != "fits" {
		t.Errorf("TraceReport %+v, want only the START that succeeded", tr)
	}
}
