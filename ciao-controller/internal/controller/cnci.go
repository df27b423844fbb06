package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// One CNCI per tenant (controller.md §4.2, §4.3, with the Q17
// recommendations): with Config.Network on, a tenant's first launch (or
// quotas request) starts the CNCI workload for it on a network node and
// waits until the CNCI's agent announces itself with
// ConcentratorInstanceAdded, at most Config.CNCITimeout. Concurrent first
// requests of one tenant wait for the same CNCI. A StartFailure for the
// CNCI, or the timeout, fails the waiting requests with ErrCNCI and logs
// an error event; the next request tries again.
//
// Unlike 2016, CNCIs are also deleted (cnci_life.go):
//   - a tenant's active CNCI, once the tenant has had no instance and no
//     request using the CNCI for Config.CNCIIdle, gets DELETE. Its record
//     stays, in state CNCIDeleting, until its node confirms with
//     InstanceDeleted (or DeleteFailure no_instance); then it goes;
//   - a CNCI that timed out gets DELETE too and its record goes at once.
//
// A CNCI being deleted is in cncis.dying. A request of its tenant never
// uses it: once its DELETE can be routed (its node is known from STATS)
// the request waits for the deletion to be confirmed (at most
// CNCITimeout), then starts a fresh CNCI; so a tenant never has two CNCIs
// running. A timed-out CNCI whose node is unknown (its START may never
// have reached a node) does not hold the tenant back: it stays in dying
// and gets its DELETE if a node ever reports it. Nor does a deletion
// whose node disconnected (NodeDisconnected): it is sent again once that
// node reports the CNCI after coming back, and meanwhile the tenant may
// get a new CNCI, the one case where two may run.

// CNCI states stored in datastore.CNCI.State.
const (
	CNCIPending  = "pending"
	CNCIActive   = "active"
	CNCIDeleting = "deleting"
)

// ErrCNCI: the tenant's CNCI could not be started (StartFailure) or did
// not come up in time.
var ErrCNCI = errors.New("controller: tenant CNCI unavailable")

// DefaultCNCITimeout bounds the wait for a CNCI to come up: a VM boot on
// a loaded network node.
const DefaultCNCITimeout = 3 * time.Minute

// DefaultCNCIIdle is Config.CNCIIdle's default.
const DefaultCNCIIdle = 10 * time.Minute

// cnciLaunch is one CNCI start in progress; done is closed once err is
// set. Waiters only read err after done.
type cnciLaunch struct {
	tenant, id, mac string
	done            chan struct{}
	err             error
}

// cnciDeath is one CNCI deletion in progress; done is closed when the
// CNCI is known to be gone.
type cnciDeath struct {
	tenant, id, reason string
	node               string    // where DELETE goes; "" until a STATS names it
	sent               time.Time // last DELETE sent; zero: none yet
	tries              int
	lost               time.Time     // its node disconnected then; only later STATS name it again
	done               chan struct{} // closed when the CNCI is gone
	released           chan struct{} // closed (and replaced) when its node disconnects
}

// cncis tracks the launches and deletions in progress and what the idle
// reaper needs. mu guards every map.
type cncis struct {
	mu        sync.Mutex
	byTenant  map[string]*cnciLaunch
	byID      map[string]*cnciLaunch
	dying     map[string]*cnciDeath // by CNCI id
	users     map[string]int        // tenant -> requests holding its CNCI (Launch between confirm and create)
	idleSince map[string]time.Time  // tenant -> first reaper pass that saw it idle
}

func newCNCIs() cncis {
	return cncis{byTenant: map[string]*cnciLaunch{}, byID: map[string]*cnciLaunch{},
		dying: map[string]*cnciDeath{}, users: map[string]int{}, idleSince: map[string]time.Time{}}
}

// finishLocked ends a launch (mu held).
func (cs *cncis) finishLocked(l *cnciLaunch, err error) {
	if cs.byTenant[l.tenant] != l {
		return // already finished
	}
	delete(cs.byTenant, l.tenant)
	delete(cs.byID, l.id)
	l.err = err
	close(l.done)
}

// blockingDeathLocked is a deletion of tenant's CNCI that a new CNCI must
// wait for: one whose DELETE can be routed.
func (cs *cncis) blockingDeathLocked(tenant string) *cnciDeath {
	for _, d := range cs.dying {
		if d.tenant == tenant && d.node != "" {
			return d
		}
	}
	return nil
}

