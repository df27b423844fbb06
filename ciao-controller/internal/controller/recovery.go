package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/golang/glog"
)

// Recovery: the maintenance loop that repairs what a lost frame or a
// restart leaves behind.
//
//   - Pending STARTs: an instance still pending that no node reported
//     ResendPendingAfter after it was created (or after this controller
//     started, for older ones) gets its START again; then again after
//     twice as long, and so on up to 32 times ResendPendingAfter. A START
//     can be lost on the way (SSNTP has no acknowledgement; a controller
//     killed right after its 202 may not have written it). A launcher
//     that has the instance after all answers already_running or
//     instance_exists: that names its node, it is not a failure
//     (resentStartFailure).
//   - DELETEs: re-sent until the node confirms (deleting.go), on the same
//     schedule with ResendDeleteAfter in place of ResendPendingAfter.
//
// The two re-sends share one listing of the instances per pass (resend);
// an instance found due is read again before anything is sent for it, so
// the age of that listing never makes a re-send of something already
// settled (reported by a node, deleted).
//   - CNCIs: idle ones are deleted, and DELETEs are retried (cnci_life.go).
//   - Nodes: when the scheduler reports a node gone (NodeDisconnected), the
//     instances it ran become StateMissing until a node reports them again.

// StateMissing is the state of an instance whose node disconnected from
// the scheduler; the next STATS that reports it sets its state again.
const StateMissing = "missing"

// maxResendShift caps the re-send backoff at 32 times the first delay.
const maxResendShift = 5

// retry is one instance whose command (START or DELETE) this controller
// sent.
type retry struct {
	n       int       // re-sends so far
	next    time.Time // earliest next re-send
	missing bool      // the last one went while the node was disconnected
}

// retries tracks the sent commands of one kind, by instance, with their
// backoff. mu guards m.
type retries struct {
	mu sync.Mutex
	m  map[string]*retry
}

func newRetries() retries { return retries{m: map[string]*retry{}} }

// first records a command sent for id (not a re-send): the first re-send
// is due at next, unless id is tracked already. missing: the node was
// disconnected.
func (rs *retries) first(id string, next time.Time, missing bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[id]
	if r == nil {
		r = &retry{next: next}
		rs.m[id] = r
	}
	r.missing = missing
}

// due reports whether a re-send for id is due at now: from start on when
// id is not tracked; else from its next time on, or at once if the last
// one went while the node was disconnected and it is not now (missing).
func (rs *retries) due(id string, now, start time.Time, missing bool) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[id]
	if r == nil {
		return !now.Before(start)
	}
	return (r.missing && !missing) || !now.Before(r.next)
}

// sent records a re-send for id at now and returns its attempt number;
// the next is due grace << min(attempt, maxResendShift) later. missing:
// the node is disconnected.
func (rs *retries) sent(id string, now time.Time, grace time.Duration, missing bool) (attempt int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[id]
	if r == nil {
		r = &retry{}
		rs.m[id] = r
	}
	r.n++
	r.next = now.Add(grace << min(r.n, maxResendShift))
	r.missing = missing
	return r.n
}

// tracked reports whether id is tracked.
func (rs *retries) tracked(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.m[id] != nil
}

// prune forgets every instance not in keep.
func (rs *retries) prune(keep map[string]bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id := range rs.m {
		if !keep[id] {
			delete(rs.m, id)
		}
	}
}

// len is how many instances are tracked.
func (rs *retries) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.m)
}

// firstResend is when the first re-send of a command asked at asked is
// due: grace after it, or after this controller started if later.
func (c *Controller) firstResend(asked time.Time, grace time.Duration) time.Time {
	if asked.Before(c.started) {
		asked = c.started
	}
	return asked.Add(grace)
}

// resent logs a re-send and records it as a warning event of tenant.
func (c *Controller) resent(ctx context.Context, tenant, msg string) {
	glog.Warning(msg)
	c.event(ctx, tenant, datastore.EventWarn, msg)
}

// maintenanceTick is how often the loop runs: often enough for the
// shortest of the delays it enforces, at most every 10 ms.
func (c *Controller) maintenanceTick() time.Duration {
	tick := 30 * time.Second
	for _, g := range []time.Duration{c.cfg.ResendPendingAfter, c.cfg.ResendDeleteAfter} {
		if g > 0 {
			tick = min(tick, g/2)
		}
	}
	if c.cfg.Network {
		tick = min(tick, c.cfg.CNCITimeout/4)
		if c.cfg.CNCIIdle > 0 {
			tick = min(tick, c.cfg.CNCIIdle/4)
		}
	}
	return max(tick, 10*time.Millisecond)
}

// maintain is the maintenance loop; it runs on c.bg until Close.
func (c *Controller) maintain() {
	defer c.bg.Done()
	t := time.NewTicker(c.maintenanceTick())
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
			c.resend(ctx, now)
			if c.cfg.Network {
				c.reapIdleCNCIs(ctx, now)
				c.retryCNCIDeletes(ctx, now)
			}
			cancel()
		}
	}
}

// resend re-sends the STARTs and the DELETEs that are due, those that
// are on, from one listing of the instances.
func (c *Controller) resend(ctx context.Context, now time.Time) {
	if c.cfg.ResendPendingAfter <= 0 && c.cfg.ResendDeleteAfter <= 0 {
		return
	}
	p, err := c.store.Instances(ctx, datastore.InstanceQuery{})
	if err != nil {
		glog.Errorf("re-send pass: listing the instances: %v", err)
		return
	}
	if c.cfg.ResendPendingAfter > 0 {
		c.resendPending(ctx, now, p.Instances)
	}
	if c.cfg.ResendDeleteAfter > 0 {
		c.resendDeletes(ctx, now, p.Instances)
	}
}

