package testutil

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// The agent tests play the scheduler with a FakeServer and read the
// agent's answers from the server's recorder.

func TestAgentLifecycle(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	id, agent := a.UUID(), a.UUID().String()
	if rec := srv.NextConnect(t); rec.Peer != id || rec.Role != ssntp.AGENT {
		t.Fatalf("server saw %v", rec)
	}
	if a.Role() != ssntp.AGENT || a.Client().Role() != ssntp.AGENT {
		t.Errorf("roles %q, %q", a.Role(), a.Client().Role())
	}

	srv.SendCommand(t, id, ssntp.START, StartPayload(StartMemMB(256), StartVCPUs(3)))
	if got := a.NextStart(t); got.InstanceUUID != InstanceUUID {
		t.Fatalf("agent received %+v", got)
	}
	in, ok := a.Instance(InstanceUUID)
	if !ok || in.State != payloads.InstanceActive || in.MemMB != 256 || in.VCPUs != 3 || in.DiskMB != 10000 || in.Tenant != TenantUUID || in.NetworkNode {
		t.Fatalf("instance %+v", in)
	}

	// What a launcher answers, command after command.
	steps := []struct {
		cmd     ssntp.Command
		payload []byte
		fail    ssntp.Error // 0: no error expected
		reason  string
		state   string // afterwards; "" = gone
	}{
		{ssntp.START, StartPayload(), ssntp.StartFailure, "already_running", payloads.InstanceActive},
		{ssntp.STOP, StopPayload(InstanceUUID, agent), 0, "", payloads.InstanceExited},
		{ssntp.STOP, StopPayload(InstanceUUID, agent), ssntp.StopFailure, "already_stopped", payloads.InstanceExited},
		{ssntp.START, StartPayload(), ssntp.StartFailure, "instance_exists", payloads.InstanceExited},
		{ssntp.RESTART, RestartPayload(InstanceUUID, agent), 0, "", payloads.InstanceActive},
		{ssntp.RESTART, RestartPayload(InstanceUUID, agent), ssntp.RestartFailure, "already_running", payloads.InstanceActive},
		{ssntp.STOP, StopPayload("bad uuid!", agent), ssntp.StopFailure, "invalid_data", payloads.InstanceActive},
		{ssntp.RESTART, []byte("restart: ["), ssntp.RestartFailure, "invalid_payload", payloads.InstanceActive},
		{ssntp.START, []byte("no start here"), ssntp.StartFailure, "invalid_payload", payloads.InstanceActive},
		{ssntp.START, StartPayload(StartVMType("xen")), ssntp.StartFailure, "invalid_data", payloads.InstanceActive},
		{ssntp.DELETE, DeletePayload(InstanceUUID, agent), 0, "", ""},
		{ssntp.DELETE, DeletePayload(InstanceUUID, agent), ssntp.DeleteFailure, "no_instance", ""},
		{ssntp.STOP, StopPayload(InstanceUUID, agent), ssntp.StopFailure, "no_instance", ""},
		{ssntp.RESTART, RestartPayload(InstanceUUID, agent), ssntp.RestartFailure, "no_instance", ""},
	}
	for i, s := range steps {
		srv.SendCommand(t, id, s.cmd, s.payload)
		a.NextCommand(t, s.cmd)
		if s.fail != 0 {
			f := srv.NextError(t, s.fail)
			if !strings.Contains(string(f.Payload), "reason: "+s.reason+"\n") {
				t.Errorf("step %d (%s): %s payload\n%s", i, s.cmd, s.fail, f.Payload)
			}
			if f.Origin != id {
				t.Errorf("step %d: error origin %s", i, f.Origin)
			}
		}
		in, ok := a.Instance(InstanceUUID)
		if s.state == "" && ok || s.state != "" && in.State != s.state {
			t.Errorf("step %d (%s): instance %+v, want state %q", i, s.cmd, in, s.state)
		}
		if s.cmd == ssntp.DELETE && s.fail == 0 {
			if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != InstanceUUID {
				t.Errorf("InstanceDeleted %+v", ev)
			}
		}
	}
	srv.Nothing(t, ssntp.EVENT, uint8(ssntp.InstanceDeleted), 20*time.Millisecond)
	if n := len(a.Instances()); n != 0 {
		t.Errorf("%d instances left", n)
	}
}