// ensureCNCI returns the tenant's active CNCI, starting one if it has
// none, or ErrCNCI. The caller must call release once it no longer needs
// the CNCI (after its instances are stored): until then the idle reaper
// leaves the CNCI alone.
func (c *Controller) ensureCNCI(ctx context.Context, t datastore.Tenant) (datastore.CNCI, func(), error) {
	for round := 0; ; round++ {
		if round == 4 {
			return datastore.CNCI{}, nil, fmt.Errorf("CNCI of %s: still not active after %d launches: %w", t.ID, round, ErrCNCI)
		}
		// Fast path: an active CNCI, read without the lock, is taken if
		// no deletion or launch started meanwhile (both happen under
		// the lock, and the reaper leaves a CNCI with users alone).
		if cn, err := c.store.CNCI(ctx, t.ID); err == nil && cn.State == CNCIActive && cn.IP != "" {
			c.cnci.mu.Lock()
			if c.cnci.dying[cn.ID] == nil && c.cnci.byTenant[t.ID] == nil {
				c.cnci.users[t.ID]++
				delete(c.cnci.idleSince, t.ID)
				c.cnci.mu.Unlock()
				return cn, func() { c.releaseCNCI(t.ID) }, nil
			}
			c.cnci.mu.Unlock()
		}
		c.cnci.mu.Lock()
		if d := c.cnci.blockingDeathLocked(t.ID); d != nil {
			released := d.released
			c.cnci.mu.Unlock()
			if err := c.awaitDeath(ctx, d, released); err != nil {
				return datastore.CNCI{}, nil, err
			}
			continue
		}
		l, running := c.cnci.byTenant[t.ID]
		var doomed *cnciDeath
		waitDoomed := false // read under mu: a disconnect may clear doomed.node
		if !running {
			cn, err := c.store.CNCI(ctx, t.ID)
			switch {
			case err == nil && cn.State == CNCIActive && cn.IP != "" && c.cnci.dying[cn.ID] == nil:
				c.cnci.users[t.ID]++
				delete(c.cnci.idleSince, t.ID)
				c.cnci.mu.Unlock()
				return cn, func() { c.releaseCNCI(t.ID) }, nil
			case err == nil && cn.ID != "" && c.cnci.dying[cn.ID] == nil:
				// Left deleting or pending by an earlier process (or by
				// a launch whose START was not sent): it may run
				// somewhere, so it is deleted before a new one starts.
				doomed = c.doomLocked(ctx, cn.TenantID, cn.ID, "replaced: left "+cn.State+" with no launch in progress")
				waitDoomed = doomed.node != ""
			case err != nil && !errors.Is(err, datastore.ErrNotFound):
				c.cnci.mu.Unlock()
				return datastore.CNCI{}, nil, fmt.Errorf("CNCI of %s: %w", t.ID, err)
			}
			if !waitDoomed {
				l = &cnciLaunch{tenant: t.ID, id: uuid.Generate().String(), mac: t.CNCIMAC, done: make(chan struct{})}
				c.cnci.byTenant[t.ID] = l
				c.cnci.byID[l.id] = l
			}
		}
		c.cnci.mu.Unlock()
		if doomed != nil {
			c.sendCNCIDelete(ctx, doomed)
			if waitDoomed {
				continue // wait for it first
			}
		}
		if !running {
			c.bg.Add(1)
			go c.launchCNCI(l)
		}
		select {
		case <-l.done:
		case <-ctx.Done():
			return datastore.CNCI{}, nil, fmt.Errorf("waiting for the CNCI of %s: %w", t.ID, ctx.Err())
		}
		if l.err != nil {
			return datastore.CNCI{}, nil, l.err
		}
	}
}

// releaseCNCI ends one use taken by ensureCNCI.
func (c *Controller) releaseCNCI(tenant string) {
	c.cnci.mu.Lock()
	if c.cnci.users[tenant]--; c.cnci.users[tenant] <= 0 {
		delete(c.cnci.users, tenant)
	}
	c.cnci.mu.Unlock()
}

