package testutil

import (
	"bytes"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// FakeServer is a fake ciao-scheduler: an SSNTP server on 127.0.0.1 with
// the anchor's SCHEDULER|SERVER certificate, advertising SCHEDULER, that
// relays frames by the scheduler's policy (ssntp.md §9.3) with placement
// simplified, and records everything its clients send. Launcher and
// controller tests use it before the real scheduler exists; a test can
// also play the scheduler itself with the Send helpers.
//
// Relaying:
//   - START from a Controller: to a connected AGENT, or to a NETAGENT when
//     it asks for network_node 1, round-robin in UUID order; memory and
//     READY/FULL are ignored. With no such node the controller gets
//     StartFailure no_cn or no_net_cn, as from the scheduler. A START
//     whose mem_mb is missing or not positive is dropped.
//   - STOP, RESTART, DELETE, EVACUATE, AttachVolume, DetachVolume from a
//     Controller: to the payload's workload_agent_uuid.
//   - TenantAdded, TenantRemoved: to the payload's concentrator_uuid.
//   - STATS; InstanceDeleted, ConcentratorInstanceAdded, PublicIPAssigned,
//     TraceReport; Start/Stop/Restart/Delete/AttachVolume/DetachVolume
//     failures: to every Controller.
//   - An AGENT (NETAGENT) coming or going: NodeConnected (NodeDisconnected)
//     with node_type compute_node (network_node) to every Controller then
//     connected, so connect controllers first.
//
// Undeliverable frames are dropped silently, as by the scheduler; the
// test log says why.
//
// mu guards next and roles. The ssntp server calls the forwarders and
// notifications on each client's reading goroutine, concurrently.
type FakeServer struct {
	*Recorder
	srv    *ssntp.Server
	log    ssntp.Logger
	served chan error

	mu    sync.Mutex
	next  map[ssntp.Role]int       // round-robin cursor per node role
	roles map[uuid.UUID]ssntp.Role // connected clients, as advertised
}

// NewFakeServer starts a fake scheduler on a free port of 127.0.0.1 and
// closes it at cleanup. Options: the SSNTP ones (WithRole changes the
// advertised role, WithConfig the cluster configuration...).
func NewFakeServer(tb testing.TB, opts ...Option) *FakeServer {
	tb.Helper()
	s := newSettings(kindServer, opts)
	s.check(tb)
	fs := &FakeServer{
		served: make(chan error, 1),
		next:   make(map[ssntp.Role]int),
		roles:  make(map[uuid.UUID]ssntp.Role),
	}

	cfg := TestCerts(tb).Config(tb, ssntp.SCHEDULER|ssntp.SERVER)
	cfg.Role = ssntp.SCHEDULER
	cfg.WriteTimeout = fakeWriteTimeout
	cfg.ConnectTimeout = fakeConnectTimeout
	cfg.ForwardRules = fs.rules()
	for _, m := range s.config {
		m(&cfg)
	}
	if cfg.Log == nil {
		cfg.Log = Logger(tb)
	}
	if cfg.UUID.IsNil() {
		cfg.UUID = uuid.Generate()
	}
	fs.log = cfg.Log
	fs.Recorder = newRecorder(kindServer.String() + " " + cfg.UUID.String())

	srv, err := fs.listen(cfg)
	if err != nil {
		tb.Fatalf("testutil: %s: %v", fs.name, err)
	}
	fs.srv = srv
	go func() { fs.served <- srv.Serve() }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-fs.served; err != nil {
			tb.Errorf("testutil: %s: Serve: %v", fs.name, err)
		}
	})
	return fs
}

// listen binds a free port of 127.0.0.1, or the one WithConfig chose.
func (fs *FakeServer) listen(cfg ssntp.Config) (*ssntp.Server, error) {
	if cfg.Port == 0 {
		cfg.Port = ssntp.AnyPort
	}
	srv, err := ssntp.NewServer(cfg, serverNotifier{fs})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	return srv, nil
}