// startWaits reports whether in waits for a START: pending, no node.
func startWaits(in datastore.Instance) bool {
	return in.State == datastore.StatePending && in.NodeID == ""
}

// resendPending re-sends the STARTs that are due (see Recovery above)
// among all, the list of every instance.
func (c *Controller) resendPending(ctx context.Context, now time.Time, all []datastore.Instance) {
	grace := c.cfg.ResendPendingAfter
	var err error
	workloads := map[string]datastore.Workload{}
	cncis := map[string]datastore.CNCI{} // by tenant; the zero CNCI when none is active
	waiting := map[string]bool{}
	n, failed := 0, 0
	for _, in := range all {
		if !startWaits(in) {
			continue
		}
		waiting[in.ID] = true
		if !c.rec.due(in.ID, now, c.firstResend(in.CreatedAt, grace), false) {
			continue
		}
		select {
		case <-c.stop:
			return
		default:
		}
		if in, err = c.store.Instance(ctx, in.ID); err != nil || !startWaits(in) {
			continue // gone, or reported by a node, since the listing
		}
		w, ok := workloads[in.WorkloadID]
		if !ok {
			if w, err = c.store.Workload(ctx, in.WorkloadID); err != nil {
				glog.Errorf("resending START of %s: %v", in.ID, err)
				continue
			}
			workloads[in.WorkloadID] = w
		}
		var cn datastore.CNCI
		if c.cfg.Network {
			if cn, ok = cncis[in.TenantID]; !ok {
				if cn, err = c.store.CNCI(ctx, in.TenantID); err != nil || cn.State != CNCIActive {
					cn = datastore.CNCI{}
				}
				cncis[in.TenantID] = cn
			}
			if cn.IP == "" {
				if failed++; failed == 1 {
					glog.Warningf("START of %s not re-sent: tenant %s has no active CNCI", in.ID, in.TenantID)
				}
				continue
			}
		}
		if err := c.sendStart(w, in, cn, "", now); err != nil {
			if failed++; failed == 1 {
				glog.Errorf("resending START of %s: %v", in.ID, err)
			}
			continue
		}
		attempt := c.rec.sent(in.ID, now, grace, false)
		n++
		c.resent(ctx, in.TenantID, fmt.Sprintf("Start re-sent for %s (attempt %d): still pending, reported by no node %v after creation",
			in.ID, attempt, now.Sub(in.CreatedAt).Round(time.Millisecond)))
	}
	c.rec.prune(waiting)
	if n > 0 {
		glog.Warningf("re-sent START for %d pending instances", n)
	}
	if failed > 1 {
		glog.Errorf("%d pending STARTs could not be re-sent; next try on the next pass", failed)
	}
}

// resentStartFailure handles StartFailure already_running or
// instance_exists: a launcher has the instance, typically because its
// START was re-sent. The instance is not failed; if no STATS named its
// node yet, the answering launcher (origin) is recorded as its node so
// that no further START is re-sent and commands can be routed.
func (c *Controller) resentStartFailure(ctx context.Context, id, origin string, reason payloads.StartFailureReason) error {
	in, err := c.store.Instance(ctx, id)
	if err != nil {
		glog.V(1).Infof("StartFailure %s for unknown instance %s ignored", reason, id)
		return nil
	}
	tracked := c.rec.tracked(id)
	node := in.NodeID
	if node == "" && origin != "" && origin != c.client.ServerUUID().String() {
		node = origin
		if _, err := c.store.UpdateInstances(ctx, []datastore.InstanceUpdate{{ID: id, State: in.State, NodeID: node, SSHIP: in.SSHIP, SSHPort: in.SSHPort}}); err != nil {
			return fmt.Errorf("record node of %s: %w", id, err)
		}
	}
	msg := fmt.Sprintf("Start of %s answered %q by node %s: the instance is there", id, reason.String(), node)
	if !tracked {
		msg += " (START not re-sent by this controller)"
	}
	glog.Info(msg)
	c.event(ctx, in.TenantID, datastore.EventInfo, msg)
	return nil
}

// nodeGone marks the instances of a disconnected node StateMissing and
// releases the tenants waiting for a CNCI deletion on it.
func (c *Controller) nodeGone(ctx context.Context, node string) error {
	c.cnciNodeGone(node, time.Now())
	p, err := c.store.Instances(ctx, datastore.InstanceQuery{NodeID: node})
	if err != nil {
		return fmt.Errorf("instances of node %s: %w", node, err)
	}
	ups := make([]datastore.InstanceUpdate, 0, len(p.Instances))
	for _, in := range p.Instances {
		if in.State != StateMissing {
			ups = append(ups, datastore.InstanceUpdate{ID: in.ID, State: StateMissing, NodeID: in.NodeID, SSHIP: in.SSHIP, SSHPort: in.SSHPort})
		}
	}
	if len(ups) == 0 {
		return nil
	}
	if _, err := c.store.UpdateInstances(ctx, ups); err != nil {
		return fmt.Errorf("marking the instances of node %s missing: %w", node, err)
	}
	glog.Warningf("node %s disconnected: %d instances marked %s", node, len(ups), StateMissing)
	c.event(ctx, "", datastore.EventWarn, fmt.Sprintf("Node disconnected %s: %d instances %s", node, len(ups), StateMissing))
	return nil
}
