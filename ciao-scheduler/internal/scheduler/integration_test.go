package scheduler

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
	"go.uber.org/goleak"
	yaml "gopkg.in/yaml.v2"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

// newTestScheduler starts a scheduler on a free port of 127.0.0.1 with the
// test certificates and closes it at cleanup.
func newTestScheduler(tb testing.TB, mutate func(*Config)) *Scheduler {
	tb.Helper()
	c := testutil.TestCerts(tb)
	cfg := NewConfig()
	cfg.Cert, cfg.CACert = "", ""
	cfg.CertPEM, cfg.CACertPEM = c.AnchorKey, c.CACert
	cfg.Listen = "127.0.0.1:0"
	cfg.ConfigURI = ""
	cfg.ClusterConfig = testutil.ConfigurePayload()
	cfg.SSNTPLog = testutil.Logger(tb)
	cfg.WriteTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	tb.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nodeState is a node's status in a pool, or -1 when absent.
func (s *Scheduler) nodeState(p *pool, id uuid.UUID) (placement.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := p.node(id)
	if n == nil {
		return placement.Node{}, false
	}
	return *n, true
}

// readyAgent connects a fake launcher, has it report memMB free and waits
// until the scheduler counts it as READY.
func readyAgent(tb testing.TB, s *Scheduler, role ssntp.Role, memMB int, opts ...testutil.Option) *testutil.FakeAgent {
	tb.Helper()
	a := testutil.NewFakeAgent(tb, s.Port(), role, opts...)
	a.SendReady(tb, memMB, memMB)
	p := &s.cn
	if role == ssntp.NETAGENT {
		p = &s.nn
	}
	waitFor(tb, "agent READY", func() bool {
		n, ok := s.nodeState(p, a.UUID())
		return ok && n.Ready && n.MemAvailMB == memMB
	})
	return a
}

func instanceID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-000000000000", i) }

func TestPlacementAcrossThreeNodes(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	agents := make([]*testutil.FakeAgent, 3)
	for i := range agents {
		agents[i] = readyAgent(t, s, ssntp.AGENT, 16384)
		if ev := ctl.NextNodeConnected(t); ev.NodeUUID != agents[i].UUID().String() || ev.NodeType != payloads.ComputeNode {
			t.Fatalf("NodeConnected %+v for agent %d", ev, i)
		}
	}
	// First fit after the last node used: round robin over equal nodes.
	for i := 0; i < 6; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)), testutil.StartMemMB(1024))
		got := agents[i%3].NextStart(t)
		if got.InstanceUUID != instanceID(i) {
			t.Fatalf("START %d reached agent %d as %s", i, i%3, got.InstanceUUID)
		}
	}
	for _, a := range agents {
		a.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 50*time.Millisecond)
	}
	// The speculative reservation shows until the next READY.
	n, _ := s.nodeState(&s.cn, agents[0].UUID())
	if n.MemAvailMB != 16384-2*1024 {
		t.Fatalf("agent 0 has %d MB available, want %d", n.MemAvailMB, 16384-2*1024)
	}
	ctl.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), 10*time.Millisecond)
}

func TestFullNodeSkipped(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	a := readyAgent(t, s, ssntp.AGENT, 16384)
	b := readyAgent(t, s, ssntp.AGENT, 16384)
	c := readyAgent(t, s, ssntp.AGENT, 16384)
	b.SendFull(t)
	waitFor(t, "agent b FULL", func() bool { n, _ := s.nodeState(&s.cn, b.UUID()); return !n.Ready })
	for i := 0; i < 4; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)), testutil.StartMemMB(512))
	}
	a.NextStart(t)
	c.NextStart(t)
	a.NextStart(t)
	c.NextStart(t)
	b.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 50*time.Millisecond)

	// READY again: b is eligible again; the scan after c wraps to a,
	// then reaches b.
	b.SendReady(t, 16384, 16384)
	waitFor(t, "agent b READY", func() bool { n, _ := s.nodeState(&s.cn, b.UUID()); return n.Ready })
	ctl.SendStart(t, testutil.StartInstance(instanceID(8)), testutil.StartMemMB(512))
	ctl.SendStart(t, testutil.StartInstance(instanceID(9)), testutil.StartMemMB(512))
	if got := a.NextStart(t); got.InstanceUUID != instanceID(8) {
		t.Fatalf("a got %s", got.InstanceUUID)
	}
	if got := b.NextStart(t); got.InstanceUUID != instanceID(9) {
		t.Fatalf("b got %s", got.InstanceUUID)
	}
}