func TestAgentFailureKnobs(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT|ssntp.NETAGENT,
		WithStartFailure(payloads.StartLaunchFailure),
		WithStopFailure(payloads.StopAlreadyStopped),
		WithRestartFailure(payloads.RestartNetworkFailure),
		WithDeleteFailure(payloads.DeleteInvalidData),
		WithAttachVolumeFailure(payloads.AttachVolumeAttachFailure),
		WithDetachVolumeFailure(payloads.DetachVolumeDetachFailure),
	)
	id, agent := a.UUID(), a.UUID().String()

	srv.SendCommand(t, id, ssntp.START, StartPayload())
	if got := srv.NextStartFailure(t); got != (payloads.ErrorStartFailure{InstanceUUID: InstanceUUID, Reason: payloads.StartLaunchFailure}) {
		t.Errorf("start failure %+v", got)
	}
	if len(a.Instances()) != 0 {
		t.Error("a failed START left an instance")
	}
	srv.SendCommand(t, id, ssntp.STOP, StopPayload(InstanceUUID, agent))
	if got := srv.NextStopFailure(t); got.Reason != payloads.StopAlreadyStopped {
		t.Errorf("stop failure %+v", got)
	}
	srv.SendCommand(t, id, ssntp.RESTART, RestartPayload(InstanceUUID, agent))
	if got := srv.NextRestartFailure(t); got.Reason != payloads.RestartNetworkFailure {
		t.Errorf("restart failure %+v", got)
	}
	srv.SendCommand(t, id, ssntp.DELETE, DeletePayload(InstanceUUID, agent))
	if got := srv.NextDeleteFailure(t); got.Reason != payloads.DeleteInvalidData {
		t.Errorf("delete failure %+v", got)
	}
	srv.SendCommand(t, id, ssntp.AttachVolume, AttachVolumePayload(InstanceUUID, VolumeUUID, agent))
	if got := Decode[payloads.ErrorAttachVolumeFailure](t, srv.NextError(t, ssntp.AttachVolumeFailure)); got.Reason != payloads.AttachVolumeAttachFailure || got.VolumeUUID != VolumeUUID {
		t.Errorf("attach failure %+v", got)
	}
	srv.SendCommand(t, id, ssntp.DetachVolume, DetachVolumePayload(InstanceUUID, VolumeUUID, agent))
	if got := Decode[payloads.ErrorDetachVolumeFailure](t, srv.NextError(t, ssntp.DetachVolumeFailure)); got.Reason != payloads.DetachVolumeDetachFailure {
		t.Errorf("detach failure %+v", got)
	}

	// Knobs turn off mid-test.
	a.Set(t, WithStartFailure(""))
	srv.SendCommand(t, id, ssntp.START, StartPayload())
	a.NextCommand(t, ssntp.START)
	srv.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), 20*time.Millisecond)
	if len(a.Instances()) != 1 {
		t.Error("START did not succeed once the knob was off")
	}
	if msg := fatal(t, func(tb testing.TB) { a.Set(tb, WithUUID(id)) }); !strings.Contains(msg, "no effect once connected") {
		t.Errorf("Set accepted an SSNTP option: %q", msg)
	}
	if msg := fatal(t, func(tb testing.TB) { NewFakeAgent(tb, srv.Port(), ssntp.Controller) }); !strings.Contains(msg, "want AGENT, NETAGENT or both") {
		t.Errorf("NewFakeAgent accepted role Controller: %q", msg)
	}
}

func TestAgentVolumes(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	id, agent := a.UUID(), a.UUID().String()
	srv.SendCommand(t, id, ssntp.START, StartPayload())
	a.NextCommand(t, ssntp.START)

	attach := func() {
		srv.SendCommand(t, id, ssntp.AttachVolume, AttachVolumePayload(InstanceUUID, VolumeUUID, agent))
	}
	detach := func() {
		srv.SendCommand(t, id, ssntp.DetachVolume, DetachVolumePayload(InstanceUUID, VolumeUUID, agent))
	}
	attach()
	a.NextCommand(t, ssntp.AttachVolume)
	if in, _ := a.Instance(InstanceUUID); len(in.Volumes) != 1 || in.Volumes[0] != VolumeUUID {
		t.Errorf("volumes after attach: %v", in.Volumes)
	}
	attach()
	if got := Decode[payloads.ErrorAttachVolumeFailure](t, srv.NextError(t, ssntp.AttachVolumeFailure)); got.Reason != payloads.AttachVolumeAlreadyAttached {
		t.Errorf("second attach: %+v", got)
	}
	detach()
	a.NextCommand(t, ssntp.DetachVolume)
	if in, _ := a.Instance(InstanceUUID); len(in.Volumes) != 0 {
		t.Errorf("volumes after detach: %v", in.Volumes)
	}
	detach()
	if got := Decode[payloads.ErrorDetachVolumeFailure](t, srv.NextError(t, ssntp.DetachVolumeFailure)); got.Reason != payloads.DetachVolumeNotAttached {
		t.Errorf("second detach: %+v", got)
	}
	// An unknown instance is only logged, as by the launcher.
	srv.SendCommand(t, id, ssntp.AttachVolume, AttachVolumePayload("0123", VolumeUUID, agent))
	a.NextCommand(t, ssntp.AttachVolume)
	srv.Nothing(t, ssntp.ERROR, uint8(ssntp.AttachVolumeFailure), 20*time.Millisecond)
}