// Port is the TCP port the server listens on, for the clients' config.
func (fs *FakeServer) Port() int {
	if a, ok := fs.srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// UUID is the server's SSNTP UUID.
func (fs *FakeServer) UUID() uuid.UUID { return fs.srv.UUID() }

// Server is the underlying ssntp.Server, for what the helpers do not cover
// (SendFrame, SetClusterConfiguration...).
func (fs *FakeServer) Server() *ssntp.Server { return fs.srv }

// Clients lists the connected clients whose advertised role includes r
// (all of them for ssntp.UNKNOWN), in UUID order.
func (fs *FakeServer) Clients(r ssntp.Role) []uuid.UUID {
	ids := fs.srv.Clients(r)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// Close stops the server: it stops accepting, drops every client (whose
// fakes then reconnect until their own cleanup) and waits for its
// goroutines. Cleanup does it anyway; calling it twice is fine.
func (fs *FakeServer) Close() { fs.srv.Close() }

// SendCommand sends a COMMAND to one client, failing the test if it
// cannot.
func (fs *FakeServer) SendCommand(tb testing.TB, dest uuid.UUID, c ssntp.Command, payload []byte) {
	tb.Helper()
	fs.must(tb, fs.srv.SendCommand(dest, c, payload), dest, ssntp.COMMAND, uint8(c))
}

// SendStatus sends a STATUS to one client.
func (fs *FakeServer) SendStatus(tb testing.TB, dest uuid.UUID, s ssntp.Status, payload []byte) {
	tb.Helper()
	fs.must(tb, fs.srv.SendStatus(dest, s, payload), dest, ssntp.STATUS, uint8(s))
}

// SendEvent sends an EVENT to one client.
func (fs *FakeServer) SendEvent(tb testing.TB, dest uuid.UUID, e ssntp.Event, payload []byte) {
	tb.Helper()
	fs.must(tb, fs.srv.SendEvent(dest, e, payload), dest, ssntp.EVENT, uint8(e))
}

// SendError sends an ERROR to one client.
func (fs *FakeServer) SendError(tb testing.TB, dest uuid.UUID, e ssntp.Error, payload []byte) {
	tb.Helper()
	fs.must(tb, fs.srv.SendError(dest, e, payload), dest, ssntp.ERROR, uint8(e))
}

// SendTracedCommand sends a COMMAND with a trace to one client.
func (fs *FakeServer) SendTracedCommand(tb testing.TB, dest uuid.UUID, c ssntp.Command, payload []byte, tc *ssntp.TraceConfig) {
	tb.Helper()
	fs.must(tb, fs.srv.SendTracedCommand(dest, c, payload, tc), dest, ssntp.COMMAND, uint8(c))
}

func (fs *FakeServer) must(tb testing.TB, err error, dest uuid.UUID, t ssntp.Type, op uint8) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("testutil: %s: sending %s to %s: %v", fs.name, frameName(t, op), dest, err)
	}
}