func TestNoComputeNode(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartNoComputeNodes || f.InstanceUUID != instanceID(1) {
		t.Fatalf("got %+v, want no_cn for %s", f, instanceID(1))
	}
	ctl.SendStart(t, testutil.StartInstance(testutil.CNCIInstanceUUID), testutil.StartNetworkNode())
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartNoNetworkNodes || f.InstanceUUID != testutil.CNCIInstanceUUID {
		t.Fatalf("got %+v, want no_net_cn", f)
	}
	// A connected node that has not said READY yet does not count as room:
	// the cloud is full, not empty.
	testutil.NewFakeAgent(t, s.Port(), ssntp.AGENT)
	ctl.NextNodeConnected(t)
	ctl.SendStart(t, testutil.StartInstance(instanceID(2)))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartFullCloud {
		t.Fatalf("got %+v, want full_cloud", f)
	}
}

func TestMemoryExhausted(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	a := readyAgent(t, s, ssntp.AGENT, 4096)
	b := readyAgent(t, s, ssntp.AGENT, 2048)
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)), testutil.StartMemMB(4096))
	a.NextStart(t)
	// a is spoken for until its next READY, b is too small.
	ctl.SendStart(t, testutil.StartInstance(instanceID(2)), testutil.StartMemMB(4096))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartFullCloud || f.InstanceUUID != instanceID(2) {
		t.Fatalf("got %+v, want full_cloud", f)
	}
	ctl.SendStart(t, testutil.StartInstance(instanceID(3)), testutil.StartMemMB(2048))
	b.NextStart(t)
	ctl.SendStart(t, testutil.StartInstance(instanceID(4)), testutil.StartMemMB(1))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartFullCloud {
		t.Fatalf("got %+v, want full_cloud", f)
	}
	// The node's READY overwrites the reservation.
	a.SendReady(t, 4096, 4096)
	waitFor(t, "a READY again", func() bool { n, _ := s.nodeState(&s.cn, a.UUID()); return n.MemAvailMB == 4096 })
	ctl.SendStart(t, testutil.StartInstance(instanceID(5)), testutil.StartMemMB(4096))
	a.NextStart(t)
}

// TestAutoReportingAgents runs agents that behave like launchers (READY
// and STATS on connect, READY or FULL after each START) until the cloud is
// full.
func TestAutoReportingAgents(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	var agents []*testutil.FakeAgent
	for i := 0; i < 3; i++ {
		a := testutil.NewFakeAgent(t, s.Port(), ssntp.AGENT, testutil.WithAutoReady(4096), testutil.WithFullBelow(1024))
		agents = append(agents, a)
		ctl.NextStats(t)
		waitFor(t, "auto READY", func() bool { n, _ := s.nodeState(&s.cn, a.UUID()); return n.Ready })
	}
	// Each node takes four 1024 MB instances: after the third it still
	// has 1024 MB, not below the FULL mark, so it says READY; after the
	// fourth it says FULL.
	placed := 0
	for i := 0; ; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)), testutil.StartMemMB(1024))
		// Wait for the node's status after the START before the next
		// one, as the controller's pace would allow in practice.
		done := false
		waitFor(t, "START outcome", func() bool {
			for _, r := range ctl.Received() {
				if r.Frame != nil && r.Frame.Type == ssntp.ERROR {
					done = true
					return true
				}
			}
			total := 0
			for _, a := range agents {
				total += len(a.Instances())
			}
			return total == i+1
		})
		if done {
			break
		}
		placed++
		// Let the READY/FULL reach the scheduler.
		waitFor(t, "status after START", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			used := 0
			for k := range s.cn.nodes {
				n := &s.cn.nodes[k]
				if n.Ready {
					used += 4096 - n.MemAvailMB
				} else {
					used += 4096
				}
			}
			return used >= placed*1024
		})
		if i > 20 {
			t.Fatal("the cloud never filled up")
		}
	}
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartFullCloud {
		t.Fatalf("got %+v, want full_cloud", f)
	}
	if placed != 12 {
		t.Fatalf("placed %d instances, want 12 (four per node)", placed)
	}
	for i, a := range agents {
		if n := len(a.Instances()); n != 4 {
			t.Errorf("agent %d runs %d instances, want 4", i, n)
		}
	}
}

