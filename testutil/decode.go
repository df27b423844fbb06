package testutil

import (
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	yaml "gopkg.in/yaml.v2"
)

// Decode decodes a frame's payload into a T, failing the test if it does
// not decode. Decoding is strict: a key T does not know fails too, so that
// a misspelt key in the daemon under test shows up here rather than as a
// silently empty field. Types with an Init method (payloads.Ready,
// payloads.Stat) get it first, so a missing number reads −1 as it does for
// the real receivers.
func Decode[T any](tb testing.TB, f *ssntp.Frame) T {
	tb.Helper()
	var v T
	if i, ok := any(&v).(interface{ Init() }); ok {
		i.Init()
	}
	if err := yaml.UnmarshalStrict(f.Payload, &v); err != nil {
		tb.Fatalf("testutil: %s payload does not decode as %T: %v\n%s", frameName(f.Type, f.Operand), v, err, f.Payload)
	}
	return v
}

// The NextXxx helpers below wait for one frame (as Next) and decode its
// payload (as Decode). Every fake has them, so a launcher test can ask its
// FakeServer for the StartFailure the launcher sent just as a scheduler
// test asks its FakeController.

// NextStart waits for a START and returns its command, decoded from the
// first document as the scheduler does.
func (r *Recorder) NextStart(tb testing.TB) payloads.StartCmd {
	tb.Helper()
	f := r.NextCommand(tb, ssntp.START)
	s, err := payloads.DecodeStart(f.Payload)
	if err != nil {
		tb.Fatalf("testutil: START payload: %v\n%s", err, f.Payload)
	}
	return s.Start
}

// NextStop waits for a STOP.
func (r *Recorder) NextStop(tb testing.TB) payloads.StopCmd {
	tb.Helper()
	return Decode[payloads.Stop](tb, r.NextCommand(tb, ssntp.STOP)).Stop
}

// NextDelete waits for a DELETE.
func (r *Recorder) NextDelete(tb testing.TB) payloads.StopCmd {
	tb.Helper()
	return Decode[payloads.Delete](tb, r.NextCommand(tb, ssntp.DELETE)).Delete
}

// NextRestart waits for a RESTART.
func (r *Recorder) NextRestart(tb testing.TB) payloads.RestartCmd {
	tb.Helper()
	return Decode[payloads.Restart](tb, r.NextCommand(tb, ssntp.RESTART)).Restart
}

// NextEvacuate waits for an EVACUATE.
func (r *Recorder) NextEvacuate(tb testing.TB) payloads.EvacuateCmd {
	tb.Helper()
	return Decode[payloads.Evacuate](tb, r.NextCommand(tb, ssntp.EVACUATE)).Evacuate
}

// NextStats waits for a STATS command.
func (r *Recorder) NextStats(tb testing.TB) payloads.Stat {
	tb.Helper()
	return Decode[payloads.Stat](tb, r.NextCommand(tb, ssntp.STATS))
}

// NextReady waits for a READY status.
func (r *Recorder) NextReady(tb testing.TB) payloads.Ready {
	tb.Helper()
	return Decode[payloads.Ready](tb, r.NextStatus(tb, ssntp.READY))
}

// NextTenantAdded waits for a TenantAdded event.
func (r *Recorder) NextTenantAdded(tb testing.TB) payloads.TenantAddedEvent {
	tb.Helper()
	return Decode[payloads.EventTenantAdded](tb, r.NextEvent(tb, ssntp.TenantAdded)).TenantAdded
}

// NextTenantRemoved waits for a TenantRemoved event.
func (r *Recorder) NextTenantRemoved(tb testing.TB) payloads.TenantAddedEvent {
	tb.Helper()
	return Decode[payloads.EventTenantRemoved](tb, r.NextEvent(tb, ssntp.TenantRemoved)).TenantRemoved
}

// NextInstanceDeleted waits for an InstanceDeleted event.
func (r *Recorder) NextInstanceDeleted(tb testing.TB) payloads.InstanceDeletedEvent {
	tb.Helper()
	return Decode[payloads.EventInstanceDeleted](tb, r.NextEvent(tb, ssntp.InstanceDeleted)).InstanceDeleted
}

// NextConcentratorAdded waits for a ConcentratorInstanceAdded event.
func (r *Recorder) NextConcentratorAdded(tb testing.TB) payloads.ConcentratorInstanceAddedEvent {
	tb.Helper()
	return Decode[payloads.EventConcentratorInstanceAdded](tb, r.NextEvent(tb, ssntp.ConcentratorInstanceAdded)).CNCIAdded
}

// NextNodeConnected waits for a NodeConnected event.
func (r *Recorder) NextNodeConnected(tb testing.TB) payloads.NodeConnectedEvent {
	tb.Helper()
	return Decode[payloads.NodeConnected](tb, r.NextEvent(tb, ssntp.NodeConnected)).Connected
}

// NextNodeDisconnected waits for a NodeDisconnected event.
func (r *Recorder) NextNodeDisconnected(tb testing.TB) payloads.NodeConnectedEvent {
	tb.Helper()
	return Decode[payloads.NodeDisconnected](tb, r.NextEvent(tb, ssntp.NodeDisconnected)).Disconnected
}

// NextTraceReport waits for a TraceReport event.
func (r *Recorder) NextTraceReport(tb testing.TB) payloads.Trace {
	tb.Helper()
	return Decode[payloads.Trace](tb, r.NextEvent(tb, ssntp.TraceReport))
}

// NextStartFailure waits for a StartFailure error.
func (r *Recorder) NextStartFailure(tb testing.TB) payloads.ErrorStartFailure {
	tb.Helper()
	return Decode[payloads.ErrorStartFailure](tb, r.NextError(tb, ssntp.StartFailure))
}

// NextStopFailure waits for a StopFailure error.
func (r *Recorder) NextStopFailure(tb testing.TB) payloads.ErrorStopFailure {
	tb.Helper()
	return Decode[payloads.ErrorStopFailure](tb, r.NextError(tb, ssntp.StopFailure))
}

// NextRestartFailure waits for a RestartFailure error.
func (r *Recorder) NextRestartFailure(tb testing.TB) payloads.ErrorRestartFailure {
	tb.Helper()
	return Decode[payloads.ErrorRestartFailure](tb, r.NextError(tb, ssntp.RestartFailure))
}

// NextDeleteFailure waits for a DeleteFailure error.
func (r *Recorder) NextDeleteFailure(tb testing.TB) payloads.ErrorDeleteFailure {
	tb.Helper()
	return Decode[payloads.ErrorDeleteFailure](tb, r.NextError(tb, ssntp.DeleteFailure))
}
