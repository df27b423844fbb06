package launcher

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// TestStateOfPreviousVersionLoads: a state file as the launcher wrote it
// before START saved durably once (two durable saves, the same JSON) is
// found with its START and handle.
func TestStateOfPreviousVersionLoads(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, simInstance)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := testutil.StartPayload(testutil.StartInstance(simInstance), testutil.StartMemMB(100))
	old := fmt.Sprintf(`{
  "version": 1,
  "kind": "process",
  "start": %q,
  "handle": {
    "driver": "process",
    "pid": 4242,
    "start_ticks": 123456
  }
}`, base64.StdEncoding.EncodeToString(start))
	if err := os.WriteFile(statePath(dir), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	found, bad, err := scanInstances(root)
	if err != nil || len(bad) != 0 || len(found) != 1 {
		t.Fatalf("scan: found %+v, bad %v, err %v", found, bad, err)
	}
	f := found[0]
	want := driver.Handle{Driver: "process", PID: 4242, StartTicks: 123456}
	if f.id != simInstance || f.state.Kind != driver.KindProcess || f.state.Handle.Driver != want.Driver ||
		f.state.Handle.PID != want.PID || f.state.Handle.StartTicks != want.StartTicks || string(f.state.Start) != string(start) {
		t.Errorf("loaded %+v", f.state)
	}
}

// TestStateSaves: a START's first record (create, before the launch) and
// its durable rewrite with the handle (commit), then a RESTART's atomic
// save, each leave a complete state file and no temporary one; create
// refuses an existing state file; a commit of a shorter record leaves no
// trace of the longer one; an empty state file (an intent a power loss
// cut) makes the directory unreadable, not an instance.
func TestStateSaves(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, simInstance)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := &instanceState{Kind: driver.KindSim, Start: testutil.StartPayload(testutil.StartInstance(simInstance))}
	sf, err := st.create(dir)
	if err != nil {
		t.Fatal(err)
	}
	// What a launcher killed during the launch leaves.
	got, err := loadState(dir)
	if err != nil || got.Handle.Driver != "" || got.Kind != driver.KindSim {
		t.Fatalf("after create: %+v, %v", got, err)
	}
	if _, err := st.create(dir); !errors.Is(err, os.ErrExist) {
		t.Errorf("second create: %v, want ErrExist", err)
	}
	st.Handle = driver.Handle{Driver: driver.KindSim, ID: "x", Data: []byte(`{"long":"` + strings.Repeat("x", 100) + `"}`)}
	if err := sf.commit(st); err != nil {
		t.Fatal(err)
	}
	got, err = loadState(dir)
	if err != nil || got.Handle.Driver != driver.KindSim || got.Handle.ID != "x" || string(got.Start) != string(st.Start) {
		t.Fatalf("after commit: %+v, %v", got, err)
	}
	// A shorter record rewritten in place (launch_failure keeps no handle).
	sf, err = (&instanceState{Kind: driver.KindSim, Start: st.Start}).create(filepath.Join(root, "other"))
	if err == nil || sf != nil {
		t.Fatalf("create without a directory: %v", err)
	}
	long := &instanceState{Kind: driver.KindSim, Start: st.Start, Handle: st.Handle}
	dir2 := filepath.Join(root, "0a1b2c3d-0000-4000-8000-000000000002")
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	if sf, err = long.create(dir2); err != nil {
		t.Fatal(err)
	}
	if err := sf.commit(&instanceState{Kind: driver.KindSim, Start: st.Start}); err != nil {
		t.Fatal(err)
	}
	if got, err := loadState(dir2); err != nil || got.Handle.Driver != "" {
		t.Fatalf("after a shorter commit: %+v, %v", got, err)
	}
	if err := os.RemoveAll(dir2); err != nil {
		t.Fatal(err)
	}

	st.Handle = driver.Handle{Driver: driver.KindSim, ID: "y"}
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err = loadState(dir)
	if err != nil || got.Handle.Driver != driver.KindSim || got.Handle.ID != "y" {
		t.Fatalf("after the save: %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("instance directory holds %v", ents)
	}
	if fi, err := os.Stat(statePath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, %v", fi, err)
	}

	if err := os.WriteFile(statePath(dir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	found, bad, err := scanInstances(root)
	if err != nil || len(found) != 0 || len(bad) != 1 {
		t.Errorf("empty state: found %v, bad %v, err %v", found, bad, err)
	}
}

// TestStartStatusCoalesced: a START succeeding within the coalescing
// window of the last status sends no READY of its own (its DELETE's status
// is the next one), but STARTs that fill the node send FULL at once.
func TestStartStatusCoalesced(t *testing.T) {
	srv, l, _, _ := simLauncher(t, func(c *Config) {
		c.StatsInterval = 1 << 62 // no periodic report
		c.StatusCoalesce = 1 << 62
		c.MaxInstances = 3
	})
	srv.NextReady(t) // on connection
	// The instance serves the DELETE once its START succeeded, and the
	// main loop sends the START's status, if any, before InstanceDeleted.
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(simInstance, l.id.String()))
	srv.NextEvent(t, ssntp.InstanceDeleted)
	n := 0
	for _, r := range srv.Received() {
		if r.Kind != testutil.RecordFrame {
			continue
		}
		if r.Frame.Type == ssntp.EVENT && ssntp.Event(r.Frame.Operand) == ssntp.InstanceDeleted {
			break
		}
		if r.Frame.Type == ssntp.STATUS {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d status frames before InstanceDeleted, want the connection's only", n)
	}
	srv.NextReady(t) // the DELETE's

	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("0a1b2c3d-0000-4000-8000-00000000000%d", i)
		srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(id)))
	}
	srv.NextStatus(t, ssntp.FULL)
}

// TestStartStatusSentAfterWindow: a START within the window of the last
// status still gets its READY, at the end of the window.
func TestStartStatusSentAfterWindow(t *testing.T) {
	srv, l, _, _ := simLauncher(t, func(c *Config) {
		c.StatsInterval = 1 << 62
		c.StatusCoalesce = 300 * time.Millisecond
	})
	srv.NextReady(t)
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	srv.NextReady(t)
}
