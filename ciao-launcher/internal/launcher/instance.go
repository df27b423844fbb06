package launcher

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

type instOp int

const (
	opStop instOp = iota
	opRestart
	opDelete
)

// instCmd is a command for an instance goroutine.
type instCmd struct{ op instOp }

type evKind int

const (
	evState        evKind = iota // state changed
	evSample                     // new resource sample
	evRemoved                    // the instance is gone without a trace (failed START)
	evDeleted                    // the instance was deleted: report InstanceDeleted
	evDeleteFailed               // its deletion failed and it is kept: a DELETE may come again
)

// instEvent is an instance goroutine's report to the main loop.
type instEvent struct {
	id         string
	kind       evKind
	state      string
	startedNow bool // with evState active: a START just succeeded
	// startFailure, if set, is sent by the main loop once it has applied
	// the event, so that the scheduler never sees a failure before the
	// launcher's table agrees with it.
	startFailure payloads.StartFailureReason
	sample       sample
}

// sample is an instance's last resource sample; −1 is unknown.
type sample struct {
	memMB, diskMB, cpu int
}

// instance is one instance as its goroutine sees it. Every field is owned
// by that goroutine (run); l is shared read-only.
type instance struct {
	l   *Launcher
	id  string
	dir string
	drv driver.Driver
	st  *instanceState
	req *startRequest
	box *mailbox[instCmd]
	// vnic is the instance's tenant VNIC (nil = none), for the spec.
	vnic   *networking.Vnic
	vnicIP net.IPNet

	running   bool
	lastCPU   time.Duration // CPU time at lastCPUAt; negative: no baseline
	lastCPUAt time.Time

	// With a driver.Waiter driver the instance is not polled: a watcher
	// goroutine per run sends the run's generation to exited when Wait
	// returns (watch).
	exited   chan uint64
	waitGen  uint64
	stopWait context.CancelFunc

	// resumeDelete: found on disk with its deletion begun (deletingFileName);
	// run deletes it instead of adopting it.
	resumeDelete bool
}

// run is the instance goroutine: it starts (fresh) or adopts the instance,
// then serves its commands until the instance is deleted or ctx ends.
// Ending ctx leaves the instance as it is.
func (in *instance) run(ctx context.Context, fresh bool) {
	defer in.l.wg.Done()
	in.lastCPU = -1
	in.exited = make(chan uint64, 1)
	defer in.unwatch()
	switch {
	case fresh:
		if !in.start(ctx) {
			return
		}
	case in.resumeDelete:
		glog.Infof("launcher: instance %s: finishing the deletion an earlier launcher began", in.id)
		if in.do(ctx, instCmd{op: opDelete}) {
			return
		}
		in.adopt(ctx)
	default:
		in.adopt(ctx)
	}
	var pollC <-chan time.Time
	if _, ok := in.drv.(driver.Waiter); !ok {
		poll := time.NewTicker(in.l.cfg.PollInterval)
		defer poll.Stop()
		pollC = poll.C
	}
	res := time.NewTicker(in.l.cfg.ResourceInterval)
	defer res.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.box.signal():
			for _, c := range in.box.take() {
				if ctx.Err() != nil {
					return
				}
				if done := in.do(ctx, c); done {
					return
				}
			}
		case g := <-in.exited:
			if !in.running || g != in.waitGen {
				continue // a run that already ended
			}
			ok, err := in.drv.Running(ctx, in.st.Handle)
			if err != nil || ok {
				if err != nil {
					glog.Warningf("launcher: instance %s: checking it runs: %v", in.id, err)
				}
				in.watch(ctx) // Wait returned early: wait again
				continue
			}
			glog.Infof("launcher: instance %s has stopped", in.id)
			in.setRunning(ctx, false, false)
		case <-pollC:
			if !in.running {
				continue
			}
			ok, err := in.drv.Running(ctx, in.st.Handle)
			if err != nil {
				glog.Warningf("launcher: instance %s: checking it runs: %v", in.id, err)
				continue
			}
			if !ok {
				glog.Infof("launcher: instance %s has stopped", in.id)
				in.setRunning(ctx, false, false)
			}
		case <-res.C:
			if in.running {
				in.sample(ctx)
			}
		}
	}
}

// emit reports to the main loop, giving up if the launcher is stopping.
func (in *instance) emit(ctx context.Context, ev instEvent) {
	ev.id = in.id
	select {
	case in.l.events <- ev:
	case <-ctx.Done():
	}
}

func (in *instance) setRunning(ctx context.Context, running, startedNow bool) {
	in.running = running
	in.watch(ctx)
	in.lastCPU = -1
	state := payloads.InstanceExited
	if running {
		state = payloads.InstanceActive
	}
	in.emit(ctx, instEvent{kind: evState, state: state, startedNow: startedNow})
	in.sample(ctx)
}