// awaitDeath waits until d's CNCI is confirmed gone or its node
// disconnects (released), at most CNCITimeout.
func (c *Controller) awaitDeath(ctx context.Context, d *cnciDeath, released <-chan struct{}) error {
	glog.Infof("tenant %s: waiting for the deletion of CNCI %s before starting a new one", d.tenant, d.id)
	t := time.NewTimer(c.cfg.CNCITimeout)
	defer t.Stop()
	select {
	case <-d.done:
		return nil
	case <-released:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the deletion of CNCI %s of %s: %w", d.id, d.tenant, ctx.Err())
	case <-c.stop:
		return fmt.Errorf("CNCI for %s: controller closing: %w", d.tenant, ErrCNCI)
	case <-t.C:
		return fmt.Errorf("CNCI for %s: the previous CNCI %s is not deleted after %v: %w", d.tenant, d.id, c.cfg.CNCITimeout, ErrCNCI)
	}
}

// launchCNCI stores the CNCI as pending, sends its START and ends the
// launch with the timeout unless the CNCI's event or failure ends it
// first. It runs on its own goroutine (c.bg), so an impatient request
// does not abandon a launch half done. A CNCI that times out is deleted.
func (c *Controller) launchCNCI(l *cnciLaunch) {
	defer c.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
	err := c.startCNCI(ctx, l)
	cancel()
	if err != nil {
		c.endCNCI(l, fmt.Errorf("launch CNCI for %s: %w: %w", l.tenant, ErrCNCI, err))
		return
	}
	t := time.NewTimer(c.cfg.CNCITimeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-c.stop:
		c.endCNCI(l, fmt.Errorf("CNCI for %s: controller closing: %w", l.tenant, ErrCNCI))
	case <-t.C:
		msg := fmt.Sprintf("CNCI Start Timeout %s: tenant %s's CNCI did not announce itself within %v", l.id, l.tenant, c.cfg.CNCITimeout)
		glog.Error(msg)
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
		defer cancel()
		c.event(ctx, l.tenant, datastore.EventError, msg)
		c.cnci.mu.Lock()
		d := c.doomLocked(ctx, l.tenant, l.id, fmt.Sprintf("did not announce itself within %v", c.cfg.CNCITimeout))
		c.cnci.finishLocked(l, fmt.Errorf("CNCI for %s: not up within %v: %w", l.tenant, c.cfg.CNCITimeout, ErrCNCI))
		c.cnci.mu.Unlock()
		c.sendCNCIDelete(ctx, d)
	}
}

func (c *Controller) endCNCI(l *cnciLaunch, err error) {
	c.cnci.mu.Lock()
	c.cnci.finishLocked(l, err)
	c.cnci.mu.Unlock()
}

// startCNCI records the pending CNCI and sends its START.
func (c *Controller) startCNCI(ctx context.Context, l *cnciLaunch) error {
	w, err := c.cnciWorkload(ctx)
	if err != nil {
		return err
	}
	if err := c.store.PutCNCI(ctx, datastore.CNCI{TenantID: l.tenant, ID: l.id, MAC: l.mac, State: CNCIPending}); err != nil {
		return fmt.Errorf("store CNCI: %w", err)
	}
	p, err := CNCIStartPayload(w, l.tenant, l.id, l.mac)
	if err != nil {
		return err
	}
	if err := c.client.SendCommand(ssntp.START, p); err != nil {
		return fmt.Errorf("send START: %w: %w", ErrUnavailable, err)
	}
	glog.Infof("tenant %s: CNCI %s (mac %s) START sent", l.tenant, l.id, l.mac)
	return nil
}

// cnciWorkload is the internal workload described "CNCI" (§4.3 step 1).
func (c *Controller) cnciWorkload(ctx context.Context) (datastore.Workload, error) {
	ws, err := c.store.Workloads(ctx, datastore.WorkloadFilter{Internal: true})
	if err != nil {
		return datastore.Workload{}, err
	}
	for _, w := range ws {
		if w.Description == "CNCI" && w.IsCNCI() {
			return w, nil
		}
	}
	return datastore.Workload{}, errors.New("no CNCI workload in datastore")
}

