package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestResendPending: the fake scheduler places STARTs on a fake launcher
// that loses the first three. An instance an earlier controller left
// pending and one created by this controller get their START again once
// they have been pending, reported by no node, for ResendPendingAfter,
// and again no sooner than that later (the backoff doubles). The
// launcher that got a START twice answers already_running, which names
// its node and is not a failure; no instance runs twice, and an instance
// a node reported is never re-sent. A re-sent instance is deleted as any
// other.
func TestResendPending(t *testing.T) {
	fs := testutil.NewFakeServer(t)
	store := seededStore(t, "02:11:22:33:44:55")
	ctx := context.Background()
	old := createPending(t, store, "10000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000002")
	place(t, store, old[1].ID, "n")
	const grace = 300 * time.Millisecond
	ctl, _ := startOn(t, fs, store, func(c *Config) { c.ResendPendingAfter = grace })
	agent := testutil.NewFakeAgent(t, fs.Port(), ssntp.AGENT, testutil.WithDropStarts(3))
	fs.NextConnect(t)
	node := agent.UUID().String()
	fresh, err := ctl.Launch(ctx, tenantA, WorkloadClear, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{old[0].ID: true, fresh[0].ID: true}
	if s := agent.NextStart(t); s.InstanceUUID != fresh[0].ID {
		t.Fatalf("first START for %s, want the new instance %s", s.InstanceUUID, fresh[0].ID)
	}
	// Attempt 1 of both (dropped), then attempt 2 of both (run).
	for i := 0; i < 4; i++ {
		s := agent.NextStart(t)
		if !pending[s.InstanceUUID] {
			t.Fatalf("re-sent START for %s, want one of %v", s.InstanceUUID, pending)
		}
		if s.InstanceUUID == old[0].ID && s.Networking.PrivateIP != old[0].IP {
			t.Errorf("re-sent START of %s with address %s, want %s", s.InstanceUUID, s.Networking.PrivateIP, old[0].IP)
		}
	}
	waitFor(t, "both instances running on the launcher", func() bool { return len(agent.Instances()) == 2 })
	// Not more often than the grace: compare the event times.
	for id := range pending {
		var at []time.Time
		waitFor(t, "two re-send events for "+id, func() bool {
			es, _ := store.Events(ctx, tenantA)
			at = at[:0]
			for _, e := range es {
				if strings.HasPrefix(e.Message, "Start re-sent for "+id) {
					at = append(at, e.Time)
				}
			}
			return len(at) >= 2
		})
		if gap := at[1].Sub(at[0]); gap < grace {
			t.Errorf("%s re-sent %v after the previous re-send, less than the grace %v", id, gap, grace)
		}
	}
	// Nobody reports yet: attempt 3 reaches the launcher, which has them.
	for i := 0; i < 2; i++ {
		agent.NextStart(t)
		f := fs.NextError(t, ssntp.StartFailure)
		if !strings.Contains(string(f.Payload), string(payloads.StartAlreadyRunning)) {
			t.Fatalf("launcher answered %s", f.Payload)
		}
	}
	for id := range pending {
		in := func() datastore.Instance {
			var in datastore.Instance
			waitFor(t, id+" placed on the launcher", func() bool {
				in, _ = store.Instance(ctx, id)
				return in.NodeID == node
			})
			return in
		}()
		if in.State != datastore.StatePending {
			t.Errorf("%s is %s after already_running, want still pending", id, in.State)
		}
		waitFor(t, "already_running event of "+id, func() bool {
			es, _ := store.Events(ctx, tenantA)
			for _, e := range es {
				if e.Type == datastore.EventError {
					t.Fatalf("error event %q", e.Message)
				}
				if strings.HasPrefix(e.Message, "Start of "+id+" answered") && e.Type == datastore.EventInfo {
					return true
				}
			}
			return false
		})
	}
	// Placed: no more re-sends (the next would be due 4 × grace later).
	agent.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 5*grace)
	if n := len(agent.Instances()); n != 2 {
		t.Errorf("the launcher runs %d instances, want 2", n)
	}
	// A re-sent instance is reported and deleted as any other.
	agent.SendStats(t)
	in, _ := store.Instance(ctx, fresh[0].ID)
	waitFor(t, "reported active", func() bool { in, _ = store.Instance(ctx, fresh[0].ID); return in.State == datastore.StateActive })
	if err := ctl.Delete(ctx, tenantA, fresh[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "re-sent instance deleted", func() bool { _, err := store.Instance(ctx, fresh[0].ID); return err != nil })
	waitFor(t, "no re-send state left", func() bool {
		return ctl.rec.len() == 0
	})
}

// TestNodeDisconnectedMarksMissing: the instances of a node the scheduler
// reports gone become missing; the node's next STATS makes them active
// again.
func TestNodeDisconnectedMarksMissing(t *testing.T) {
	e := newEnv(t)
	ins := e.launch(t, tenantA, WorkloadClear, 2)
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: ins[0].ID, State: payloads.InstanceActive})
	e.waitState(t, ins[0].ID, datastore.StateActive)
	e.fs.SendEvent(t, e.me(), ssntp.NodeDisconnected, testutil.NodeDisconnectedPayload(e.node, payloads.ComputeNode))
	e.waitState(t, ins[0].ID, StateMissing)
	waitFor(t, "missing event", func() bool {
		return e.hasEvent("", datastore.EventWarn, "Node disconnected "+e.node+": 1 instances missing")
	})
	if in, _ := e.store.Instance(context.Background(), ins[1].ID); in.State != datastore.StatePending {
		t.Errorf("an unplaced instance became %s", in.State)
	}
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: ins[0].ID, State: payloads.InstanceActive})
	e.waitState(t, ins[0].ID, datastore.StateActive)
}

