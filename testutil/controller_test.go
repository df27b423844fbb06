package testutil

import (
	"bytes"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// The controller's commands, as the server receives them.
func TestControllerSends(t *testing.T) {
	srv := NewFakeServer(t)
	c := NewFakeController(t, srv.Port())
	if rec := srv.NextConnect(t); rec.Peer != c.UUID() || rec.Role != ssntp.Controller {
		t.Fatalf("server saw %v", rec)
	}

	c.SendStart(t, StartInstance("0abc"), StartMemMB(512))
	if s := srv.NextStart(t); s.InstanceUUID != "0abc" {
		t.Errorf("START %+v", s)
	}
	c.SendStop(t, InstanceUUID, AgentUUID)
	if s := srv.NextStop(t); s != (payloads.StopCmd{InstanceUUID: InstanceUUID, WorkloadAgentUUID: AgentUUID}) {
		t.Errorf("STOP %+v", s)
	}
	c.SendRestart(t, InstanceUUID, AgentUUID)
	if s := srv.NextRestart(t); s.InstanceUUID != InstanceUUID || s.WorkloadAgentUUID != AgentUUID {
		t.Errorf("RESTART %+v", s)
	}
	c.SendDelete(t, InstanceUUID, AgentUUID)
	if s := srv.NextDelete(t); s != (payloads.StopCmd{InstanceUUID: InstanceUUID, WorkloadAgentUUID: AgentUUID}) {
		t.Errorf("DELETE %+v", s)
	}
	c.SendEvacuate(t, AgentUUID)
	if s := srv.NextEvacuate(t); s.WorkloadAgentUUID != AgentUUID {
		t.Errorf("EVACUATE %+v", s)
	}
	c.SendAttachVolume(t, InstanceUUID, VolumeUUID, AgentUUID)
	if s := Decode[payloads.AttachVolume](t, srv.NextCommand(t, ssntp.AttachVolume)); s.Attach.VolumeUUID != VolumeUUID {
		t.Errorf("AttachVolume %+v", s)
	}
	c.SendDetachVolume(t, InstanceUUID, VolumeUUID, AgentUUID)
	if s := Decode[payloads.DetachVolume](t, srv.NextCommand(t, ssntp.DetachVolume)); s.Detach.InstanceUUID != InstanceUUID {
		t.Errorf("DetachVolume %+v", s)
	}

	// CONFIGURE is stored by the server for later CONNECTEDs.
	c.SendConfigure(t, ConfigureCmd())
	cfg := Decode[payloads.Configure](t, srv.NextCommand(t, ssntp.CONFIGURE))
	if cfg.Configure.Scheduler.ConfigStorageURI != StorageURI {
		t.Errorf("CONFIGURE %+v", cfg)
	}
	if got := srv.Server().ClusterConfiguration(); !bytes.Equal(got, ConfigurePayload()) {
		t.Errorf("server keeps %q", got)
	}
	late := NewFakeController(t, srv.Port())
	if got := late.Client().ClusterConfiguration(); !bytes.Equal(got, ConfigurePayload()) {
		t.Errorf("a later controller got configuration %q", got)
	}

	// Traced commands carry the controller's hop.
	c.SendTracedCommand(t, ssntp.START, StartPayload(), &ssntp.TraceConfig{Label: []byte("l"), PathTrace: true})
	if f := srv.NextCommand(t, ssntp.START); !f.PathTrace() || len(f.Trace.Path) != 2 {
		t.Errorf("traced START %+v", f.Trace)
	}
}

// Decode is strict, so a key the payload type does not know fails the test.
func TestDecodeIsStrict(t *testing.T) {
	f := &ssntp.Frame{Type: ssntp.STATUS, Operand: uint8(ssntp.READY), Payload: []byte("node_uuid: x\nmem_totl_mb: 3\n")}
	msg := fatal(t, func(tb testing.TB) { Decode[payloads.Ready](tb, f) })
	if !bytes.Contains([]byte(msg), []byte("mem_totl_mb")) {
		t.Errorf("misspelt key not reported: %q", msg)
	}
	// Missing numbers read −1, as for the real receivers.
	f.Payload = []byte("node_uuid: x\n")
	if r := Decode[payloads.Ready](t, f); r.MemTotalMB != -1 || r.CpusOnline != -1 {
		t.Errorf("%+v", r)
	}
}

// A fake reconnects by itself when its server comes back, as a daemon does.
func TestControllerReconnects(t *testing.T) {
	srv := NewFakeServer(t)
	c := NewFakeController(t, srv.Port())
	srv.NextConnect(t)
	srv.Close()
	c.NextDisconnect(t)

	again := NewFakeServer(t, WithConfig(func(cfg *ssntp.Config) { cfg.Port = srv.Port() }))
	c.NextConnect(t)
	if rec := again.NextConnect(t); rec.Peer != c.UUID() {
		t.Errorf("new server saw %v", rec)
	}
	c.Close()
	c.Close() // twice is fine
	again.NextDisconnect(t)
	c.Nothing(t, ssntp.EVENT, uint8(ssntp.NodeConnected), 10*time.Millisecond)
}
