package testutil

import (
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// quiet is how long Nothing listens for a frame that must not come. The
// frames it guards against would be relayed in well under a millisecond.
const quiet = 50 * time.Millisecond

// TestCluster drives a whole fake cluster: every relaying path of the
// scheduler policy, end to end.
func TestCluster(t *testing.T) {
	srv := NewFakeServer(t)
	ctl := NewFakeController(t, srv.Port())
	agent := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	net := NewFakeAgent(t, srv.Port(), ssntp.NETAGENT)
	cnci := NewFakeCNCIAgent(t, srv.Port())
	agentID, netID := agent.UUID().String(), net.UUID().String()

	// Nodes are announced to the controller, which was there first.
	seen := map[payloads.NodeConnectedEvent]bool{}
	seen[ctl.NextNodeConnected(t)] = true
	seen[ctl.NextNodeConnected(t)] = true
	if !seen[payloads.NodeConnectedEvent{NodeUUID: agentID, NodeType: payloads.ComputeNode}] ||
		!seen[payloads.NodeConnectedEvent{NodeUUID: netID, NodeType: payloads.NetworkNode}] {
		t.Errorf("NodeConnected events %v", seen)
	}
	if ev := ctl.NextConcentratorAdded(t); ev.InstanceUUID != CNCIUUID {
		t.Errorf("ConcentratorInstanceAdded %+v", ev)
	}

	// START reaches the compute node, a network START the network node.
	ctl.SendStart(t)
	if s := agent.NextStart(t); s.InstanceUUID != InstanceUUID {
		t.Errorf("agent got START %+v", s)
	}
	if in := agent.Instances(); len(in) != 1 || in[0].UUID != InstanceUUID || in[0].State != payloads.InstanceActive {
		t.Errorf("agent instances %+v", in)
	}
	ctl.SendStart(t, StartInstance(CNCIInstanceUUID), StartNetworkNode())
	if s := net.NextStart(t); s.InstanceUUID != CNCIInstanceUUID {
		t.Errorf("netagent got START %+v", s)
	}
	if in, ok := net.Instance(CNCIInstanceUUID); !ok || !in.NetworkNode {
		t.Errorf("netagent instance %+v", in)
	}
	agent.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), quiet)
	net.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), quiet)

	// STOP, RESTART and DELETE go to their workload_agent_uuid only.
	ctl.SendStop(t, CNCIInstanceUUID, netID)
	net.NextStop(t)
	ctl.SendStop(t, InstanceUUID, agentID)
	if s := agent.NextStop(t); s.InstanceUUID != InstanceUUID {
		t.Errorf("agent got STOP %+v", s)
	}
	agent.Nothing(t, ssntp.COMMAND, uint8(ssntp.STOP), quiet)
	net.Nothing(t, ssntp.COMMAND, uint8(ssntp.STOP), quiet)
	ctl.SendRestart(t, InstanceUUID, agentID)
	agent.NextRestart(t)
	ctl.SendEvacuate(t, netID)
	net.NextEvacuate(t)
	ctl.SendAttachVolume(t, InstanceUUID, VolumeUUID, agentID)
	agent.NextCommand(t, ssntp.AttachVolume)
	ctl.SendDetachVolume(t, InstanceUUID, VolumeUUID, agentID)
	agent.NextCommand(t, ssntp.DetachVolume)
	ctl.SendDelete(t, InstanceUUID, agentID)
	agent.NextDelete(t)
	if ev := ctl.NextInstanceDeleted(t); ev.InstanceUUID != InstanceUUID {
		t.Errorf("controller got InstanceDeleted %+v", ev)
	}
	net.Nothing(t, ssntp.COMMAND, uint8(ssntp.DELETE), quiet)

	// STATS reach the controller; agent failures too, with their reason.
	net.SendStats(t)
	if st := ctl.NextStats(t); st.NodeUUID != netID || len(st.Instances) != 1 || st.Instances[0].State != payloads.InstanceExited {
		t.Errorf("controller got STATS %+v", st)
	}
	agent.Set(t, WithStartFailure(payloads.StartImageFailure))
	ctl.SendStart(t, StartInstance("0bad"))
	if f := ctl.NextStartFailure(t); f.InstanceUUID != "0bad" || f.Reason != payloads.StartImageFailure {
		t.Errorf("controller got StartFailure %+v", f)
	}
	ctl.SendStop(t, "0bad", agentID)
	if f := ctl.NextStopFailure(t); f.Reason != payloads.StopNoInstance {
		t.Errorf("controller got StopFailure %+v", f)
	}

	// TenantAdded reaches the CNCI named by concentrator_uuid.
	agent.SendTenantAdded(t, TenantUUID, CNCIUUID)
	if ev := cnci.NextTenantAdded(t); ev.AgentUUID != agentID {
		t.Errorf("CNCI got TenantAdded %+v", ev)
	}
	if tun := cnci.Tunnels(); len(tun) != 1 {
		t.Errorf("CNCI tunnels %+v", tun)
	}
	agent.SendTenantRemoved(t, TenantUUID, CNCIUUID)
	cnci.NextTenantRemoved(t)
	ctl.Nothing(t, ssntp.EVENT, uint8(ssntp.TenantAdded), 0)

	// Trace reports and public IPs are the controller's.
	agent.SendTraceReport(t)
	ctl.NextTraceReport(t)
	cnci.SendEvent(t, ssntp.PublicIPAssigned, Marshal(t, payloads.EventPublicIPAssigned{AssignedIP: payloads.PublicIPEvent{
		ConcentratorUUID: CNCIUUID, InstanceUUID: InstanceUUID, PublicIP: InstancePublicIP, PrivateIP: InstancePrivateIP}}))
	if ev := Decode[payloads.EventPublicIPAssigned](t, ctl.NextEvent(t, ssntp.PublicIPAssigned)); ev.AssignedIP.PublicIP != InstancePublicIP {
		t.Errorf("controller got PublicIPAssigned %+v", ev)
	}

	// A node leaving is announced.
	net.Close()
	if ev := ctl.NextNodeDisconnected(t); ev != (payloads.NodeConnectedEvent{NodeUUID: netID, NodeType: payloads.NetworkNode}) {
		t.Errorf("NodeDisconnected %+v", ev)
	}
	if rec := srv.NextDisconnect(t); rec.Peer != net.UUID() || rec.Role != ssntp.NETAGENT {
		t.Errorf("server saw %v", rec)
	}
	if ids := srv.Clients(ssntp.UNKNOWN); len(ids) != 3 {
		t.Errorf("clients left: %v", ids)
	}

	// The server saw it all, nothing the controller did not ask for
	// reached it, and nothing went the wrong way.
	if len(srv.Received()) == 0 {
		t.Error("server recorded nothing")
	}
	ctl.Nothing(t, ssntp.ERROR, uint8(ssntp.DeleteFailure), quiet)
	agent.Nothing(t, ssntp.COMMAND, uint8(ssntp.STATS), 0)
	cnci.Nothing(t, ssntp.EVENT, uint8(ssntp.InstanceDeleted), 0)
}

