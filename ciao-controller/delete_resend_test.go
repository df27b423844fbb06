package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// deletesOf counts the DELETEs agent received for id.
func deletesOf(a *testutil.FakeAgent, id string) int {
	n := 0
	for _, r := range a.Received() {
		if r.Kind == testutil.RecordFrame && r.Frame.Type == ssntp.COMMAND && r.Frame.Command() == ssntp.DELETE &&
			strings.Contains(string(r.Frame.Payload), id) {
			n++
		}
	}
	return n
}

// checkDeletedOnResend checks that launcher a runs no instance and got
// two DELETEs for id: one lost and one re-sent (resent says how).
func checkDeletedOnResend(t *testing.T, a *testutil.FakeAgent, id, resent string) {
	t.Helper()
	if n := len(a.Instances()); n != 0 {
		t.Errorf("the launcher still runs %d instances", n)
	}
	if n := deletesOf(a, id); n != 2 {
		t.Errorf("the launcher got %d DELETEs for %s, want 2 (one lost, %s)", n, id, resent)
	}
}

// TestResendDroppedDelete: the real ciao-scheduler, the controller
// in-process with -resend-delete-after 300ms and a fake launcher that
// loses the first DELETE. The server is listed "deleting" from the
// DELETE on; the controller sends the DELETE again (event "Delete
// re-sent for"), the launcher deletes the instance and the server goes,
// without any further request.
func TestResendDroppedDelete(t *testing.T) {
	k := newLifeCluster(t, false, func(c *config) { c.ResendDelete = 300 * time.Millisecond },
		[]testutil.Option{testutil.WithDropDeletes(1)})
	code, ids, body := k.create(tenant, 1)
	if code != http.StatusAccepted || len(ids) != 1 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := ids[0]
	k.poll(t, id+" active", func() bool { return k.state(tenant, id) == "active" })
	if b, code := k.call(http.MethodDelete, "/"+tenant+"/servers/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("delete %s: %d %s", id, code, b)
	}
	// Until a re-sent DELETE reaches the launcher the server is listed
	// deleting (the launcher still reports it active).
	if st := k.state(tenant, id); st != "deleting" && !k.hasEvents("Delete re-sent for "+id) {
		t.Errorf("server %s is %q right after its DELETE, want deleting", id, st)
	}
	k.poll(t, id+" gone", func() bool { return k.state(tenant, id) == "" })
	if !k.hasEvents("Delete re-sent for "+id, "Deleted Instance "+id) {
		t.Errorf("events lack the re-send or the deletion of %s", id)
	}
	checkDeletedOnResend(t, k.compute[0], id, "one re-sent")
}