func TestNetworkNodePlacement(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	cn := readyAgent(t, s, ssntp.AGENT, 16384)
	nn1 := readyAgent(t, s, ssntp.NETAGENT, 16384)
	nn2 := readyAgent(t, s, ssntp.NETAGENT, 16384)
	// Network STARTs go round robin over the network nodes (the 2016
	// "never twice in a row" rule and its lock leak are gone).
	for i := 0; i < 4; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)), testutil.StartNetworkNode())
		nn := []*testutil.FakeAgent{nn1, nn2}[i%2]
		if got := nn.NextStart(t); got.InstanceUUID != instanceID(i) {
			t.Fatalf("CNCI START %d went elsewhere: %s", i, got.InstanceUUID)
		}
	}
	ctl.SendStart(t, testutil.StartInstance(instanceID(10)))
	if got := cn.NextStart(t); got.InstanceUUID != instanceID(10) {
		t.Fatalf("compute START: %s", got.InstanceUUID)
	}
	nn1.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 20*time.Millisecond)
	nn2.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 20*time.Millisecond)
	cn.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 20*time.Millisecond)

	// Only one network node has room: it takes the START even though it
	// took the previous one.
	nn2.SendFull(t)
	waitFor(t, "nn2 FULL", func() bool { n, _ := s.nodeState(&s.nn, nn2.UUID()); return !n.Ready })
	for i := 20; i < 22; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)), testutil.StartNetworkNode())
		nn1.NextStart(t)
	}
	nn1.SendFull(t)
	waitFor(t, "nn1 FULL", func() bool { n, _ := s.nodeState(&s.nn, nn1.UUID()); return !n.Ready })
	ctl.SendStart(t, testutil.StartInstance(instanceID(30)), testutil.StartNetworkNode())
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartNoNetworkNodes {
		t.Fatalf("got %+v, want no_net_cn", f)
	}
}

func TestDualRoleLauncher(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	a := testutil.NewFakeAgent(t, s.Port(), ssntp.AGENT|ssntp.NETAGENT)
	kinds := map[payloads.Resource]bool{}
	for i := 0; i < 2; i++ {
		ev := ctl.NextNodeConnected(t)
		if ev.NodeUUID != a.UUID().String() {
			t.Fatalf("NodeConnected for %s", ev.NodeUUID)
		}
		kinds[ev.NodeType] = true
	}
	if !kinds[payloads.ComputeNode] || !kinds[payloads.NetworkNode] {
		t.Fatalf("node types %v", kinds)
	}
	a.SendReady(t, 8192, 8192)
	waitFor(t, "both pools READY", func() bool {
		c, _ := s.nodeState(&s.cn, a.UUID())
		n, _ := s.nodeState(&s.nn, a.UUID())
		return c.Ready && n.Ready
	})
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)), testutil.StartNetworkNode())
	a.NextStart(t)
	ctl.SendStart(t, testutil.StartInstance(instanceID(2)))
	a.NextStart(t)
	a.Close()
	for i := 0; i < 2; i++ {
		if ev := ctl.NextNodeDisconnected(t); ev.NodeUUID != a.UUID().String() {
			t.Fatalf("NodeDisconnected for %s", ev.NodeUUID)
		}
	}
}

