package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// CNCI deletion (see the comment at the top of cnci.go). The reaper and
// the DELETE retries run on the maintenance loop (recovery.go); the
// confirmations arrive on the worker.

// nodeOf is the node that last reported instance id in STATS, or "".
func (c *Controller) nodeOf(ctx context.Context, id string) string {
	return c.nodeSince(ctx, id, time.Time{})
}

// nodeSince is nodeOf counting only STATS received after since.
func (c *Controller) nodeSince(ctx context.Context, id string, since time.Time) string {
	st, err := c.store.InstanceStats(ctx, id)
	if err != nil || !st.Time.After(since) {
		return ""
	}
	return st.NodeID
}

// doomLocked registers the deletion of CNCI id of tenant (c.cnci.mu held)
// and removes its record: the tenant's next request starts a new CNCI
// (after this one is gone, if its node is known). The caller sends the
// DELETE with sendCNCIDelete once mu is released.
func (c *Controller) doomLocked(ctx context.Context, tenant, id, reason string) *cnciDeath {
	if d := c.cnci.dying[id]; d != nil {
		return d
	}
	d := &cnciDeath{tenant: tenant, id: id, reason: reason, node: c.nodeOf(ctx, id), done: make(chan struct{}), released: make(chan struct{})}
	c.cnci.dying[id] = d
	if cn, err := c.store.CNCI(ctx, tenant); err == nil && cn.ID == id {
		if err := c.store.DeleteCNCI(ctx, tenant); err != nil && !errors.Is(err, datastore.ErrNotFound) {
			glog.Errorf("removing the record of CNCI %s of %s: %v", id, tenant, err)
		}
	}
	where := "node not known yet: DELETE once a node reports it"
	if d.node != "" {
		where = "on node " + d.node
	}
	glog.Warningf("tenant %s: deleting CNCI %s (%s), %s", tenant, id, reason, where)
	return d
}

// sendCNCIDelete sends d's DELETE if its node is known. Failures are
// logged; the maintenance loop retries.
func (c *Controller) sendCNCIDelete(ctx context.Context, d *cnciDeath) {
	c.cnci.mu.Lock()
	node, tries := d.node, d.tries+1
	if node != "" {
		d.sent, d.tries = time.Now(), tries
	}
	c.cnci.mu.Unlock()
	if node == "" {
		return
	}
	b, err := yaml.Marshal(payloads.Delete{Delete: payloads.StopCmd{InstanceUUID: d.id, WorkloadAgentUUID: node}})
	if err == nil {
		err = c.client.SendCommand(ssntp.DELETE, b)
	}
	if err != nil {
		glog.Errorf("tenant %s: DELETE of CNCI %s not sent: %v", d.tenant, d.id, err)
		return
	}
	glog.Infof("tenant %s: DELETE sent for CNCI %s to node %s (attempt %d)", d.tenant, d.id, node, tries)
	if tries == 1 {
		c.event(ctx, d.tenant, datastore.EventInfo, fmt.Sprintf("CNCI Delete %s: %s", d.id, d.reason))
	}
}

// cnciGone ends the deletion of CNCI id, if one is in progress: the
// record goes and the waiting requests go on. It reports whether id was
// being deleted.
func (c *Controller) cnciGone(ctx context.Context, id, how string) bool {
	c.cnci.mu.Lock()
	d := c.cnci.dying[id]
	if d != nil {
		delete(c.cnci.dying, id)
		close(d.done)
		if cn, err := c.store.CNCI(ctx, d.tenant); err == nil && cn.ID == id {
			if err := c.store.DeleteCNCI(ctx, d.tenant); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				glog.Errorf("removing the record of CNCI %s of %s: %v", id, d.tenant, err)
			}
		}
	}
	c.cnci.mu.Unlock()
	if d == nil {
		return false
	}
	glog.Infof("tenant %s: CNCI %s deleted (%s)", d.tenant, id, how)
	c.event(ctx, d.tenant, datastore.EventInfo, fmt.Sprintf("CNCI Deleted %s: %s", id, how))
	return true
}

// cnciInstanceDeleted handles InstanceDeleted for a CNCI: the end of a
// deletion, or a tenant's CNCI gone on its own (its record goes, so the
// tenant's next request starts a new one). It reports whether id was a
// CNCI.
func (c *Controller) cnciInstanceDeleted(ctx context.Context, id string) bool {
	if c.cnciGone(ctx, id, "deleted by its node") {
		return true
	}
	cs, err := c.store.CNCIs(ctx)
	if err != nil {
		return false
	}
	for _, cn := range cs {
		if cn.ID != id {
			continue
		}
		c.cnci.mu.Lock()
		if cur, err := c.store.CNCI(ctx, cn.TenantID); err == nil && cur.ID == id {
			if err := c.store.DeleteCNCI(ctx, cn.TenantID); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				glog.Errorf("removing the record of CNCI %s of %s: %v", id, cn.TenantID, err)
			}
		}
		c.cnci.mu.Unlock()
		msg := fmt.Sprintf("CNCI Deleted %s: gone from its node unasked", id)
		glog.Warningf("tenant %s: %s", cn.TenantID, msg)
		c.event(ctx, cn.TenantID, datastore.EventWarn, msg)
		return true
	}
	return false
}