func TestAgentAutoReady(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT, WithAutoReady(6000), WithFullBelow(1500))
	id, node := a.UUID(), a.UUID().String()

	// On connection: status, then STATS.
	if r := srv.NextReady(t); r.NodeUUID != node || r.MemTotalMB != 6000 || r.MemAvailableMB != 6000 {
		t.Errorf("first READY %+v", r)
	}
	if st := srv.NextStats(t); st.NodeUUID != node || st.Status != "READY" || len(st.Instances) != 0 {
		t.Errorf("first STATS %+v", st)
	}

	srv.SendCommand(t, id, ssntp.START, StartPayload(StartInstance("01"), StartMemMB(4000)))
	if r := srv.NextReady(t); r.MemAvailableMB != 2000 {
		t.Errorf("READY after START: %+v", r)
	}
	// 2000 MB left: 2500 does not fit, 1000 fits and leaves the node FULL.
	srv.SendCommand(t, id, ssntp.START, StartPayload(StartInstance("02"), StartMemMB(2500)))
	if f := srv.NextStartFailure(t); f.InstanceUUID != "02" || f.Reason != payloads.StartFullComputeNode {
		t.Errorf("over-committing START: %+v", f)
	}
	srv.SendCommand(t, id, ssntp.START, StartPayload(StartInstance("03"), StartMemMB(1000)))
	srv.NextStatus(t, ssntp.FULL)
	a.SendStats(t)
	if st := srv.NextStats(t); st.Status != "FULL" || st.MemAvailableMB != 1000 || len(st.Instances) != 2 || st.Instances[1].InstanceUUID != "03" {
		t.Errorf("STATS when full: %+v", st)
	}

	srv.SendCommand(t, id, ssntp.DELETE, DeletePayload("01", node))
	srv.NextInstanceDeleted(t)
	if r := srv.NextReady(t); r.MemAvailableMB != 5000 {
		t.Errorf("READY after DELETE: %+v", r)
	}
	srv.Nothing(t, ssntp.STATUS, uint8(ssntp.READY), 20*time.Millisecond)

	// A node smaller than the threshold is FULL from the start.
	small := NewFakeAgent(t, srv.Port(), ssntp.AGENT, WithAutoReady(500))
	srv.NextStatus(t, ssntp.FULL)
	if st := srv.NextStats(t); st.NodeUUID != small.UUID().String() || st.Status != "FULL" {
		t.Errorf("small node STATS %+v", st)
	}
}

