package controller

import (
	"context"
	"strings"
	"testing"

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
		es, _ := e.store.Events(ctx, tenantA)
		for _, ev := range es {
			if ev.Type == datastore.EventError && strings.HasPrefix(ev.Message, "Delete Failure "+ins[1].ID) {
				return true
			}
		}
		return false
	})
	if in, err := e.store.Instance(ctx, ins[1].ID); err != nil || !in.Deleting.IsZero() {
		t.Fatalf("instance not being deleted after no_instance: %+v %v, want kept", in, err)
	}
}