func TestInvalidStartAnswered(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	readyAgent(t, s, ssntp.AGENT, 16384)
	tests := []struct {
		name     string
		payload  string
		reason   payloads.StartFailureReason
		instance string
	}{
		{"bad yaml", "start: [\n", payloads.StartInvalidPayload, ""},
		{"no mem_mb", "start:\n  instance_uuid: " + instanceID(1) + "\n  requested_resources:\n  - type: vcpus\n    value: 2\n", payloads.StartInvalidData, instanceID(1)},
		{"negative mem_mb", "start:\n  instance_uuid: " + instanceID(2) + "\n  requested_resources:\n  - type: mem_mb\n    value: -5\n", payloads.StartInvalidData, instanceID(2)},
		{"network_node 3", "start:\n  instance_uuid: " + instanceID(3) + "\n  requested_resources:\n  - type: mem_mb\n    value: 5\n  - type: network_node\n    value: 3\n", payloads.StartInvalidData, instanceID(3)},
		{"empty", "", payloads.StartInvalidData, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctl.SendCommand(t, ssntp.START, []byte(tc.payload))
			f := ctl.NextStartFailure(t)
			if f.Reason != tc.reason || f.InstanceUUID != tc.instance {
				t.Fatalf("got %+v, want %s for %q", f, tc.reason, tc.instance)
			}
		})
	}
}

func TestControllerElection(t *testing.T) {
	s := newTestScheduler(t, nil)
	master := testutil.NewFakeController(t, s.Port())
	waitFor(t, "master", func() bool { return s.isMaster(master.UUID()) })
	backup := testutil.NewFakeController(t, s.Port())
	waitFor(t, "backup", func() bool { s.members.Lock(); defer s.members.Unlock(); return len(s.controllers) == 2 })
	a := readyAgent(t, s, ssntp.AGENT, 16384)
	// Both controllers hear about the node and get its STATS.
	master.NextNodeConnected(t)
	backup.NextNodeConnected(t)
	a.SendStats(t)
	master.NextStats(t)
	backup.NextStats(t)

	backup.SendStart(t, testutil.StartInstance(instanceID(1)))
	backup.SendStop(t, instanceID(1), a.UUID().String())
	// The backup's commands are dropped; the master's are obeyed, and
	// the agent sees them in the order sent.
	master.SendStart(t, testutil.StartInstance(instanceID(2)))
	if got := a.NextStart(t); got.InstanceUUID != instanceID(2) {
		t.Fatalf("agent got the backup's START %s", got.InstanceUUID)
	}
	a.Nothing(t, ssntp.COMMAND, uint8(ssntp.STOP), 20*time.Millisecond)
	backup.Nothing(t, ssntp.ERROR, uint8(ssntp.StartFailure), 10*time.Millisecond)

	master.Close()
	waitFor(t, "backup promoted", func() bool { return s.isMaster(backup.UUID()) })
	backup.SendStart(t, testutil.StartInstance(instanceID(3)))
	if got := a.NextStart(t); got.InstanceUUID != instanceID(3) {
		t.Fatalf("promoted backup's START: %s", got.InstanceUUID)
	}
	// A controller arriving late is told about the nodes already there.
	late := testutil.NewFakeController(t, s.Port())
	if ev := late.NextNodeConnected(t); ev.NodeUUID != a.UUID().String() {
		t.Fatalf("late controller told about %s", ev.NodeUUID)
	}
}

