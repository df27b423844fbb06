package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestDeleteFailureNoInstance: Delete records the request on the instance
// before the DELETE goes out; a DeleteFailure no_instance for an instance
// being deleted means its node has it no more, so it is removed (event
// "Deleted Instance"); the same answer for an instance nobody asked to
// delete is only an error event.
func TestDeleteFailureNoInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ins := e.launch(t, tenantA, WorkloadClear, 2)
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: ins[0].ID, State: payloads.InstanceActive},
		payloads.InstanceStat{InstanceUUID: ins[1].ID, State: payloads.InstanceActive})
	e.waitState(t, ins[0].ID, datastore.StateActive)
	e.waitState(t, ins[1].ID, datastore.StateActive)
	e.agent.Set(t, testutil.WithDropDeletes(1))
	if err := e.ctl.Delete(ctx, tenantA, ins[0].ID); err != nil {
		t.Fatal(err)
	}
	if in, err := e.store.Instance(ctx, ins[0].ID); err != nil || in.Deleting.IsZero() {
		t.Fatalf("after Delete: %+v %v, want marked deleting", in, err)
	}
	if d := e.fs.NextDelete(t); d.InstanceUUID != ins[0].ID {
		t.Fatalf("DELETE %+v", d)
	}
	noInstance := func(id string) []byte {
		return testutil.Marshal(t, payloads.ErrorDeleteFailure{InstanceUUID: id, Reason: payloads.DeleteNoInstance})
	}
	e.fs.SendError(t, e.me(), ssntp.DeleteFailure, noInstance(ins[0].ID))
	e.waitGone(t, ins[0].ID)
	waitFor(t, "Deleted Instance event", func() bool {
		return e.hasEvent(tenantA, datastore.EventInfo, "Deleted Instance "+ins[0].ID+": its node no longer has it")
	})
	e.fs.SendError(t, e.me(), ssntp.DeleteFailure, noInstance(ins[1].ID))
	waitFor(t, "Delete Failure event", func() bool {
		return hasEventPrefix(e.store, tenantA, datastore.EventError, "Delete Failure "+ins[1].ID)
	})
	if in, err := e.store.Instance(ctx, ins[1].ID); err != nil || !in.Deleting.IsZero() {
		t.Fatalf("instance not being deleted after no_instance: %+v %v, want kept", in, err)
	}
}

// TestDeleteResentWhenNodeBack drives the re-send pass by hand with
// chosen clocks: a DELETE sent while the instance's node is disconnected
// is re-sent after the grace (attempt 1), not again before the backoff,
// but at once (attempt 2) when the node reports the instance again; then
// not again before the backoff.
func TestDeleteResentWhenNodeBack(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.launchActive(t)
	e.agent.Set(t, testutil.WithDropDeletes(10))
	e.fs.SendEvent(t, e.me(), ssntp.NodeDisconnected, testutil.NodeDisconnectedPayload(e.node, payloads.ComputeNode))
	e.waitState(t, in.ID, StateMissing)
	if err := e.ctl.Delete(ctx, tenantA, in.ID); err != nil {
		t.Fatal(err)
	}
	e.fs.NextDelete(t)
	resent := func() int {
		es, _ := e.store.Events(ctx, tenantA)
		n := 0
		for _, ev := range es {
			if strings.HasPrefix(ev.Message, "Delete re-sent for "+in.ID) {
				n++
			}
		}
		return n
	}
	grace := e.ctl.cfg.ResendDeleteAfter
	t0 := time.Now()
	for _, step := range []struct {
		at   time.Duration
		back bool // the node reports the instance first
		want int
	}{
		{grace / 2, false, 0},
		{grace + time.Second, false, 1},
		{grace + 2*time.Second, false, 1},
		{grace + 3*time.Second, true, 2},
		{grace + 4*time.Second, false, 2},
	} {
		if step.back {
			e.report(t, e.node, payloads.InstanceStat{InstanceUUID: in.ID, State: payloads.InstanceActive})
			e.waitState(t, in.ID, datastore.StateActive)
		}
		e.ctl.resend(ctx, t0.Add(step.at))
		if n := resent(); n != step.want {
			t.Fatalf("at +%v: %d re-sends, want %d", step.at, n, step.want)
		}
	}
	if d := e.fs.NextDelete(t); d.InstanceUUID != in.ID || d.WorkloadAgentUUID != e.node {
		t.Errorf("re-sent DELETE %+v", d)
	}
}