// watch ends the watcher of the previous run, if any, and, with a Waiter
// driver and a running instance, starts one for the current run.
func (in *instance) watch(ctx context.Context) {
	in.unwatch()
	w, ok := in.drv.(driver.Waiter)
	if !ok || !in.running {
		return
	}
	in.waitGen++
	gen, h := in.waitGen, in.st.Handle
	wctx, cancel := context.WithCancel(ctx)
	in.stopWait = cancel
	in.l.wg.Add(1)
	go func() {
		defer in.l.wg.Done()
		if err := w.Wait(wctx, h); err != nil {
			if wctx.Err() != nil {
				return
			}
			glog.Warningf("launcher: instance %s: waiting for it to stop: %v", in.id, err)
		}
		select {
		case in.exited <- gen:
		case <-wctx.Done():
		}
	}()
}

func (in *instance) unwatch() {
	if in.stopWait != nil {
		in.stopWait()
		in.stopWait = nil
	}
}

// sample takes a resource sample and reports it.
func (in *instance) sample(ctx context.Context) {
	s, err := in.drv.Stats(ctx, in.st.Handle)
	smp := sample{memMB: s.MemMB, diskMB: s.DiskMB, cpu: -1}
	if err != nil && !errors.Is(err, driver.ErrNotRunning) {
		glog.V(2).Infof("launcher: instance %s: stats: %v", in.id, err)
	}
	now := time.Now()
	if in.running && s.CPUTime >= 0 {
		if in.lastCPU >= 0 {
			wall := now.Sub(in.lastCPUAt)
			if wall > 0 {
				pct := int(100 * int64(s.CPUTime-in.lastCPU) / int64(wall))
				if v, _ := in.req.cmd.VCPUs(); v > 1 {
					pct /= v
				}
				smp.cpu = min(max(pct, 0), 100)
			}
		}
		in.lastCPU, in.lastCPUAt = s.CPUTime, now
	}
	in.emit(ctx, instEvent{kind: evSample, sample: smp})
}

// start runs the START procedure; false means the instance is gone.
func (in *instance) start(ctx context.Context) bool {
	gone := func(r payloads.StartFailureReason, err error) bool {
		glog.Errorf("launcher: START %s failed (%s): %v", in.id, r, err)
		in.emit(ctx, instEvent{kind: evRemoved, startFailure: r})
		return false
	}
	if err := os.Mkdir(in.dir, 0o755); err != nil {
		return gone(payloads.StartInstanceExists, err)
	}
	// Not durable yet: see create. The durable commit follows the launch.
	sf, err := in.st.create(in.dir)
	if err != nil {
		in.removeDir()
		return gone(payloads.StartImageFailure, err)
	}
	if r, err := in.attachVnic(ctx); err != nil {
		sf.close()
		in.removeDir()
		return gone(r, err)
	}
	h, err := in.drv.Start(ctx, in.spec())
	if err != nil {
		r := driver.StartFailureReason(err)
		if r != payloads.StartLaunchFailure {
			// Nothing of the instance may stay, its VNIC included
			// (the 2016 launcher leaked it here).
			sf.close()
			in.l.destroyVnic(ctx, in.req, in.st.Kind)
			in.removeDir()
			return gone(r, err)
		}
		// Keep the instance, exited, for a later RESTART (§6.1): durably,
		// as the scheduler is told it exists.
		glog.Errorf("launcher: START %s failed (%s): %v", in.id, r, err)
		if err := sf.commit(in.st); err != nil {
			glog.Errorf("launcher: instance %s: saving its state: %v", in.id, err)
		}
		in.running = false
		in.emit(ctx, instEvent{kind: evState, state: payloads.InstanceExited, startFailure: r})
		in.sample(ctx)
		return true
	}
	in.st.Handle = h
	// The START's one durable save, before the instance is reported active.
	if err := sf.commit(in.st); err != nil {
		glog.Errorf("launcher: instance %s: saving its handle: %v (it will not be re-adopted)", in.id, err)
	}
	glog.Infof("launcher: instance %s running", in.id)
	in.setRunning(ctx, true, true)
	return true
}

// adopt takes over an instance found on disk.
func (in *instance) adopt(ctx context.Context) {
	running := false
	if in.st.Handle.Driver != "" {
		if _, err := in.attachVnic(ctx); err != nil {
			glog.Errorf("launcher: adopting instance %s: its VNIC: %v", in.id, err)
		}
		var err error
		running, err = in.drv.Adopt(ctx, in.st.Handle, in.spec())
		if err != nil {
			glog.Warningf("launcher: adopting instance %s: %v", in.id, err)
		}
	}
	glog.Infof("launcher: adopted instance %s, running %v", in.id, running)
	in.setRunning(ctx, running, false)
}