// TestForwarding checks that every routed frame reaches the right peer
// and no other.
func TestForwarding(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	backup := testutil.NewFakeController(t, s.Port())
	a := readyAgent(t, s, ssntp.AGENT, 16384)
	b := readyAgent(t, s, ssntp.AGENT, 16384)
	cnci := testutil.NewFakeCNCIAgent(t, s.Port())
	for _, c := range []*testutil.FakeController{ctl, backup} {
		if ev := c.NextConcentratorAdded(t); ev.InstanceUUID != testutil.CNCIUUID {
			t.Fatalf("ConcentratorInstanceAdded %+v", ev)
		}
	}
	aID, bID := a.UUID().String(), b.UUID().String()

	// Controller → the agent named in the payload.
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)))
	a.NextStart(t)
	ctl.SendStop(t, instanceID(1), aID)
	if got := a.NextStop(t); got.InstanceUUID != instanceID(1) {
		t.Fatalf("STOP %+v", got)
	}
	ctl.SendRestart(t, instanceID(1), aID)
	a.NextRestart(t)
	ctl.SendAttachVolume(t, instanceID(1), testutil.VolumeUUID, aID)
	a.NextCommand(t, ssntp.AttachVolume)
	ctl.SendDetachVolume(t, instanceID(1), testutil.VolumeUUID, aID)
	a.NextCommand(t, ssntp.DetachVolume)
	ctl.SendDelete(t, instanceID(1), aID)
	a.NextDelete(t)
	ctl.SendEvacuate(t, bID)
	if got := b.NextEvacuate(t); got.WorkloadAgentUUID != bID {
		t.Fatalf("EVACUATE %+v", got)
	}
	for _, cmd := range []ssntp.Command{ssntp.STOP, ssntp.RESTART, ssntp.DELETE, ssntp.AttachVolume, ssntp.DetachVolume} {
		a.Nothing(t, ssntp.COMMAND, uint8(cmd), 0)
	}
	for _, cmd := range []ssntp.Command{ssntp.START, ssntp.STOP, ssntp.RESTART, ssntp.DELETE, ssntp.AttachVolume, ssntp.DetachVolume} {
		b.Nothing(t, ssntp.COMMAND, uint8(cmd), 0)
	}
	a.Nothing(t, ssntp.COMMAND, uint8(ssntp.EVACUATE), 0)

	// Agent → every controller.
	a.SendStats(t)
	a.SendInstanceDeleted(t, instanceID(1))
	a.SendError(t, ssntp.StartFailure, testutil.StartFailurePayload(instanceID(7), payloads.StartFullComputeNode))
	a.SendError(t, ssntp.StopFailure, testutil.StopFailurePayload(instanceID(7), payloads.StopNoInstance))
	a.SendError(t, ssntp.RestartFailure, testutil.RestartFailurePayload(instanceID(7), payloads.RestartNoInstance))
	a.SendError(t, ssntp.DeleteFailure, testutil.DeleteFailurePayload(instanceID(7), payloads.DeleteNoInstance))
	a.SendError(t, ssntp.AttachVolumeFailure, testutil.Marshal(t, payloads.ErrorAttachVolumeFailure{InstanceUUID: instanceID(7), Reason: payloads.AttachVolumeNoInstance}))
	a.SendTraceReport(t)
	for _, c := range []*testutil.FakeController{ctl, backup} {
		if st := c.NextStats(t); st.NodeUUID != aID {
			t.Fatalf("STATS from %s", st.NodeUUID)
		}
		if ev := c.NextInstanceDeleted(t); ev.InstanceUUID != instanceID(1) {
			t.Fatalf("InstanceDeleted %+v", ev)
		}
		if f := c.NextStartFailure(t); f.Reason != payloads.StartFullComputeNode {
			t.Fatalf("StartFailure %+v", f)
		}
		c.NextStopFailure(t)
		c.NextRestartFailure(t)
		c.NextDeleteFailure(t)
		c.NextError(t, ssntp.AttachVolumeFailure)
		c.NextTraceReport(t)
	}
	// Not echoed to the sender nor sent to other agents.
	b.Nothing(t, ssntp.COMMAND, uint8(ssntp.STATS), 0)
	a.Nothing(t, ssntp.COMMAND, uint8(ssntp.STATS), 0)

	// Agent → the CNCI named in the payload; controller → CNCI.
	a.SendTenantAdded(t, testutil.TenantUUID, testutil.CNCIUUID)
	a.SendTenantRemoved(t, testutil.TenantUUID, testutil.CNCIUUID)
	if ev := cnci.NextTenantAdded(t); ev.AgentUUID != aID || ev.ConcentratorUUID != testutil.CNCIUUID {
		t.Fatalf("TenantAdded %+v", ev)
	}
	cnci.NextTenantRemoved(t)
	assign := testutil.Marshal(t, payloads.CommandAssignPublicIP{AssignIP: payloads.PublicIPCommand{
		ConcentratorUUID: testutil.CNCIUUID, TenantUUID: testutil.TenantUUID, InstanceUUID: instanceID(1),
		PublicIP: testutil.InstancePublicIP, PrivateIP: testutil.InstancePrivateIP, VnicMAC: testutil.VNICMAC}})
	ctl.SendCommand(t, ssntp.AssignPublicIP, assign)
	cnci.NextCommand(t, ssntp.AssignPublicIP)

	// CNCI → every controller.
	cnci.SendEvent(t, ssntp.PublicIPAssigned, testutil.Marshal(t, payloads.EventPublicIPAssigned{AssignedIP: payloads.PublicIPEvent{
		ConcentratorUUID: testutil.CNCIUUID, InstanceUUID: instanceID(1), PublicIP: testutil.InstancePublicIP, PrivateIP: testutil.InstancePrivateIP}}))
	ctl.NextEvent(t, ssntp.PublicIPAssigned)
	backup.NextEvent(t, ssntp.PublicIPAssigned)

	// Unreadable agent commands are answered, not dropped.
	ctl.SendCommand(t, ssntp.STOP, []byte("stop: [\n"))
	if f := ctl.NextStopFailure(t); f.Reason != payloads.StopInvalidPayload {
		t.Fatalf("StopFailure %+v", f)
	}
	ctl.SendCommand(t, ssntp.DELETE, testutil.DeletePayload(instanceID(1), ""))
	if f := ctl.NextDeleteFailure(t); f.Reason != payloads.DeleteInvalidData || f.InstanceUUID != instanceID(1) {
		t.Fatalf("DeleteFailure %+v", f)
	}
	// STATUS frames are consumed by the scheduler.
	ctl.Nothing(t, ssntp.STATUS, uint8(ssntp.READY), 0)
}