// TestCNCIDeletionResumed: a CNCI an earlier controller was deleting
// (record state deleting, its node known from STATS) gets its DELETE
// from a new controller, even with CNCIIdle 0; its agent's announcement
// meanwhile does not make it active again; InstanceDeleted removes the
// record, with the event "CNCI Deleted".
func TestCNCIDeletionResumed(t *testing.T) {
	ctx := context.Background()
	const cnci, node = testutil.CNCIUUID, testutil.AgentUUID
	fs, store, ctl, cfg := startDeletingCNCI(t, node, time.Second)
	if d := fs.NextDelete(t); d.InstanceUUID != cnci || d.WorkloadAgentUUID != node {
		t.Fatalf("DELETE %+v, want CNCI %s on %s", d, cnci, node)
	}
	me := ctl.client.UUID()
	fs.SendEvent(t, me, ssntp.ConcentratorInstanceAdded, testutil.CNCIAddedPayload(cnci, tenantA))
	// The worker handles frames in order: once the next one's event is
	// written, the announcement has been handled.
	fs.SendEvent(t, me, ssntp.NodeConnected, testutil.NodeConnectedPayload(node, payloads.NetworkNode))
	waitFor(t, "NodeConnected handled", func() bool { return hasEventPrefix(store, "", "", "Node connected "+node) })
	if cn, err := store.CNCI(ctx, tenantA); err != nil || cn.State != CNCIDeleting {
		t.Fatalf("CNCI being deleted after its announcement: %+v %v", cn, err)
	}
	fs.SendEvent(t, me, ssntp.InstanceDeleted, testutil.InstanceDeletedPayload(cnci))
	waitCNCIGone(t, store)
	waitFor(t, "CNCI Deleted event", func() bool { return hasEventPrefix(store, tenantA, "", "CNCI Deleted "+cnci) })
	// Nothing is left to retry.
	fs.Nothing(t, ssntp.COMMAND, uint8(ssntp.DELETE), cfg.CNCITimeout)
}

// TestCNCIGoneUnasked: InstanceDeleted for a tenant's active CNCI (its
// network node was evacuated, say) removes the record, with a warning
// event, so that the tenant's next request starts a new CNCI.
func TestCNCIGoneUnasked(t *testing.T) {
	fs := testutil.NewFakeServer(t)
	store := seededStore(t, testutil.CNCIMAC)
	putCNCI(t, store, testutil.CNCIUUID, CNCIActive)
	ctl, _ := startOn(t, fs, store, func(c *Config) { c.Network = true })
	fs.SendEvent(t, ctl.client.UUID(), ssntp.InstanceDeleted, testutil.InstanceDeletedPayload(testutil.CNCIUUID))
	waitCNCIGone(t, store)
	waitFor(t, "warning event", func() bool {
		return hasEventPrefix(store, tenantA, datastore.EventWarn, "CNCI Deleted "+testutil.CNCIUUID+": gone from its node unasked")
	})
}