// do serves one command; true means the instance is gone.
func (in *instance) do(ctx context.Context, c instCmd) bool {
	switch c.op {
	case opStop:
		if !in.running {
			in.l.sendFailure(ssntp.STOP, in.id, string(payloads.StopAlreadyStopped))
			return false
		}
		if err := in.drv.Stop(ctx, in.st.Handle); err != nil && !errors.Is(err, driver.ErrNotRunning) {
			glog.Errorf("launcher: stopping instance %s: %v", in.id, err)
			return false
		}
		glog.Infof("launcher: instance %s stopped", in.id)
		in.setRunning(ctx, false, false)
	case opRestart:
		if in.running {
			in.l.sendFailure(ssntp.RESTART, in.id, string(payloads.RestartAlreadyRunning))
			return false
		}
		if _, err := in.attachVnic(ctx); err != nil {
			glog.Errorf("launcher: RESTART %s failed (network_failure): %v", in.id, err)
			in.l.sendFailure(ssntp.RESTART, in.id, string(payloads.RestartNetworkFailure))
			return false
		}
		h, err := in.drv.Start(ctx, in.spec())
		if err != nil {
			r := payloads.RestartLaunchFailure
			if errors.Is(err, driver.ErrBadSpec) || errors.Is(err, driver.ErrImage) {
				r = payloads.RestartInstanceCorrupt
			}
			glog.Errorf("launcher: RESTART %s failed (%s): %v", in.id, r, err)
			in.l.sendFailure(ssntp.RESTART, in.id, string(r))
			return false
		}
		in.st.Handle = h
		if err := in.st.save(in.dir); err != nil {
			glog.Errorf("launcher: instance %s: saving its handle: %v", in.id, err)
		}
		glog.Infof("launcher: instance %s restarted", in.id)
		in.setRunning(ctx, true, false)
	case opDelete:
		if err := markDeleting(in.dir); err != nil {
			glog.Errorf("launcher: instance %s: marking its deletion: %v", in.id, err)
		}
		if in.st.Handle.Driver != "" {
			if err := in.drv.Delete(ctx, in.st.Handle); err != nil {
				// Removing the record of a workload that still runs (a
				// docker engine that is down, a stop that failed) would
				// leave it running with nobody tracking it. It is kept,
				// deletion mark and all: the controller's next DELETE, or
				// the next launcher start, tries again.
				if alive, rerr := in.drv.Running(ctx, in.st.Handle); alive || rerr != nil {
					glog.Errorf("launcher: deleting instance %s failed and it may still run, so it is kept for the next DELETE: %v", in.id, err)
					in.emit(ctx, instEvent{kind: evDeleteFailed})
					return false
				}
				glog.Errorf("launcher: deleting instance %s: %v (it no longer runs: removed)", in.id, err)
			}
		}
		in.l.destroyVnic(ctx, in.req, in.st.Kind)
		in.removeDir()
		in.emit(ctx, instEvent{kind: evDeleted})
		return true
	}
	return false
}

// attachVnic (re)creates the instance's VNIC if its START has tenant
// networking: the existing one after a restart, or a new one (with
// TenantAdded if its subnet's tunnel is new on the node).
func (in *instance) attachVnic(ctx context.Context) (payloads.StartFailureReason, error) {
	v, vc, r, err := in.l.createVnic(ctx, in.req, in.st.Kind)
	if err != nil {
		return r, err
	}
	in.vnic = v
	if vc != nil {
		in.vnicIP = net.IPNet{IP: vc.VnicIP, Mask: vc.Subnet.Mask}
	}
	return "", nil
}

// spec is the driver spec of the instance, with its VNIC.
func (in *instance) spec() driver.Spec {
	s := in.req.spec(in.dir, in.l.cfg.Network)
	if in.vnic != nil {
		s.Vnic, s.VnicPeer, s.VnicGateway = in.vnic.Name, in.vnic.PeerName, in.vnic.Gateway
		s.VnicNetns, s.VnicAddr = in.l.cfg.NetNS, in.vnicIP
		s.VnicTapDevice = in.vnic.TapDevice
	}
	return s
}

func (in *instance) removeDir() {
	if err := os.RemoveAll(in.dir); err != nil {
		glog.Errorf("launcher: removing %s: %v", in.dir, err)
	}
}

func parseIPv4(s string) net.IP {
	ip := net.ParseIP(trimID(s))
	if ip == nil {
		return nil
	}
	return ip.To4()
}