// TestDeleteWithSchedulerDown: with re-sends on, a DELETE that cannot be
// handed to the scheduler is still accepted: it is recorded (the server
// is listed deleting) and the event log says it was not sent yet.
func TestDeleteWithSchedulerDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.launchActive(t)
	e.fs.Close()
	// A frame sent before the client notices goes nowhere: harmless.
	waitFor(t, "the controller disconnected", func() bool {
		return e.ctl.client.SendCommand(ssntp.STATS, nil) != nil
	})
	if err := e.ctl.Delete(ctx, tenantA, in.ID); err != nil {
		t.Fatalf("Delete with the scheduler down: %v, want accepted", err)
	}
	if got, err := e.store.Instance(ctx, in.ID); err != nil || got.Deleting.IsZero() {
		t.Fatalf("after Delete: %+v %v, want marked deleting", got, err)
	}
	es, _ := e.store.Events(ctx, tenantA)
	if len(es) == 0 || !strings.HasPrefix(es[len(es)-1].Message, "DELETE of "+in.ID+" not sent") {
		t.Errorf("last event %+v, want DELETE not sent", es)
	}
}

// TestResendSwitches: START and DELETE re-sends are turned on and off
// independently. With an instance pending on no node and one being
// deleted, both due, a pass re-sends exactly the kinds that are on.
func TestResendSwitches(t *testing.T) {
	for _, tc := range []struct {
		name            string
		pending, delete time.Duration
	}{
		{"both", time.Hour, time.Hour},
		{"starts only", time.Hour, 0},
		{"deletes only", 0, time.Hour},
		{"none", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := testutil.NewFakeServer(t)
			store := seededStore(t, "02:11:22:33:44:55")
			ctx := context.Background()
			pend, del := pendingAndDeleting(t, store, "30000000")
			ctl, _ := startOn(t, fs, store, func(c *Config) { c.ResendPendingAfter, c.ResendDeleteAfter = tc.pending, tc.delete })
			ctl.resend(ctx, time.Now().Add(2*time.Hour))
			if got, want := hasEventPrefix(store, tenantA, "", "Start re-sent for "+pend), tc.pending > 0; got != want {
				t.Errorf("START re-sent: %v, want %v", got, want)
			}
			if got, want := hasEventPrefix(store, tenantA, "", "Delete re-sent for "+del), tc.delete > 0; got != want {
				t.Errorf("DELETE re-sent: %v, want %v", got, want)
			}
		})
	}
}

// TestResendStaleListing: a pass works from one listing of the
// instances, read before anything is sent. An instance a node reported
// (START) or whose deletion was confirmed (DELETE) after that listing is
// not re-sent.
func TestResendStaleListing(t *testing.T) {
	fs := testutil.NewFakeServer(t)
	store := seededStore(t, "02:11:22:33:44:55")
	ctx := context.Background()
	pend, del := pendingAndDeleting(t, store, "40000000")
	ctl, _ := startOn(t, fs, store, func(c *Config) { c.ResendPendingAfter, c.ResendDeleteAfter = time.Hour, time.Hour })
	p, err := store.Instances(ctx, datastore.InstanceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// After the listing: the pending one is reported, the other deleted.
	place(t, store, pend, otherNode)
	if _, err := store.DeleteInstance(ctx, del); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Hour)
	ctl.resendPending(ctx, later, p.Instances)
	ctl.resendDeletes(ctx, later, p.Instances)
	if hasEventPrefix(store, tenantA, "", "Start re-sent for "+pend) || hasEventPrefix(store, tenantA, "", "Delete re-sent for "+del) {
		es, _ := store.Events(ctx, tenantA)
		t.Errorf("re-sent from a stale listing: %+v", es)
	}
	// A pass from a fresh listing forgets both.
	ctl.resend(ctx, later)
	if n := ctl.rec.len() + ctl.redel.len(); n != 0 {
		t.Errorf("%d re-sends tracked for instances settled", n)
	}
}

// otherNode is a node UUID no agent in these tests has.
const otherNode = "50000000-0000-4000-8000-000000000000"
