// Package controller holds ciao-controller's policy: it is the SSNTP client
// with role Controller that turns API requests into START, STOP, RESTART
// and DELETE commands for the scheduler, and turns what the scheduler
// relays back (STATS, StartFailure, InstanceDeleted, node events...) into
// datastore changes and event-log entries (controller.md §4, §5).
//
// All state lives in the datastore.Store; the Controller itself only owns
// the SSNTP client and one worker goroutine. SSNTP notifications arrive on
// the client's reading goroutine, which must never block, so the notifier
// only copies each frame into an unbounded in-memory queue; the worker
// drains that queue in wire order and does the datastore work.
//
// Tenant networking (CNCIs) is behind Config.Network, which is off by
// default: with it off no CNCI is launched and instances get a private
// address and start directly; with it on each tenant's first request
// starts the tenant's CNCI and waits for it (cnci.go).
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
)

// Sentinel errors of the policy. Store errors (datastore.ErrNotFound,
// ErrQuota, ErrInvalid...) are passed up wrapped; compare with errors.Is.
var (
	// ErrNotOwner: the instance belongs to another tenant.
	ErrNotOwner = errors.New("controller: you are not server owner")
	// ErrNotAssigned: the instance has no node yet, so no command can be
	// routed to it.
	ErrNotAssigned = errors.New("controller: instance not assigned to node")
	// ErrBadState: the instance is in a state the operation refuses
	// (stopping a pending instance, restarting a running one).
	ErrBadState = errors.New("controller: operation not allowed in this state")
	// ErrUnavailable: the command could not be handed to the scheduler.
	ErrUnavailable = errors.New("controller: scheduler unavailable")
)

// DefaultMaxLaunch bounds the instances one Launch may ask for.
const DefaultMaxLaunch = 100

// DefaultResendPendingAfter is Config.ResendPendingAfter's default: five
// 2016 launcher STATS periods.
const DefaultResendPendingAfter = 30 * time.Second

// DefaultResendDeleteAfter is Config.ResendDeleteAfter's default, the
// same as DefaultResendPendingAfter.
const DefaultResendDeleteAfter = DefaultResendPendingAfter

// Config configures a Controller. Build it with NewConfig.
type Config struct {
	// SSNTP is the client configuration (certificates, scheduler host and
	// port). Its Role is forced to ssntp.Controller.
	SSNTP ssntp.Config
	// Store is where every record lives. The Controller does not close it.
	Store datastore.Store
	// Network turns on tenant networking: one CNCI per tenant, started
	// before the tenant's first instance (cnci.go).
	Network bool
	// CNCITimeout bounds the wait for a tenant's CNCI to come up (and for
	// a CNCI being deleted to go before its tenant gets a new one).
	CNCITimeout time.Duration
	// CNCIIdle: a tenant's CNCI is deleted once the tenant has had no
	// instance for this long (cnci_life.go). 0 keeps CNCIs forever.
	CNCIIdle time.Duration
	// MaxLaunch bounds the count of one Launch.
	MaxLaunch int
	// OpTimeout bounds the datastore work done for one received frame.
	OpTimeout time.Duration
	// ResendPendingAfter: instances still pending and reported by no node
	// this long after their creation (or after New, for those of an
	// earlier process) get their START sent again, then with a doubling
	// backoff (recovery.go). A START can be lost on the way, and a 202
	// only means the START was handed to the SSNTP client: a controller
	// killed right then may not have written it. Choose it above the
	// launchers' STATS period, so an instance that did reach a node is
	// reported (and not started twice) first. 0 turns it off; it does not
	// touch DELETE re-sends (ResendDeleteAfter).
	ResendPendingAfter time.Duration
	// ResendDeleteAfter: a DELETE its node did not confirm this long after
	// it was asked (or after New, for those of an earlier process) is sent
	// again, then with the same doubling backoff (deleting.go). With it
	// on, Delete also accepts a DELETE the scheduler cannot take now. 0
	// turns it off: a lost DELETE then leaves the instance deleting until
	// asked again.
	ResendDeleteAfter time.Duration
	// UsageRetention: the lifetimes of deleted instances, which usage
	// reports are computed from, are kept this long after the deletion
	// (usage.go). 0 keeps them forever.
	UsageRetention time.Duration
	// Metrics, if set, counts launches and received frames.
	Metrics *metrics.Metrics
}

// NewConfig returns a Config with the defaults.
func NewConfig(store datastore.Store, sc ssntp.Config) Config {
	sc.Role = ssntp.Controller
	return Config{SSNTP: sc, Store: store, MaxLaunch: DefaultMaxLaunch, OpTimeout: 10 * time.Second,
		ResendPendingAfter: DefaultResendPendingAfter, ResendDeleteAfter: DefaultResendDeleteAfter, CNCITimeout: DefaultCNCITimeout, CNCIIdle: DefaultCNCIIdle,
		UsageRetention: DefaultUsageRetention}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("controller config: no datastore")
	case c.Network && c.CNCITimeout <= 0:
		return errors.New("controller config: CNCI timeout must be > 0")
	case c.CNCIIdle < 0:
		return errors.New("controller config: CNCI idle delay must be >= 0")
	case c.MaxLaunch < 1:
		return fmt.Errorf("controller config: max launch %d < 1", c.MaxLaunch)
	case c.OpTimeout <= 0:
		return errors.New("controller config: op timeout must be > 0")
	case c.ResendPendingAfter < 0:
		return fmt.Errorf("controller config: START re-send delay %v < 0 (0 turns START re-sends off)", c.ResendPendingAfter)
	case c.ResendDeleteAfter < 0:
		return fmt.Errorf("controller config: DELETE re-send delay %v < 0 (0 turns DELETE re-sends off)", c.ResendDeleteAfter)
	case c.UsageRetention < 0:
		return fmt.Errorf("controller config: usage retention %v < 0 (0 keeps usage records forever)", c.UsageRetention)
	}
	return nil
}