// TestNodeDisconnectMidFlight covers a node leaving between the decision
// and the write (the START is placed again) and after it (the controller
// hears NodeDisconnected and later STARTs go elsewhere).
func TestNodeDisconnectMidFlight(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	a := readyAgent(t, s, ssntp.AGENT, 16384)
	ctl.NextNodeConnected(t)

	// A node the SSNTP layer no longer knows but the pools still hold,
	// first in line: exactly the state between a connection dying and
	// its DisconnectNotify.
	ghost := uuid.Generate()
	s.mu.Lock()
	s.cn.add(ghost)
	s.cn.setStatus(ghost, ssntp.READY, &readyInfo{memTotal: 1 << 20, memAvail: 1 << 20})
	s.cn.last = 0 // after a, so the ghost is next
	s.mu.Unlock()
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)))
	if got := a.NextStart(t); got.InstanceUUID != instanceID(1) {
		t.Fatalf("re-placed START: %s", got.InstanceUUID)
	}
	if n, _ := s.nodeState(&s.cn, ghost); n.Ready {
		t.Fatal("the vanished node is still eligible")
	}
	s.mu.Lock()
	s.cn.remove(ghost)
	s.mu.Unlock()

	b := readyAgent(t, s, ssntp.AGENT, 16384)
	ctl.NextNodeConnected(t)
	a.Close()
	if ev := ctl.NextNodeDisconnected(t); ev.NodeUUID != a.UUID().String() || ev.NodeType != payloads.ComputeNode {
		t.Fatalf("NodeDisconnected %+v", ev)
	}
	for i := 2; i < 5; i++ {
		ctl.SendStart(t, testutil.StartInstance(instanceID(i)))
		b.NextStart(t)
	}
	b.Close()
	ctl.NextNodeDisconnected(t)
	ctl.SendStart(t, testutil.StartInstance(instanceID(9)))
	if f := ctl.NextStartFailure(t); f.Reason != payloads.StartNoComputeNodes {
		t.Fatalf("got %+v, want no_cn", f)
	}
}

// TestRestart checks that a new scheduler on the same address needs no
// saved state: launchers reconnect and announce themselves again.
func TestRestart(t *testing.T) {
	s1 := newTestScheduler(t, nil)
	port := s1.Port()
	a := testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(8192))
	ctl := testutil.NewFakeController(t, port)
	waitFor(t, "READY", func() bool { n, _ := s1.nodeState(&s1.cn, a.UUID()); return n.Ready })
	s1.Close()
	a.NextDisconnect(t)
	ctl.NextDisconnect(t)

	s2 := newTestScheduler(t, func(c *Config) { c.Listen = fmt.Sprintf("127.0.0.1:%d", port) })
	a.NextConnect(t)
	ctl.NextConnect(t)
	waitFor(t, "READY after restart", func() bool { n, _ := s2.nodeState(&s2.cn, a.UUID()); return n.Ready })
	waitFor(t, "master after restart", func() bool { return s2.isMaster(ctl.UUID()) })
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)), testutil.StartMemMB(1024))
	if got := a.NextStart(t); got.InstanceUUID != instanceID(1) {
		t.Fatalf("START after restart: %s", got.InstanceUUID)
	}
}

