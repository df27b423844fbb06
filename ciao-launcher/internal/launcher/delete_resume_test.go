package launcher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
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