// TestCNCIDeletionNodeGone: a create waiting for the deletion of its
// tenant's CNCI goes on when the CNCI's network node disconnects (it may
// never come back) and gets a new CNCI; when the node reports the old
// CNCI again, it gets its DELETE again.
func TestCNCIDeletionNodeGone(t *testing.T) {
	ctx := context.Background()
	const old, gone = testutil.CNCIUUID, testutil.NetAgentUUID
	fs, store, ctl, _ := startDeletingCNCI(t, gone, 5*time.Second)
	// A node for the new CNCI and the instance.
	node := testutil.NewFakeAgent(t, fs.Port(), ssntp.AGENT|ssntp.NETAGENT)
	fs.NextConnect(t)
	if d := fs.NextDelete(t); d.InstanceUUID != old || d.WorkloadAgentUUID != gone {
		t.Fatalf("DELETE %+v, want %s on %s", d, old, gone)
	}
	type result struct {
		ins []datastore.Instance
		err error
	}
	done := make(chan result, 1)
	go func() { ins, err := ctl.Launch(ctx, tenantA, WorkloadClear, 1, ""); done <- result{ins, err} }()
	// Waiting: no new CNCI while the old one may run.
	node.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 200*time.Millisecond)
	me := ctl.client.UUID()
	fs.SendEvent(t, me, ssntp.NodeDisconnected, testutil.NodeDisconnectedPayload(gone, payloads.NetworkNode))
	cs := node.NextStart(t)
	if nn, _ := cs.NetworkNode(); !nn || cs.InstanceUUID == old || cs.TenantUUID != tenantA {
		t.Fatalf("START %+v, want a new CNCI of %s", cs, tenantA)
	}
	fs.SendEvent(t, me, ssntp.ConcentratorInstanceAdded, testutil.CNCIAddedPayload(cs.InstanceUUID, tenantA))
	r := <-done
	if r.err != nil || len(r.ins) != 1 {
		t.Fatalf("launch after the node went: %v %v", r.ins, r.err)
	}
	if s := node.NextStart(t); s.InstanceUUID != r.ins[0].ID || s.Networking.ConcentratorUUID != cs.InstanceUUID {
		t.Fatalf("instance START %s with concentrator %s, want %s with %s", s.InstanceUUID, s.Networking.ConcentratorUUID, r.ins[0].ID, cs.InstanceUUID)
	}
	// The node comes back and reports the old CNCI: DELETE again.
	reportCNCI(t, store, gone, old)
	if d := fs.NextDelete(t); d.InstanceUUID != old || d.WorkloadAgentUUID != gone {
		t.Fatalf("DELETE %+v, want %s on %s again", d, old, gone)
	}
	if cn, err := store.CNCI(ctx, tenantA); err != nil || cn.ID != cs.InstanceUUID || cn.State != CNCIActive {
		t.Errorf("tenant CNCI %+v %v, want the new %s active", cn, err, cs.InstanceUUID)
	}
}

// seededStore is a memory store with the workloads and tenantA (its
// CNCI MAC mac), closed at cleanup.
func seededStore(t *testing.T, mac string) *datastore.Memory {
	t.Helper()
	store := datastore.NewMemory()
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	if err := SeedWorkloads(ctx, store); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.EnsureTenant(ctx, datastore.Tenant{ID: tenantA, CNCIMAC: mac}); err != nil {
		t.Fatal(err)
	}
	return store
}