func TestServerRoundRobin(t *testing.T) {
	srv := NewFakeServer(t)
	ctl := NewFakeController(t, srv.Port())
	a1 := NewFakeAgent(t, srv.Port(), ssntp.AGENT, WithUUID(testUUID(1)))
	a2 := NewFakeAgent(t, srv.Port(), ssntp.AGENT, WithUUID(testUUID(2)))
	both := NewFakeAgent(t, srv.Port(), ssntp.AGENT|ssntp.NETAGENT, WithUUID(testUUID(3)))

	// A node with both roles is announced as both.
	got := map[payloads.NodeConnectedEvent]bool{}
	for range 4 {
		got[ctl.NextNodeConnected(t)] = true
	}
	for _, typ := range []payloads.Resource{payloads.ComputeNode, payloads.NetworkNode} {
		if !got[payloads.NodeConnectedEvent{NodeUUID: both.UUID().String(), NodeType: typ}] {
			t.Errorf("no NodeConnected %s for the AGENT|NETAGENT node: %v", typ, got)
		}
	}

	for i := range 6 {
		ctl.SendStart(t, StartInstance(string(rune('a'+i))))
	}
	for _, a := range []*FakeAgent{a1, a2, both} {
		a.NextStart(t)
		a.NextStart(t)
	}
	ctl.SendStart(t, StartInstance("0f"), StartNetworkNode())
	both.NextStart(t) // the only network node
	for _, a := range []*FakeAgent{a1, a2, both} {
		a.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), quiet)
	}
}

