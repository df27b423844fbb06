package launcher

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/sim"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// failingDelete is the simulator whose first fails Deletes fail and leave
// the instance running, as a docker engine that is down would.
type failingDelete struct {
	*sim.Driver
	fails atomic.Int32
	calls atomic.Int32
}

func (d *failingDelete) Delete(ctx context.Context, h driver.Handle) error {
	d.calls.Add(1)
	if d.fails.Add(-1) >= 0 {
		return errors.New("knob: the backend cannot delete now")
	}
	return d.Driver.Delete(ctx, h)
}

// TestDeleteFailedKeepsInstance: a DELETE whose driver Delete fails while
// the instance still runs keeps the instance (reported active, deletion
// mark on disk, no InstanceDeleted), so it is not left running untracked;
// the next DELETE (the controller re-sends unconfirmed ones) is taken and
// deletes it.
func TestDeleteFailedKeepsInstance(t *testing.T) {
	d := &failingDelete{Driver: sim.New()}
	d.fails.Store(1)
	srv, l, _, cfg := simLauncher(t, func(c *Config) { c.Drivers = driver.Registry{driver.KindSim: d} })
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	waitFor(t, "the failed Delete", func() bool { return d.calls.Load() == 1 })
	// STATS after the failure still list it as active: it is kept.
	waitStats(t, srv, "instance kept after the failed delete", stateIs(simInstance, payloads.InstanceActive))
	if !deletingMarked(filepath.Join(cfg.StateDir, simInstance)) {
		t.Error("deletion mark gone after a failed delete: a launcher restart would not retry it")
	}
	for _, r := range srv.Received() {
		if r.Kind == testutil.RecordFrame && r.Frame.Type == ssntp.EVENT && ssntp.Event(r.Frame.Operand) == ssntp.InstanceDeleted {
			t.Fatal("InstanceDeleted sent for an instance whose delete failed")
		}
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != simInstance {
		t.Fatalf("InstanceDeleted %+v", ev)
	}
	if n := d.calls.Load(); n != 2 {
		t.Errorf("driver Delete called %d times, want 2", n)
	}
	waitStats(t, srv, "instance gone", absent(simInstance))
}
