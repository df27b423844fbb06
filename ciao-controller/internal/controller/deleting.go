package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// A DELETE is never lost (with ResendDeleteAfter > 0, the default).
// Delete records the request on the instance (datastore MarkDeleting, on
// disk before the DELETE is sent) and the instance stays listed, with
// status StateDeleting, until its node confirms: InstanceDeleted, or
// DeleteFailure no_instance (the node has no such instance: it is gone,
// e.g. deleted by a launcher that died before it could say so).
// Meanwhile the maintenance loop (recovery.go) sends the DELETE again
// ResendDeleteAfter after the request (or after this controller started,
// for requests of an earlier process), then after twice as long, and so
// on up to 32 times ResendDeleteAfter, each time to the node the instance
// was last reported on, with an event per re-send. A DELETE sent while
// the instance's node was disconnected (StateMissing) is sent again as
// soon as the node reports the instance again, whatever the backoff: the
// scheduler dropped it. SSNTP has no acknowledgement: a DELETE can be
// lost on the way, or reach a launcher that dies before it is done; a
// launcher that deleted the instance already answers no_instance, one
// that has it deletes it. The scheduler drops a DELETE for a node not
// connected, so the re-sends go on until the node is back.
//
// DELETE re-sends are independent of START re-sends (ResendPendingAfter):
// turning one off leaves the other on. With ResendDeleteAfter 0 a lost
// DELETE leaves the instance listed deleting until the user deletes it
// again.

// StateDeleting is the status listed for an instance whose deletion was
// asked and not yet confirmed. Nova clients wait for a deleted server
// until it is not found; they only stop early on status "error".
const StateDeleting = "deleting"

// deleteSent records the DELETE Delete sent for in: the first re-send is
// due ResendDeleteAfter later. Nothing is tracked with DELETE re-sends
// off.
func (c *Controller) deleteSent(in datastore.Instance, now time.Time) {
	if c.cfg.ResendDeleteAfter <= 0 {
		return
	}
	c.redel.first(in.ID, now.Add(c.cfg.ResendDeleteAfter), in.State == StateMissing)
}

// sendDelete sends DELETE for in to its node.
func (c *Controller) sendDelete(in datastore.Instance) error {
	b, err := yaml.Marshal(payloads.Delete{Delete: payloads.StopCmd{InstanceUUID: in.ID, WorkloadAgentUUID: in.NodeID}})
	if err != nil {
		return err
	}
	return c.client.SendCommand(ssntp.DELETE, b)
}

// resendDeletes re-sends the DELETEs that are due (see above) among all,
// the list of every instance.
func (c *Controller) resendDeletes(ctx context.Context, now time.Time, all []datastore.Instance) {
	grace := c.cfg.ResendDeleteAfter
	waiting := map[string]bool{}
	failed := 0
	for _, in := range all {
		if in.Deleting.IsZero() {
			continue
		}
		waiting[in.ID] = true
		if in.NodeID == "" || !c.redel.due(in.ID, now, c.firstResend(in.Deleting, grace), in.State == StateMissing) {
			continue
		}
		select {
		case <-c.stop:
			return
		default:
		}
		var err error
		if in, err = c.store.Instance(ctx, in.ID); err != nil || in.Deleting.IsZero() || in.NodeID == "" {
			continue // confirmed since the listing
		}
		if err := c.sendDelete(in); err != nil {
			if failed++; failed == 1 {
				glog.Errorf("resending DELETE of %s: %v", in.ID, err)
			}
			continue
		}
		attempt := c.redel.sent(in.ID, now, grace, in.State == StateMissing)
		c.resent(ctx, in.TenantID, fmt.Sprintf("Delete re-sent for %s to node %s (attempt %d): not confirmed %v after it was asked",
			in.ID, in.NodeID, attempt, now.Sub(in.Deleting).Round(time.Millisecond)))
	}
	c.redel.prune(waiting)
	if failed > 1 {
		glog.Errorf("%d DELETEs could not be re-sent; next try on the next pass", failed)
	}
}

// deleteFailure handles DeleteFailure for a (non-CNCI) instance:
// no_instance for an instance being deleted means its node has it no
// more, so it is removed as InstanceDeleted would; anything else is an
// error event (and the DELETE is re-sent later).
func (c *Controller) deleteFailure(ctx context.Context, id string, reason payloads.DeleteFailureReason) {
	if reason == payloads.DeleteNoInstance {
		if in, err := c.store.Instance(ctx, id); err == nil && !in.Deleting.IsZero() {
			c.remove(ctx, id, "Deleted Instance "+id+": its node no longer has it", datastore.EventInfo)
			return
		}
	}
	c.failureEvent(ctx, id, "Delete Failure %s: %s", reason.String())
}
