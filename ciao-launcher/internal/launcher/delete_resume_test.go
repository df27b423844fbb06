package launcher

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/sim"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestDeleteResumedAfterRestart: a launcher killed in the middle of a
// DELETE leaves the instance directory with its deletion mark and the
// process still running (the state here is built by stopping a launcher
// and writing the mark with markDeleting, which is what opDelete does
// first). The next launcher does not adopt it: it kills the process,
// removes the directory, sends InstanceDeleted and never reports the
// instance active. A second instance without the mark is adopted as
// before.
func TestDeleteResumedAfterRestart(t *testing.T) {
	const kept = "5ad7f5a5-1e4b-4f63-9e58-5b2a0f0c9d02"
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)
	srv.NextReady(t)
	for _, id := range []string{procInstance, kept} {
		srv.SendCommand(t, l.id, ssntp.START, startPayload(t, id, processUserData("/bin/sleep", "300")))
		waitStats(t, srv, id+" active", stateIs(id, payloads.InstanceActive))
	}
	h := handleOf(t, cfg.StateDir, procInstance)
	l.stop(t)
	srv.NextDisconnect(t)
	if !alive(h.PID) {
		t.Fatalf("pid %d did not outlive the launcher", h.PID)
	}
	dir := filepath.Join(cfg.StateDir, procInstance)
	if err := markDeleting(dir); err != nil {
		t.Fatal(err)
	}

	startLauncher(t, srv, cfg)
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != procInstance {
		t.Fatalf("InstanceDeleted %+v, want %s", ev, procInstance)
	}
	waitFor(t, "process gone", func() bool { return !alive(h.PID) })
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("instance directory left behind: %v", err)
	}
	waitStats(t, srv, "the other instance adopted, the deleted one absent", func(s payloads.Stat) bool {
		if i, ok := instanceIn(s, procInstance); ok && i.State == payloads.InstanceActive {
			t.Fatalf("instance %s reported active after its deletion resumed", procInstance)
		}
		return absent(procInstance)(s) && stateIs(kept, payloads.InstanceActive)(s)
	})
}

// blockedDelete is the simulator with a Delete that waits for release.
type blockedDelete struct {
	*sim.Driver
	entered chan struct{}
	release chan struct{}
}

func (d *blockedDelete) Delete(ctx context.Context, h driver.Handle) error {
	close(d.entered)
	<-d.release
	return d.Driver.Delete(ctx, h)
}

// TestDeleteDuringDeletion: a DELETE that arrives while the instance's
// deletion is under way (a DELETE the controller re-sent) gets no answer
// of its own: the one InstanceDeleted answers both, and no DeleteFailure
// no_instance says the instance is gone before it is. STOP meanwhile is
// still refused with no_instance; a DELETE after the deletion is too.
func TestDeleteDuringDeletion(t *testing.T) {
	d := &blockedDelete{Driver: sim.New(), entered: make(chan struct{}), release: make(chan struct{})}
	srv, l, _, _ := simLauncher(t, func(c *Config) { c.Drivers = driver.Registry{driver.KindSim: d} })
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	select {
	case <-d.entered:
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("the driver's Delete was not called")
	}
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(simInstance, l.id.String()))
	if f := srv.NextStopFailure(t); f.Reason != payloads.StopNoInstance {
		t.Fatalf("STOP during the deletion: %+v", f)
	}
	deleteFailures := func() int {
		n := 0
		for _, r := range srv.Received() {
			if r.Kind == testutil.RecordFrame && r.Frame.Type == ssntp.ERROR && ssntp.Error(r.Frame.Operand) == ssntp.DeleteFailure {
				n++
			}
		}
		return n
	}
	// The STOP was handled after the second DELETE, on the same loop.
	if n := deleteFailures(); n != 0 {
		t.Fatalf("%d DeleteFailures for a DELETE during the deletion, want none", n)
	}
	close(d.release)
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != simInstance {
		t.Fatalf("InstanceDeleted %+v", ev)
	}
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	if f := srv.NextDeleteFailure(t); f.Reason != payloads.DeleteNoInstance {
		t.Fatalf("DELETE after the deletion: %+v", f)
	}
	if n := deleteFailures(); n != 1 {
		t.Errorf("%d DeleteFailures in all, want 1 (the DELETE after the deletion)", n)
	}
}