// cnciNodeGone: the deletions waiting on a node that disconnected stop
// holding their tenants back (a node may never come back); each is
// DELETEd again once a STATS received after now names its node.
func (c *Controller) cnciNodeGone(node string, now time.Time) {
	c.cnci.mu.Lock()
	defer c.cnci.mu.Unlock()
	for _, d := range c.cnci.dying {
		if d.node != node {
			continue
		}
		d.node, d.lost, d.sent, d.tries = "", now, time.Time{}, 0
		close(d.released)
		d.released = make(chan struct{})
		glog.Warningf("tenant %s: node %s of CNCI %s being deleted disconnected; the tenant may get a new CNCI meanwhile", d.tenant, node, d.id)
	}
}

// cnciDeleteFailure handles DeleteFailure for a CNCI being deleted:
// no_instance means it is gone already; other reasons are logged and the
// DELETE is retried. It reports whether id was being deleted.
func (c *Controller) cnciDeleteFailure(ctx context.Context, id string, reason payloads.DeleteFailureReason) bool {
	if reason == payloads.DeleteNoInstance {
		return c.cnciGone(ctx, id, "its node no longer has it")
	}
	c.cnci.mu.Lock()
	d := c.cnci.dying[id]
	c.cnci.mu.Unlock()
	if d == nil {
		return false
	}
	glog.Warningf("tenant %s: DELETE of CNCI %s failed: %s; retrying later", d.tenant, id, reason.String())
	return true
}

// reapIdleCNCIs sends DELETE for every active CNCI whose tenant has had
// no instance, and no request using the CNCI, for CNCIIdle; it also takes
// up the deletions an earlier process left (state CNCIDeleting).
func (c *Controller) reapIdleCNCIs(ctx context.Context, now time.Time) {
	cs, err := c.store.CNCIs(ctx)
	if err != nil {
		glog.Errorf("idle CNCI check: %v", err)
		return
	}
	for _, cn := range cs {
		var d *cnciDeath
		switch cn.State {
		case CNCIDeleting:
			d = c.resumeDeath(ctx, cn)
		case CNCIActive:
			if c.cfg.CNCIIdle > 0 {
				d = c.idleCheck(ctx, cn, now)
			}
		}
		if d != nil {
			c.sendCNCIDelete(ctx, d)
		}
	}
}

// resumeDeath takes up a deletion recorded by an earlier process.
func (c *Controller) resumeDeath(ctx context.Context, cn datastore.CNCI) *cnciDeath {
	c.cnci.mu.Lock()
	defer c.cnci.mu.Unlock()
	if c.cnci.dying[cn.ID] != nil {
		return nil
	}
	d := &cnciDeath{tenant: cn.TenantID, id: cn.ID, reason: "deletion resumed after a controller restart",
		node: c.nodeOf(ctx, cn.ID), done: make(chan struct{}), released: make(chan struct{})}
	c.cnci.dying[cn.ID] = d
	return d
}

// idleCheck advances the tenant's idle clock and, when it has run out,
// marks the CNCI deleting (persisted, so a restarted controller finishes
// the job) and returns its deletion. A CNCI whose node no STATS named yet
// is left alone: its DELETE could not be routed.
func (c *Controller) idleCheck(ctx context.Context, cn datastore.CNCI, now time.Time) *cnciDeath {
	c.cnci.mu.Lock()
	defer c.cnci.mu.Unlock()
	t := cn.TenantID
	if c.cnci.byTenant[t] != nil || c.cnci.users[t] > 0 || c.cnci.dying[cn.ID] != nil {
		delete(c.cnci.idleSince, t)
		return nil
	}
	p, err := c.store.Instances(ctx, datastore.InstanceQuery{TenantID: t, Limit: 1})
	if err != nil || p.Total > 0 {
		delete(c.cnci.idleSince, t)
		return nil
	}
	since, ok := c.cnci.idleSince[t]
	if !ok {
		c.cnci.idleSince[t] = now
		return nil
	}
	if now.Sub(since) < c.cfg.CNCIIdle {
		return nil
	}
	node := c.nodeOf(ctx, cn.ID)
	if node == "" {
		glog.V(1).Infof("tenant %s: idle CNCI %s kept: no node reported it yet", t, cn.ID)
		return nil
	}
	cn.State = CNCIDeleting
	if err := c.store.PutCNCI(ctx, cn); err != nil {
		glog.Errorf("tenant %s: marking CNCI %s deleting: %v", t, cn.ID, err)
		return nil
	}
	delete(c.cnci.idleSince, t)
	d := &cnciDeath{tenant: t, id: cn.ID, node: node, done: make(chan struct{}), released: make(chan struct{}),
		reason: fmt.Sprintf("tenant without instances for %v", c.cfg.CNCIIdle)}
	c.cnci.dying[cn.ID] = d
	glog.Infof("tenant %s: deleting idle CNCI %s on node %s", t, cn.ID, node)
	return d
}

// retryCNCIDeletes sends the DELETEs that are due: a first one once a
// node reports a CNCI whose node was unknown, and unconfirmed ones again
// after CNCITimeout/2, doubling up to 8 × CNCITimeout. A request waiting
// for a deletion (awaitDeath, at most CNCITimeout) so sees at least one
// retry.
func (c *Controller) retryCNCIDeletes(ctx context.Context, now time.Time) {
	c.cnci.mu.Lock()
	var due []*cnciDeath
	for _, d := range c.cnci.dying {
		if d.node == "" {
			if d.node = c.nodeSince(ctx, d.id, d.lost); d.node == "" {
				continue
			}
		}
		wait := c.cfg.CNCITimeout / 2 << min(max(d.tries-1, 0), 4)
		if d.sent.IsZero() || now.Sub(d.sent) >= wait {
			due = append(due, d)
		}
	}
	c.cnci.mu.Unlock()
	for _, d := range due {
		c.sendCNCIDelete(ctx, d)
	}
}
