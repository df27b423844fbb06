// Package sim is ciao-launcher's simulation backend, for scale tests and
// for testing the launcher itself: every START succeeds (unless a knob says
// otherwise) and yields a fake running instance with plausible statistics
// (a tenth of its memory and disk reservations, a tenth of a CPU). Nothing
// runs on the host. It is chosen only by the -simulation flag, never as a
// fallback for a missing backend.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

// Driver is the simulation backend.
//
// mu guards running and knobs.
type Driver struct {
	mu      sync.Mutex
	running map[string]run // instance id → its current run, while running
	knobs   Knobs
}

// run is one run of a simulated instance: its (re)start time, and a
// channel closed when it stops (Wait).
type run struct {
	started time.Time
	done    chan struct{}
}

func newRun() run { return run{started: time.Now(), done: make(chan struct{})} }

// end stops the instance's run, if any; mu is held.
func (d *Driver) end(id string) bool {
	r, ok := d.running[id]
	if ok {
		close(r.done)
		delete(d.running, id)
	}
	return ok
}

// Knobs make the simulator misbehave on purpose.
type Knobs struct {
	// StartErr, if set, is returned by every Start (wrap driver.ErrLaunch,
	// ErrImage or ErrBadSpec to choose the failure reason).
	StartErr error
	// AdoptStopped makes Adopt report instances as not running, as after a
	// host reboot.
	AdoptStopped bool
}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Waiter = (*Driver)(nil)
)

// New returns a simulator with no instances.
func New() *Driver {
	return &Driver{running: make(map[string]run)}
}

// Set replaces the knobs.
func (d *Driver) Set(k Knobs) {
	d.mu.Lock()
	d.knobs = k
	d.mu.Unlock()
}

// Kill makes an instance stop by itself, as a crashing guest would.
func (d *Driver) Kill(id string) {
	d.mu.Lock()
	d.end(id)
	d.mu.Unlock()
}

type simData struct {
	VCPUs  int `json:"vcpus"`
	MemMB  int `json:"mem_mb"`
	DiskMB int `json:"disk_mb"`
}

// Start records a running instance.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Handle, error) {
	if err := ctx.Err(); err != nil {
		return driver.Handle{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.knobs.StartErr != nil {
		return driver.Handle{}, d.knobs.StartErr
	}
	d.end(spec.InstanceUUID)
	d.running[spec.InstanceUUID] = newRun()
	data, _ := json.Marshal(simData{VCPUs: spec.VCPUs, MemMB: spec.MemMB, DiskMB: spec.DiskMB})
	return driver.Handle{Driver: driver.KindSim, ID: spec.InstanceUUID, Data: data}, nil
}

// Stop marks the instance stopped.
func (d *Driver) Stop(_ context.Context, h driver.Handle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.end(h.ID) {
		return driver.ErrNotRunning
	}
	return nil
}

// Delete forgets the instance.
func (d *Driver) Delete(_ context.Context, h driver.Handle) error {
	d.Kill(h.ID)
	return nil
}

// Running reports whether the instance is marked running.
func (d *Driver) Running(_ context.Context, h driver.Handle) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[h.ID]
	return ok, nil
}

// Adopt takes a simulated instance back after a launcher restart: like the
// 2016 simulator, it is running again unless AdoptStopped is set.
func (d *Driver) Adopt(_ context.Context, h driver.Handle, _ driver.Spec) (bool, error) {
	if h.Driver != driver.KindSim {
		return false, fmt.Errorf("sim: cannot adopt a %q handle", h.Driver)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.knobs.AdoptStopped {
		d.end(h.ID)
		return false, nil
	}
	if _, ok := d.running[h.ID]; !ok {
		d.running[h.ID] = newRun()
	}
	return true, nil
}

// Stats reports a tenth of the reservations and a tenth of a CPU.
func (d *Driver) Stats(_ context.Context, h driver.Handle) (driver.Stats, error) {
	var sd simData
	_ = json.Unmarshal(h.Data, &sd)
	s := driver.Stats{MemMB: -1, DiskMB: sd.DiskMB / 10, CPUTime: -1}
	d.mu.Lock()
	r, ok := d.running[h.ID]
	d.mu.Unlock()
	if !ok {
		return s, driver.ErrNotRunning
	}
	s.MemMB = sd.MemMB / 10
	s.CPUTime = time.Since(r.started) / 10
	return s, nil
}

// Wait returns when the instance's current run ends (Stop, Delete, Kill,
// a new Start) or ctx ends; at once if it is not running. The launcher
// then needs no polling of simulated instances.
func (d *Driver) Wait(ctx context.Context, h driver.Handle) error {
	d.mu.Lock()
	r, ok := d.running[h.ID]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
