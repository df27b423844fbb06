package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/golang/glog"
	"gopkg.in/yaml.v2"
)

// handleTraceReport stores the frames of a TraceReport event (§4.13) for
// the /v2.1/traces endpoints. Unparsable timestamps are stored as absent.
func (c *Controller) handleTraceReport(ctx context.Context, r received) error {
	var p payloads.Trace
	if err := yaml.Unmarshal(r.payload, &p); err != nil {
		return fmt.Errorf("decode TraceReport: %w", err)
	}
	frames := make([]datastore.TraceFrame, 0, len(p.Frames))
	for _, f := range p.Frames {
		tf := datastore.TraceFrame{Label: f.Label, Type: f.Type, Operand: f.Operand,
			Start: traceTime(f.StartTimestamp), End: traceTime(f.EndTimestamp)}
		for _, n := range f.Nodes {
			tf.Hops = append(tf.Hops, datastore.TraceHop{NodeUUID: n.SSNTPUUID, Role: n.SSNTPRole,
				Tx: traceTime(n.TxTimestamp), Rx: traceTime(n.RxTimestamp)})
		}
		frames = append(frames, tf)
	}
	if len(frames) == 0 {
		return nil
	}
	if err := c.store.AddTraces(ctx, frames); err != nil {
		return fmt.Errorf("store TraceReport from %s: %w", r.origin, err)
	}
	glog.V(2).Infof("TraceReport from %s: %d frames", r.origin, len(frames))
	return nil
}

// traceTime parses a trace timestamp; "" and garbage are the zero time.
func traceTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(payloads.TimestampLayout, s)
	if err != nil {
		glog.V(1).Infof("TraceReport: bad timestamp %q: %v", s, err)
		return time.Time{}
	}
	return t
}