func TestClusterConfigurationAndMetrics(t *testing.T) {
	s := newTestScheduler(t, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	ctl := testutil.NewFakeController(t, s.Port())
	if got := ctl.Client().ClusterConfiguration(); string(got) != string(testutil.ConfigurePayload()) {
		t.Fatalf("CONNECTED carried\n%s", got)
	}
	readyAgent(t, s, ssntp.AGENT, 4096)
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)), testutil.StartMemMB(4096))
	ctl.SendStart(t, testutil.StartInstance(instanceID(2)), testutil.StartMemMB(4096))
	ctl.NextStartFailure(t)

	resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`ciao_scheduler_connected_clients{role="compute_node"} 1`,
		`ciao_scheduler_connected_clients{role="controller"} 1`,
		`ciao_scheduler_placements_total{node_type="compute_node"} 1`,
		`ciao_scheduler_placement_failures_total{reason="full_cloud"} 1`,
		`ciao_scheduler_placement_duration_seconds_count 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// CONFIGURE from a controller replaces what later clients get.
	cfg := testutil.ConfigureCmd()
	cfg.Configure.Storage.CephID = "other"
	ctl.SendConfigure(t, cfg)
	want, _ := yaml.Marshal(cfg)
	waitFor(t, "new configuration", func() bool { return string(s.srv.ClusterConfiguration()) == string(want) })
	late := testutil.NewFakeController(t, s.Port())
	if got := late.Client().ClusterConfiguration(); string(got) != string(want) {
		t.Fatalf("late client got\n%s", got)
	}
}

// TestConnectChurn hammers connects and disconnects of every role while
// STARTs flow (the 2016 TestClientMgmtLocking, over the wire): it must not
// deadlock, and the race detector must stay quiet.
func TestConnectChurn(t *testing.T) {
	s := newTestScheduler(t, nil)
	ctl := testutil.NewFakeController(t, s.Port())
	readyAgent(t, s, ssntp.AGENT, 1<<20)
	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < rounds*4; i++ {
			if err := ctl.Client().SendCommand(ssntp.START, testutil.StartPayload(testutil.StartInstance(instanceID(i)), testutil.StartMemMB(1))); err != nil {
				t.Errorf("START: %v", err)
				return
			}
		}
	}()
	for i := 0; i < rounds; i++ {
		a := testutil.NewFakeAgent(t, s.Port(), ssntp.AGENT, testutil.WithAutoReady(8192))
		n := testutil.NewFakeAgent(t, s.Port(), ssntp.NETAGENT, testutil.WithAutoReady(8192))
		c := testutil.NewFakeController(t, s.Port())
		a.Close()
		n.Close()
		c.Close()
	}
	<-done
	waitFor(t, "churn to settle", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cn.live == 1 && s.nn.live == 0
	})
	s.members.Lock()
	nctl := len(s.controllers)
	s.members.Unlock()
	if nctl != 1 || !s.isMaster(ctl.UUID()) {
		t.Fatalf("%d controllers left, master kept: %v", nctl, s.isMaster(ctl.UUID()))
	}
}

// lockedBuffer is a bytes.Buffer safe for the heartbeat goroutine and the
// test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHeartbeat(t *testing.T) {
	var out lockedBuffer
	s := newTestScheduler(t, func(c *Config) {
		c.Heartbeat, c.HeartbeatOut, c.HeartbeatEvery = true, &out, 5*time.Millisecond
	})
	waitFor(t, "idle heartbeat", func() bool { return strings.Contains(out.String(), "** idle / disconnected **") })
	ctl := testutil.NewFakeController(t, s.Port())
	a := readyAgent(t, s, ssntp.AGENT, 2048)
	ctl.SendStart(t, testutil.StartInstance(instanceID(1)), testutil.StartMemMB(1024))
	a.NextStart(t)
	want := fmt.Sprintf("controller-%s:MASTER\t\t\t\tnode-%s:READY*:1024/2048,0", ctl.UUID().String()[:8], a.UUID().String()[:8])
	waitFor(t, "heartbeat with a master and a node", func() bool { return strings.Contains(out.String(), want) })
}