// createPending creates instances ids of tenantA (WorkloadClear), pending
// on no node.
func createPending(t *testing.T, store *datastore.Memory, ids ...string) []datastore.Instance {
	t.Helper()
	reqs := make([]datastore.InstanceRequest, len(ids))
	for i, id := range ids {
		reqs[i] = datastore.InstanceRequest{ID: id, TenantID: tenantA, WorkloadID: WorkloadClear}
	}
	ins, err := store.CreateInstances(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

// place records instance id active on node.
func place(t *testing.T, store *datastore.Memory, id, node string) {
	t.Helper()
	if _, err := store.UpdateInstances(context.Background(), []datastore.InstanceUpdate{{ID: id, State: datastore.StateActive, NodeID: node}}); err != nil {
		t.Fatal(err)
	}
}

// pendingAndDeleting creates two instances of tenantA, ids prefix +
// "-0000-4000-8000-00000000000{1,2}": pend, pending on no node, and del,
// active on otherNode and being deleted since now.
func pendingAndDeleting(t *testing.T, store *datastore.Memory, prefix string) (pend, del string) {
	t.Helper()
	ins := createPending(t, store, prefix+"-0000-4000-8000-000000000001", prefix+"-0000-4000-8000-000000000002")
	pend, del = ins[0].ID, ins[1].ID
	place(t, store, del, otherNode)
	if err := store.MarkDeleting(context.Background(), del, time.Now()); err != nil {
		t.Fatal(err)
	}
	return pend, del
}

// startDeletingCNCI starts a controller with tenant networking
// (CNCITimeout timeout, CNCIIdle 0) on a store where an earlier
// controller was deleting tenantA's CNCI testutil.CNCIUUID, last
// reported on node.
func startDeletingCNCI(t *testing.T, node string, timeout time.Duration) (*testutil.FakeServer, *datastore.Memory, *Controller, Config) {
	t.Helper()
	fs := testutil.NewFakeServer(t)
	store := seededStore(t, testutil.CNCIMAC)
	putCNCI(t, store, testutil.CNCIUUID, CNCIDeleting)
	reportCNCI(t, store, node, testutil.CNCIUUID)
	ctl, cfg := startOn(t, fs, store, func(c *Config) { c.Network, c.CNCITimeout, c.CNCIIdle = true, timeout, 0 })
	return fs, store, ctl, cfg
}

// putCNCI records id, in state, as tenantA's CNCI (testutil's MAC and IP).
func putCNCI(t *testing.T, store *datastore.Memory, id, state string) {
	t.Helper()
	if err := store.PutCNCI(context.Background(), datastore.CNCI{TenantID: tenantA, ID: id, MAC: testutil.CNCIMAC, IP: testutil.CNCIIP, State: state}); err != nil {
		t.Fatal(err)
	}
}

// startOn starts a Controller on store against the fake scheduler fs,
// its config adjusted by mod, closed at cleanup, and waits until it is
// connected; it returns the controller and its config.
func startOn(t *testing.T, fs *testutil.FakeServer, store *datastore.Memory, mod func(*Config)) (*Controller, Config) {
	t.Helper()
	sc := testutil.TestCerts(t).Config(t, ssntp.Controller)
	sc.Port = fs.Port()
	cfg := NewConfig(store, sc)
	mod(&cfg)
	ctl, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	fs.NextConnect(t)
	return ctl, cfg
}

// hasEventPrefix reports whether tenant's events hold one of type typ
// ("" for any) whose message starts with prefix.
func hasEventPrefix(store *datastore.Memory, tenant, typ, prefix string) bool {
	es, _ := store.Events(context.Background(), tenant)
	for _, e := range es {
		if (typ == "" || e.Type == typ) && strings.HasPrefix(e.Message, prefix) {
			return true
		}
	}
	return false
}

// reportCNCI records node's STATS with the CNCI cnci active on it.
func reportCNCI(t *testing.T, store *datastore.Memory, node, cnci string) {
	t.Helper()
	if err := store.RecordStats(context.Background(), datastore.StatsReport{NodeID: node,
		Instances: []datastore.InstanceStats{{InstanceID: cnci, NodeID: node, State: payloads.InstanceActive}}}); err != nil {
		t.Fatal(err)
	}
}

// waitCNCIGone waits until tenantA has no CNCI record.
func waitCNCIGone(t *testing.T, store *datastore.Memory) {
	t.Helper()
	waitFor(t, "CNCI record gone", func() bool {
		_, err := store.CNCI(context.Background(), tenantA)
		return errors.Is(err, datastore.ErrNotFound)
	})
}

// BenchmarkResendPass10k is the re-send part of one maintenance pass
// over a SQLite store of 10,000 instances in the steady state: 9,800
// active on a node, 100 pending with no node and 100 being deleted, none
// of them due yet (nothing is sent). Run it with
//
//	go test -run '^$' -bench ResendPass10k -benchmem ./ciao-controller/internal/controller/
func BenchmarkResendPass10k(b *testing.B) {
	ctx := context.Background()
	store, err := datastore.OpenSQLite(ctx, datastore.NewConfig(b.TempDir()+"/c.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := SeedWorkloads(ctx, store); err != nil {
		b.Fatal(err)
	}
	if _, _, err := store.EnsureTenant(ctx, datastore.Tenant{ID: tenantA, CNCIMAC: "02:11:22:33:44:55"}); err != nil {
		b.Fatal(err)
	}
	const total, pending, deleting = 10000, 100, 100
	now := time.Now()
	for lo := 0; lo < total; lo += 500 {
		reqs := make([]datastore.InstanceRequest, 500)
		ups := make([]datastore.InstanceUpdate, 0, 500)
		for j := range reqs {
			id := fmt.Sprintf("20000000-0000-4000-8000-%012d", lo+j)
			reqs[j] = datastore.InstanceRequest{ID: id, TenantID: tenantA, WorkloadID: WorkloadClear}
			if lo+j >= pending {
				ups = append(ups, datastore.InstanceUpdate{ID: id, State: datastore.StateActive, NodeID: "node"})
			}
		}
		if _, err := store.CreateInstances(ctx, reqs); err != nil {
			b.Fatal(err)
		}
		if _, err := store.UpdateInstances(ctx, ups); err != nil {
			b.Fatal(err)
		}
	}
	for i := pending; i < pending+deleting; i++ {
		if err := store.MarkDeleting(ctx, fmt.Sprintf("20000000-0000-4000-8000-%012d", i), now); err != nil {
			b.Fatal(err)
		}
	}
	cfg := NewConfig(store, ssntp.Config{})
	c := &Controller{cfg: cfg, store: store, stop: make(chan struct{}), started: now,
		rec: newRetries(), redel: newRetries()}
	at := now.Add(cfg.ResendPendingAfter / 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.resend(ctx, at)
	}
}

// TestRetriesBackoff: an untracked instance is due from its start; each
// re-send doubles the wait up to 32 times the grace; a DELETE sent while
// the node was disconnected is due at once when it is back; prune
// forgets what is not kept.
func TestRetriesBackoff(t *testing.T) {
	rs := newRetries()
	t0 := time.Unix(1000, 0)
	const g = time.Second
	if rs.due("a", t0, t0.Add(g), false) || !rs.due("a", t0.Add(g), t0.Add(g), false) {
		t.Fatal("untracked: due before its start, or not at it")
	}
	now := t0
	for n := 1; n <= 7; n++ {
		if a := rs.sent("a", now, g, false); a != n {
			t.Fatalf("attempt %d, want %d", a, n)
		}
		wait := g << min(n, maxResendShift)
		if rs.due("a", now.Add(wait-1), t0, false) || !rs.due("a", now.Add(wait), t0, false) {
			t.Fatalf("after attempt %d: not due exactly %v later", n, wait)
		}
		now = now.Add(wait)
	}
	rs.first("b", t0.Add(g), true)
	if rs.due("b", t0, t0, true) || !rs.due("b", t0, t0, false) || !rs.due("b", t0.Add(g), t0, true) {
		t.Fatal("sent while missing: due only when back or at its next time")
	}
	rs.sent("b", t0, g, false)
	if rs.due("b", t0, t0, false) {
		t.Fatal("re-sent while connected: due at once")
	}
	if !rs.tracked("a") || rs.tracked("c") || rs.len() != 2 {
		t.Fatalf("tracked a %v c %v, len %d", rs.tracked("a"), rs.tracked("c"), rs.len())
	}
	rs.prune(map[string]bool{"b": true})
	if rs.tracked("a") || !rs.tracked("b") || rs.len() != 1 {
		t.Fatal("prune kept a or dropped b")
	}
}

// TestResendPendingNeedsCNCI: with tenant networking a pending START is
// re-sent only while its tenant has an active CNCI (one look-up per
// tenant and pass serves all its instances).
func TestResendPendingNeedsCNCI(t *testing.T) {
	fs := testutil.NewFakeServer(t)
	store := seededStore(t, testutil.CNCIMAC)
	ctx := context.Background()
	ins := createPending(t, store, "60000000-0000-4000-8000-000000000001", "60000000-0000-4000-8000-000000000002")
	ctl, _ := startOn(t, fs, store, func(c *Config) {
		c.Network, c.CNCIIdle, c.ResendPendingAfter, c.ResendDeleteAfter = true, 0, time.Hour, 0
	})
	later := time.Now().Add(2 * time.Hour)
	ctl.resend(ctx, later)
	for _, in := range ins {
		if hasEventPrefix(store, tenantA, "", "Start re-sent for "+in.ID) {
			t.Fatalf("START of %s re-sent with no CNCI", in.ID)
		}
	}
	putCNCI(t, store, testutil.CNCIUUID, CNCIActive)
	ctl.resend(ctx, later)
	for _, in := range ins {
		if !hasEventPrefix(store, tenantA, datastore.EventWarn, "Start re-sent for "+in.ID+" (attempt 1)") {
			es, _ := store.Events(ctx, tenantA)
			t.Fatalf("START of %s not re-sent with an active CNCI: %+v", in.ID, es)
		}
	}
}