// rules is the scheduler's forwarding policy, simplified as the type doc
// says.
func (fs *FakeServer) rules() []ssntp.ForwardRule {
	toControllers := func(r ssntp.ForwardRule) ssntp.ForwardRule { r.Dest = ssntp.Controller; return r }
	rules := []ssntp.ForwardRule{
		ssntp.CommandRule(ssntp.START, 0, fs.fromController(fs.placeStart)),
		ssntp.CommandRule(ssntp.STOP, 0, fs.fromController(routeTo(func(p *payloads.Stop) string { return p.Stop.WorkloadAgentUUID }))),
		ssntp.CommandRule(ssntp.RESTART, 0, fs.fromController(routeTo(func(p *payloads.Restart) string { return p.Restart.WorkloadAgentUUID }))),
		ssntp.CommandRule(ssntp.DELETE, 0, fs.fromController(routeTo(func(p *payloads.Delete) string { return p.Delete.WorkloadAgentUUID }))),
		ssntp.CommandRule(ssntp.EVACUATE, 0, fs.fromController(routeTo(func(p *payloads.Evacuate) string { return p.Evacuate.WorkloadAgentUUID }))),
		ssntp.CommandRule(ssntp.AttachVolume, 0, fs.fromController(routeTo(func(p *payloads.AttachVolume) string { return p.Attach.WorkloadAgentUUID }))),
		ssntp.CommandRule(ssntp.DetachVolume, 0, fs.fromController(routeTo(func(p *payloads.DetachVolume) string { return p.Detach.WorkloadAgentUUID }))),
		ssntp.EventRule(ssntp.TenantAdded, 0, fs.logged(routeTo(func(p *payloads.EventTenantAdded) string { return p.TenantAdded.ConcentratorUUID }))),
		ssntp.EventRule(ssntp.TenantRemoved, 0, fs.logged(routeTo(func(p *payloads.EventTenantRemoved) string { return p.TenantRemoved.ConcentratorUUID }))),
	}
	for _, r := range []ssntp.ForwardRule{
		ssntp.CommandRule(ssntp.STATS, 0, nil),
		ssntp.EventRule(ssntp.InstanceDeleted, 0, nil),
		ssntp.EventRule(ssntp.ConcentratorInstanceAdded, 0, nil),
		ssntp.EventRule(ssntp.PublicIPAssigned, 0, nil),
		ssntp.EventRule(ssntp.TraceReport, 0, nil),
		ssntp.ErrorRule(ssntp.StartFailure, 0, nil),
		ssntp.ErrorRule(ssntp.StopFailure, 0, nil),
		ssntp.ErrorRule(ssntp.RestartFailure, 0, nil),
		ssntp.ErrorRule(ssntp.DeleteFailure, 0, nil),
		ssntp.ErrorRule(ssntp.AttachVolumeFailure, 0, nil),
		ssntp.ErrorRule(ssntp.DetachVolumeFailure, 0, nil),
	} {
		rules = append(rules, toControllers(r))
	}
	return rules
}

// route is a forwarding decision with the reason for dropping, if it
// does; the wrappers below log the reason.
type route func(source uuid.UUID, f *ssntp.Frame) (dest []uuid.UUID, why string)

// routeTo routes to the UUID a payload of type T names.
func routeTo[T any](key func(*T) string) route {
	return func(_ uuid.UUID, f *ssntp.Frame) ([]uuid.UUID, string) {
		var p T
		if err := yaml.Unmarshal(f.Payload, &p); err != nil {
			return nil, "payload does not decode: " + err.Error()
		}
		id, err := uuid.Parse(key(&p))
		if err != nil {
			return nil, "no usable destination UUID: " + err.Error()
		}
		return []uuid.UUID{id}, ""
	}
}

// logged turns a route into a Forwarder that says why it drops.
func (fs *FakeServer) logged(r route) ssntp.Forwarder {
	return func(src uuid.UUID, _ ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
		dest, why := r(src, f)
		if len(dest) == 0 {
			fs.log.Infof("testutil: %s: dropping %s from %s: %s", fs.name, frameName(f.Type, f.Operand), src, why)
			return ssntp.ForwardDestination{Decision: ssntp.Discard}
		}
		return ssntp.ForwardTo(dest...)
	}
}

// fromController drops commands from anyone but a Controller, as the
// scheduler does (it also insists on the master controller; there is
// only ever one here).
func (fs *FakeServer) fromController(r route) ssntp.Forwarder {
	fwd := fs.logged(r)
	return func(src uuid.UUID, role ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
		if !role.HasRole(ssntp.Controller) {
			fs.log.Infof("testutil: %s: dropping %s from %s: sender is %q, not a Controller", fs.name, frameName(f.Type, f.Operand), src, role)
			return ssntp.ForwardDestination{Decision: ssntp.Discard}
		}
		return fwd(src, role, f)
	}
}