// Controller is the policy engine. Its exported methods are safe for
// concurrent use. The inbox is guarded by mu; everything else is set in
// New and read-only afterwards.
type Controller struct {
	cfg    Config
	store  datastore.Store
	client *ssntp.Client

	mu    sync.Mutex
	inbox []received    // guarded by mu: frames waiting for the worker
	wake  chan struct{} // capacity 1: the inbox is not empty

	stop    chan struct{} // closed by Close: the worker exits
	done    chan struct{} // closed when the worker has exited
	closed  sync.Once
	bg      sync.WaitGroup // background jobs (maintenance loop, usage pruning, CNCI launches), stopped by stop
	cnci    cncis          // CNCI launches and deletions in progress
	rec     retries        // sent STARTs (recovery.go)
	redel   retries        // sent DELETEs (deleting.go)
	started time.Time      // when New ran
}

// received is one notification copied off the reading goroutine.
type received struct {
	typ     ssntp.Type
	op      uint8
	origin  string
	payload []byte
}

// New dials the scheduler (retrying until it answers or ctx ends), starts
// the worker and returns the running Controller.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	cfg.SSNTP.Role = ssntp.Controller
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:     cfg,
		store:   cfg.Store,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		started: time.Now(),
		cnci:    newCNCIs(),
		rec:     newRetries(),
		redel:   newRetries(),
	}
	go c.work()
	cl, err := ssntp.Dial(ctx, cfg.SSNTP, (*notifier)(c))
	if err != nil {
		close(c.stop)
		<-c.done
		return nil, fmt.Errorf("connect to scheduler: %w", err)
	}
	c.client = cl
	glog.Infof("controller %s connected to scheduler %s", cl.UUID(), cl.ServerUUID())
	if cfg.ResendPendingAfter > 0 || cfg.ResendDeleteAfter > 0 || cfg.Network {
		c.bg.Add(1)
		go c.maintain()
	}
	if cfg.UsageRetention > 0 {
		c.bg.Add(1)
		go c.pruneUsageLoop()
	}
	return c, nil
}

// UUID is the controller's SSNTP UUID.
func (c *Controller) UUID() string { return c.client.UUID().String() }

// Store is the datastore the controller works on, for read-only API use.
func (c *Controller) Store() datastore.Store { return c.store }

// Close stops the controller, in this order: the SSNTP client (no more
// notifications; frames already sent get up to a second to leave), then
// the maintenance loop and CNCI launches, then the worker, which
// finishes the frame in hand and drops the rest of the
// queue (logged). It does not close the datastore, which the caller owns
// and must close afterwards. Calling Close twice is fine.
func (c *Controller) Close() error {
	var err error
	c.closed.Do(func() {
		err = c.client.Close()
		close(c.stop)
		c.bg.Wait()
		<-c.done
		c.mu.Lock()
		if n := len(c.inbox); n > 0 {
			glog.Warningf("controller closing: %d received frames not processed", n)
		}
		c.inbox = nil
		c.mu.Unlock()
	})
	return err
}

// enqueue hands a frame to the worker without blocking.
func (c *Controller) enqueue(typ ssntp.Type, op uint8, f *ssntp.Frame) {
	r := received{typ: typ, op: op, origin: f.Origin.String(), payload: append([]byte(nil), f.Payload...)}
	c.mu.Lock()
	c.inbox = append(c.inbox, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// work is the worker goroutine: it handles queued frames in order.
func (c *Controller) work() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if len(c.inbox) == 0 {
				c.mu.Unlock()
				break
			}
			r := c.inbox[0]
			c.inbox[0] = received{}
			c.inbox = c.inbox[1:]
			c.mu.Unlock()
			c.handle(r)
			select {
			case <-c.stop:
				return
			default:
			}
		}
	}
}

// notifier adapts the Controller to ssntp.ClientNotifier. Its methods run
// on the SSNTP reading goroutine and only enqueue.
type notifier Controller

func (n *notifier) ConnectNotify() { glog.Info("SSNTP connected to scheduler") }
func (n *notifier) DisconnectNotify() {
	glog.Warning("SSNTP disconnected from scheduler; reconnecting")
}
func (n *notifier) StatusNotify(s ssntp.Status, f *ssntp.Frame) {
	glog.V(2).Infof("ignoring status %s from %s", s, f.Origin)
}
func (n *notifier) CommandNotify(cmd ssntp.Command, f *ssntp.Frame) {
	n.cfg.Metrics.Frame("command", cmd.String())
	(*Controller)(n).enqueue(ssntp.COMMAND, uint8(cmd), f)
}
func (n *notifier) EventNotify(ev ssntp.Event, f *ssntp.Frame) {
	n.cfg.Metrics.Frame("event", ev.String())
	(*Controller)(n).enqueue(ssntp.EVENT, uint8(ev), f)
}
func (n *notifier) ErrorNotify(e ssntp.Error, f *ssntp.Frame) {
	n.cfg.Metrics.Frame("error", e.String())
	(*Controller)(n).enqueue(ssntp.ERROR, uint8(e), f)
}