func TestAgentSenders(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	id, node := a.UUID(), a.UUID().String()
	srv.Nothing(t, ssntp.STATUS, uint8(ssntp.READY), 20*time.Millisecond) // no WithAutoReady: silent

	a.SendReady(t, 4096, 1024)
	if r := srv.NextReady(t); r != (payloads.Ready{NodeUUID: node, MemTotalMB: 4096, MemAvailableMB: 1024, DiskTotalMB: 500000, DiskAvailableMB: 256000, CpusOnline: 4}) {
		t.Errorf("READY %+v", r)
	}
	srv.SendCommand(t, id, ssntp.START, StartPayload())
	srv.SendCommand(t, id, ssntp.STOP, StopPayload(InstanceUUID, node))
	a.NextCommand(t, ssntp.STOP)
	a.SendStats(t)
	st := srv.NextStats(t)
	if st.NodeUUID != node || st.NodeHostName != AgentHostname || st.MemTotalMB != 4096 || st.MemAvailableMB != 1024 || st.Status != "READY" {
		t.Errorf("STATS %+v", st)
	}
	if len(st.Instances) != 1 || !reflect.DeepEqual(st.Instances[0], payloads.InstanceStat{InstanceUUID: InstanceUUID, State: payloads.InstanceExited, MemoryUsageMB: -1, DiskUsageMB: 10000, CPUUsage: -1, Volumes: []string{}}) {
		t.Errorf("STATS instances %+v", st.Instances)
	}
	a.SendFull(t)
	srv.NextStatus(t, ssntp.FULL)
	a.SendStats(t)
	if st := srv.NextStats(t); st.Status != "FULL" {
		t.Errorf("STATS after FULL says %q", st.Status)
	}

	a.SendTenantAdded(t, TenantUUID, CNCIUUID)
	if ev := srv.NextTenantAdded(t); ev.AgentUUID != node || ev.ConcentratorUUID != CNCIUUID || ev.SubnetKey != 8 {
		t.Errorf("TenantAdded %+v", ev)
	}
	a.SendTenantRemoved(t, TenantUUID, CNCIUUID)
	if ev := srv.NextTenantRemoved(t); ev.AgentUUID != node || ev.TenantUUID != TenantUUID {
		t.Errorf("TenantRemoved %+v", ev)
	}
	a.SendInstanceDeleted(t, InstanceUUID)
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != InstanceUUID {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	if len(a.Instances()) != 1 {
		t.Error("SendInstanceDeleted changed the instance table")
	}
}

func TestAgentTraceReport(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	tc := &ssntp.TraceConfig{Label: []byte("trace-me"), Start: time.Now(), PathTrace: true}
	srv.SendTracedCommand(t, a.UUID(), ssntp.START, StartPayload(), tc)
	srv.SendCommand(t, a.UUID(), ssntp.START, StartPayload(StartInstance("0abc"))) // untraced: not reported
	a.NextCommand(t, ssntp.START)
	a.NextCommand(t, ssntp.START)

	a.SendTraceReport(t)
	tr := srv.NextTraceReport(t)
	if len(tr.Frames) != 1 {
		t.Fatalf("report %+v", tr)
	}
	ft := tr.Frames[0]
	if ft.Label != "trace-me" || ft.Type != "COMMAND" || ft.Operand != "START" || ft.EndTimestamp == "" || len(ft.Nodes) != 2 {
		t.Errorf("frame trace %+v", ft)
	}
	if ft.Nodes[0].SSNTPUUID != srv.UUID().String() || ft.Nodes[0].SSNTPRole != "Server-Scheduler-" || ft.Nodes[0].TxTimestamp == "" {
		t.Errorf("server hop %+v", ft.Nodes[0])
	}
	if ft.Nodes[1].SSNTPUUID != a.UUID().String() || ft.Nodes[1].SSNTPRole != "CNAgent-" || ft.Nodes[1].RxTimestamp == "" {
		t.Errorf("agent hop %+v", ft.Nodes[1])
	}
	// The report empties the queue.
	a.SendTraceReport(t)
	if tr := srv.NextTraceReport(t); len(tr.Frames) != 0 {
		t.Errorf("second report %+v", tr)
	}
}

// TestAgentDropStarts: WithDropStarts(1) loses the first START (no answer,
// no instance); the same START sent again runs. WithDropDeletes does the
// same to DELETE.
func TestAgentDropStarts(t *testing.T) {
	srv := NewFakeServer(t)
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT, WithDropStarts(1))
	srv.SendCommand(t, a.UUID(), ssntp.START, StartPayload())
	a.NextStart(t)
	srv.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), 20*time.Millisecond)
	if _, ok := a.Instance(InstanceUUID); ok {
		t.Fatal("a dropped START created the instance")
	}
	srv.SendCommand(t, a.UUID(), ssntp.START, StartPayload())
	a.NextStart(t)
	waitInstance := time.Now().Add(WaitTimeout)
	for {
		if in, ok := a.Instance(InstanceUUID); ok && in.State == payloads.InstanceActive {
			break
		}
		if time.Now().After(waitInstance) {
			t.Fatal("the second START did not run")
		}
		time.Sleep(time.Millisecond) // poll interval, not a wait for state
	}
	a.Set(t, WithDropDeletes(1))
	srv.SendCommand(t, a.UUID(), ssntp.DELETE, DeletePayload(InstanceUUID, a.UUID().String()))
	a.NextCommand(t, ssntp.DELETE)
	srv.Nothing(t, ssntp.EVENT, uint8(ssntp.InstanceDeleted), 20*time.Millisecond)
	srv.SendCommand(t, a.UUID(), ssntp.DELETE, DeletePayload(InstanceUUID, a.UUID().String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != InstanceUUID {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	for _, o := range []Option{WithDropStarts(-1), WithDropDeletes(-1)} {
		bad := newSettings(kindAgent, []Option{o})
		if msg := fatal(t, func(tb testing.TB) { bad.check(tb) }); !strings.Contains(msg, "(-1): n must be >= 0") {
			t.Errorf("negative count: %q", msg)
		}
	}
}