// CNCIStartPayload is the START of a tenant's CNCI (§4.3, §5.2): no
// private address, the tenant's CNCI MAC as vnic_mac, hostname
// cnci-<tenant>.
func CNCIStartPayload(w datastore.Workload, tenant, id, mac string) ([]byte, error) {
	cmd := startCmd(w, tenant, id, payloads.NetworkResources{VnicMAC: mac, VnicUUID: uuid.Generate().String()})
	return composeStart(w, cmd, payloads.StartMetadata{UUID: id, Hostname: "cnci-" + tenant})
}

// handleCNCIAdded applies ConcentratorInstanceAdded: the CNCI is matched
// by its instance id, else by the tenant's CNCI MAC (§4.3 step 4: the
// MAC is what 2016 matched on).
func (c *Controller) handleCNCIAdded(ctx context.Context, payload []byte) error {
	var ev payloads.EventConcentratorInstanceAdded
	if err := yaml.Unmarshal(payload, &ev); err != nil {
		return fmt.Errorf("decode ConcentratorInstanceAdded: %w", err)
	}
	a := ev.CNCIAdded
	// Under mu from here: a CNCI the reaper dooms meanwhile must not be
	// recorded active again.
	c.cnci.mu.Lock()
	defer c.cnci.mu.Unlock()
	if d := c.cnci.dying[a.InstanceUUID]; d != nil {
		glog.Warningf("ConcentratorInstanceAdded from CNCI %s of %s ignored: it is being deleted (%s)", a.InstanceUUID, d.tenant, d.reason)
		return nil
	}
	l := c.cnci.byID[a.InstanceUUID]
	tenant := ""
	if l != nil {
		tenant = l.tenant
	} else {
		cs, err := c.store.CNCIs(ctx)
		if err != nil {
			return err
		}
		for _, cn := range cs {
			if cn.ID == a.InstanceUUID || (a.ConcentratorMAC != "" && strings.EqualFold(cn.MAC, a.ConcentratorMAC)) {
				tenant = cn.TenantID
				if cn.State == CNCIDeleting {
					glog.Warningf("ConcentratorInstanceAdded from CNCI %s ignored: tenant %s's CNCI %s is being deleted", a.InstanceUUID, tenant, cn.ID)
					return nil
				}
				break
			}
		}
	}
	if tenant == "" {
		glog.Warningf("ConcentratorInstanceAdded for unknown CNCI %s (mac %s) ignored", a.InstanceUUID, a.ConcentratorMAC)
		return nil
	}
	old, _ := c.store.CNCI(ctx, tenant)
	mac := old.MAC
	if mac == "" {
		mac = a.ConcentratorMAC
	}
	if err := c.store.PutCNCI(ctx, datastore.CNCI{TenantID: tenant, ID: a.InstanceUUID, MAC: mac, IP: a.ConcentratorIP, State: CNCIActive}); err != nil {
		return fmt.Errorf("store CNCI of %s: %w", tenant, err)
	}
	glog.Infof("tenant %s: CNCI %s up at %s", tenant, a.InstanceUUID, a.ConcentratorIP)
	if l := c.cnci.byTenant[tenant]; l != nil {
		c.cnci.finishLocked(l, nil)
	}
	return nil
}

// cnciStartFailure handles a StartFailure for a CNCI; it reports whether
// id was one.
func (c *Controller) cnciStartFailure(ctx context.Context, id string, reason payloads.StartFailureReason) bool {
	if c.cnciGone(ctx, id, "START failed: "+reason.String()) {
		return true // one being deleted: its START failing ends it
	}
	c.cnci.mu.Lock()
	l := c.cnci.byID[id]
	c.cnci.mu.Unlock()
	tenant := ""
	if l != nil {
		tenant = l.tenant
	} else if cs, err := c.store.CNCIs(ctx); err == nil {
		for _, cn := range cs {
			if cn.ID == id {
				tenant = cn.TenantID
			}
		}
	}
	if tenant == "" {
		return false
	}
	if err := c.store.DeleteCNCI(ctx, tenant); err != nil && !errors.Is(err, datastore.ErrNotFound) {
		glog.Errorf("clearing CNCI of %s: %v", tenant, err)
	}
	msg := fmt.Sprintf("CNCI Start Failure %s: %s", id, reason.String())
	glog.Error(msg)
	c.event(ctx, tenant, datastore.EventError, msg)
	if l != nil {
		c.endCNCI(l, fmt.Errorf("failed to launch CNCI for %s: %s: %w", tenant, reason.String(), ErrCNCI))
	}
	return true
}