// TestDeleteSurvivesControllerKill: the controller (its own process,
// against the real ciao-scheduler and a fake launcher that loses the
// first DELETE) accepts a DELETE and is killed with SIGKILL before the
// launcher confirms. The first controller never re-sends (1h grace),
// so the server is listed deleting until the kill; the restarted one
// (300ms grace) re-sends the DELETE from the record on disk and the
// server goes without the user asking again.
func TestDeleteSurvivesControllerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler")
	}
	s := startScheduler(t)
	dir := s.dir
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(token+" "+tenant+" demo member\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := testutil.NewFakeAgent(t, s.port, ssntp.AGENT, testutil.WithAutoReady(1<<20), testutil.WithDropDeletes(1))
	sendStatsEvery(t, 20*time.Millisecond, a)
	apiPort := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/v2.1/" + tenant
	args := func(grace string) string {
		return strings.Join([]string{"-cacert", s.ca, "-cert", s.ctlCert, "-server", "127.0.0.1", "-port", strconv.Itoa(s.port),
			"-compute-host", "127.0.0.1", "-compute-port", strconv.Itoa(apiPort), "-database", filepath.Join(dir, "c.db"),
			"-tokens", tokens, "-resend-delete-after", grace}, " ")
	}
	first := startChild(t, dir, "controller1", args("1h"))
	waitAPI(t, base)
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	ids, err := create(hc, base, 1)
	if err != nil || len(ids) != 1 {
		t.Fatalf("create: %v %v", ids, err)
	}
	id := ids[0]
	status := func() string {
		st, err := listStates(hc, base)
		if err != nil {
			return "error: " + err.Error()
		}
		return st[id]
	}
	node := a.UUID().String()
	poll(t, id+" active on "+node, func() bool { return status() == "active@"+node })
	req, _ := http.NewRequest(http.MethodDelete, base+"/servers/"+id, nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d", resp.StatusCode)
	}
	poll(t, "a DELETE at the launcher", func() bool { return deletesOf(a, id) >= 1 })
	if st := status(); st != "deleting@"+node {
		t.Fatalf("server %s is %q after its (lost) DELETE, want deleting on %s", id, st, node)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	hc.CloseIdleConnections()
	startChild(t, dir, "controller2", args("300ms"))
	waitAPI(t, base)
	poll(t, id+" no longer listed after the restart", func() bool {
		st, err := listStates(hc, base)
		_, listed := st[id]
		return err == nil && !listed
	})
	checkDeletedOnResend(t, a, id, "one re-sent after the restart")
}

// TestDeleteWhileLauncherDown: the real ciao-scheduler, the controller
// in-process (-resend-delete-after 300ms) and the real ciao-launcher
// (simulation backend, its own process). The launcher is SIGKILLed while
// its instance runs; the server is then deleted (the scheduler drops the
// DELETE: the node is gone) and is listed deleting. The launcher restarts
// on the same state, adopts the instance and reports it again; the
// controller's re-sent DELETE reaches it, the launcher deletes it and
// confirms, and the server goes without the user asking again.
func TestDeleteWhileLauncherDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler and ciao-launcher")
	}
	k := startLifeCluster(t, false, func(c *config) { c.ResendDelete = 300 * time.Millisecond })
	dir, port := k.sched.dir, k.port
	launcher := filepath.Join(dir, "ciao-launcher")
	if out, err := exec.Command("go", "build", "-o", launcher, "../ciao-launcher").CombinedOutput(); err != nil {
		t.Fatalf("building ciao-launcher: %v\n%s", err, out)
	}
	d := filepath.Join(dir, "compute")
	args := []string{"-simulation", "-osprepare=false", "-cacert", k.sched.ca, "-cert", k.sched.cert(t, ssntp.AGENT),
		"-server", "127.0.0.1", "-port", strconv.Itoa(port), "-state-dir", filepath.Join(d, "instances"), "-uuid-dir", filepath.Join(d, "uuid"),
		"-lock-file", "", "-maintenance-file", filepath.Join(d, "maintenance"), "-cgroup-root", "", "-network=false",
		"-stats-interval", "100ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
		"-mem-low-water", "0", "-mem-high-water", "0", "-disk-low-water", "0", "-disk-high-water", "0", "-logtostderr"}
	first := testutil.StartCommand(t, dir, "launcher-1", launcher, args...)
	k.waitNodes(t, 1)
	code, ids, body := k.create(tenant, 1)
	if code != http.StatusAccepted || len(ids) != 1 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := ids[0]
	k.poll(t, id+" active", func() bool { return k.state(tenant, id) == "active" })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	k.poll(t, id+" missing (its node disconnected)", func() bool { return k.state(tenant, id) == "missing" })
	if b, code := k.call(http.MethodDelete, "/"+tenant+"/servers/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("delete %s: %d %s", id, code, b)
	}
	if st := k.state(tenant, id); st != "deleting" {
		t.Fatalf("server %s is %q with its launcher down, want deleting", id, st)
	}
	testutil.StartCommand(t, dir, "launcher-2", launcher, args...)
	k.poll(t, id+" gone", func() bool { return k.state(tenant, id) == "" })
	if !k.hasEvents("Delete re-sent for "+id, "Deleted Instance "+id) {
		t.Errorf("events lack the re-send or the deletion of %s", id)
	}
}