func TestServerWithoutNodes(t *testing.T) {
	srv := NewFakeServer(t)
	ctl := NewFakeController(t, srv.Port())
	ctl.SendStart(t)
	if f := ctl.NextStartFailure(t); f.InstanceUUID != InstanceUUID || f.Reason != payloads.StartNoComputeNodes {
		t.Errorf("compute START: %+v", f)
	}
	NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	ctl.SendStart(t, StartNetworkNode())
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartNoNetworkNodes {
		t.Errorf("network START: %+v", f)
	}
	// The scheduler's own StartFailure goes to the requester only.
	other := NewFakeController(t, srv.Port())
	ctl.SendStart(t, StartNetworkNode())
	ctl.NextStartFailure(t)
	other.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), quiet)
}

// The server drops what the scheduler drops: commands from non-Controllers,
// STARTs it cannot place, commands for agents that are not there.
func TestServerDrops(t *testing.T) {
	srv := NewFakeServer(t)
	ctl := NewFakeController(t, srv.Port())
	a := NewFakeAgent(t, srv.Port(), ssntp.AGENT)
	b := NewFakeAgent(t, srv.Port(), ssntp.AGENT)

	b.SendCommand(t, ssntp.START, StartPayload())
	b.SendCommand(t, ssntp.STOP, StopPayload(InstanceUUID, a.UUID().String()))
	ctl.SendStart(t, StartMemMB(0))
	ctl.SendCommand(t, ssntp.START, []byte("start: ["))
	ctl.SendStop(t, InstanceUUID, NetAgentUUID) // not connected
	ctl.SendStop(t, InstanceUUID, "")
	ctl.SendCommand(t, ssntp.DELETE, []byte("delete: ["))
	a.SendTenantAdded(t, TenantUUID, CNCIUUID) // no CNCI
	a.SendEvent(t, ssntp.TenantAdded, []byte(": ["))

	// Everything reached the server, in order, and went no further.
	srv.NextEvent(t, ssntp.TenantAdded)
	srv.NextEvent(t, ssntp.TenantAdded)
	for _, x := range []*FakeAgent{a, b} {
		x.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), quiet)
		x.Nothing(t, ssntp.COMMAND, uint8(ssntp.STOP), 0)
		x.Nothing(t, ssntp.COMMAND, uint8(ssntp.DELETE), 0)
	}
	ctl.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), 0)
	// STATS go to Controllers, never to other agents or back.
	a.SendStats(t)
	ctl.NextStats(t)
	b.Nothing(t, ssntp.COMMAND, uint8(ssntp.STATS), quiet)
	a.Nothing(t, ssntp.COMMAND, uint8(ssntp.STATS), 0)
}

// A test can play the scheduler toward a client with the Send helpers.
func TestServerSends(t *testing.T) {
	srv := NewFakeServer(t, WithRole(ssntp.SERVER), WithConfig(func(c *ssntp.Config) { c.ClusterConfig = ConfigurePayload() }))
	ctl := NewFakeController(t, srv.Port())
	if string(ctl.Client().ClusterConfiguration()) != string(ConfigurePayload()) {
		t.Errorf("CONNECTED carried %q", ctl.Client().ClusterConfiguration())
	}
	if ctl.Client().ServerUUID() != srv.UUID() {
		t.Errorf("server UUID %s, client saw %s", srv.UUID(), ctl.Client().ServerUUID())
	}
	id := ctl.UUID()
	srv.SendStatus(t, id, ssntp.READY, nil)
	ctl.NextStatus(t, ssntp.READY)
	srv.SendEvent(t, id, ssntp.NodeConnected, NodeConnectedPayload(AgentUUID, payloads.ComputeNode))
	if ev := ctl.NextNodeConnected(t); ev.NodeUUID != AgentUUID {
		t.Errorf("NodeConnected %+v", ev)
	}
	srv.SendError(t, id, ssntp.StartFailure, StartFailurePayload(InstanceUUID, payloads.StartFullCloud))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartFullCloud {
		t.Errorf("StartFailure %+v", f)
	}
	srv.SendCommand(t, id, ssntp.CONFIGURE, []byte("configure: new\n"))
	ctl.NextCommand(t, ssntp.CONFIGURE)
	if string(ctl.Client().ClusterConfiguration()) != "configure: new\n" {
		t.Errorf("client keeps %q", ctl.Client().ClusterConfiguration())
	}
	if msg := fatal(t, func(tb testing.TB) { srv.SendCommand(tb, testUUID(9), ssntp.START, nil) }); msg == "" {
		t.Error("sending to an unknown client did not fail")
	}
}