// placeStart chooses the node for a START.
func (fs *FakeServer) placeStart(src uuid.UUID, f *ssntp.Frame) ([]uuid.UUID, string) {
	s, err := payloads.DecodeStart(f.Payload)
	if err != nil {
		return nil, err.Error()
	}
	if err := s.Start.ValidateForScheduler(); err != nil {
		return nil, err.Error()
	}
	role, reason := ssntp.AGENT, payloads.StartNoComputeNodes
	if nn, _ := s.Start.NetworkNode(); nn {
		role, reason = ssntp.NETAGENT, payloads.StartNoNetworkNodes
	}
	nodes := fs.Clients(role)
	if len(nodes) == 0 {
		err := fs.srv.SendError(src, ssntp.StartFailure, StartFailurePayload(s.Start.InstanceUUID, reason))
		if err != nil {
			fs.log.Warningf("testutil: %s: sending StartFailure to %s: %v", fs.name, src, err)
		}
		return nil, "no " + role.String() + " node connected; StartFailure " + string(reason) + " sent"
	}
	fs.mu.Lock()
	i := fs.next[role] % len(nodes)
	fs.next[role] = i + 1
	fs.mu.Unlock()
	return []uuid.UUID{nodes[i]}, ""
}

// nodeEvent tells every Controller about an agent coming or going.
func (fs *FakeServer) nodeEvent(id uuid.UUID, role ssntp.Role, connected bool) {
	for _, n := range []struct {
		role ssntp.Role
		typ  payloads.Resource
	}{{ssntp.AGENT, payloads.ComputeNode}, {ssntp.NETAGENT, payloads.NetworkNode}} {
		if !role.HasRole(n.role) {
			continue
		}
		ev, payload := ssntp.NodeConnected, NodeConnectedPayload(id.String(), n.typ)
		if !connected {
			ev, payload = ssntp.NodeDisconnected, NodeDisconnectedPayload(id.String(), n.typ)
		}
		for _, c := range fs.Clients(ssntp.Controller) {
			if err := fs.srv.SendEvent(c, ev, payload); err != nil {
				fs.log.Infof("testutil: %s: sending %s to %s: %v", fs.name, frameName(ssntp.EVENT, uint8(ev)), c, err)
			}
		}
	}
}

// roleOf is the role a connected client advertised.
func (fs *FakeServer) roleOf(id uuid.UUID) ssntp.Role {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.roles[id]
}

// serverNotifier keeps the notifier methods off FakeServer's API.
type serverNotifier struct{ fs *FakeServer }

func (n serverNotifier) ConnectNotify(id uuid.UUID, role ssntp.Role) {
	n.fs.mu.Lock()
	n.fs.roles[id] = role
	n.fs.mu.Unlock()
	n.fs.nodeEvent(id, role, true)
	n.fs.add(Record{Kind: RecordConnect, Peer: id, Role: role})
}

func (n serverNotifier) DisconnectNotify(id uuid.UUID, role ssntp.Role) {
	n.fs.mu.Lock()
	delete(n.fs.roles, id)
	n.fs.mu.Unlock()
	n.fs.nodeEvent(id, role, false)
	n.fs.add(Record{Kind: RecordDisconnect, Peer: id, Role: role})
}

func (n serverNotifier) frame(id uuid.UUID, f *ssntp.Frame) {
	n.fs.add(Record{Kind: RecordFrame, Peer: id, Role: n.fs.roleOf(id), Frame: f})
}

func (n serverNotifier) StatusNotify(id uuid.UUID, _ ssntp.Status, f *ssntp.Frame)   { n.frame(id, f) }
func (n serverNotifier) CommandNotify(id uuid.UUID, _ ssntp.Command, f *ssntp.Frame) { n.frame(id, f) }
func (n serverNotifier) EventNotify(id uuid.UUID, _ ssntp.Event, f *ssntp.Frame)     { n.frame(id, f) }
func (n serverNotifier) ErrorNotify(id uuid.UUID, _ ssntp.Error, f *ssntp.Frame)     { n.frame(id, f) }
