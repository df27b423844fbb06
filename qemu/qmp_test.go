package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testLogger routes package logging to t.Log.
type testLogger struct{ t testing.TB }

func (l testLogger) Infof(f string, a ...any)    { l.t.Helper(); l.t.Logf("INFO "+f, a...) }
func (l testLogger) Warningf(f string, a ...any) { l.t.Helper(); l.t.Logf("WARN "+f, a...) }
func (l testLogger) Errorf(f string, a ...any)   { l.t.Helper(); l.t.Logf("ERROR "+f, a...) }

// checkLeaks fails t if goroutines started during the test outlive it.
// It is registered first so that it runs after every other cleanup (the
// fake servers are stopped by cleanups); goleak retries for a while, which
// covers goroutines that are finishing.
func checkLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// shortSocketPath returns a unix socket path under a fresh directory that
// stays below the 108-byte sun_path limit, which t.TempDir can exceed.
func shortSocketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// fakeQMP is a scripted QMP server: it sends a greeting (unless
// noGreeting), answers qmp_capabilities, and answers other commands from
// replies (a missing entry means "never answer"). After answering a
// command it sends the events listed in after, and closes the connection
// if the command is in closeAfter.
type fakeQMP struct {
	ln         net.Listener
	noGreeting bool
	replies    map[string]string
	after      map[string][]string
	closeAfter map[string]bool
	// afterCapabilities, if set, runs once the qmp_capabilities reply
	// has been written.
	afterCapabilities func()
	wg                sync.WaitGroup
}

func newFakeQMP(t *testing.T, f *fakeQMP) string {
	t.Helper()
	path := shortSocketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return path
}

func (f *fakeQMP) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.handle(c)
	}
}

func (f *fakeQMP) handle(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	if !f.noGreeting {
		fmt.Fprintln(c, `{"QMP": {"version": {"qemu": {"micro": 3, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`)
	}
	// QMP clients send a JSON stream, not necessarily one command per line.
	dec := json.NewDecoder(c)
	for {
		var cmd struct {
			Execute string `json:"execute"`
		}
		if err := dec.Decode(&cmd); err != nil {
			return
		}
		if cmd.Execute == "qmp_capabilities" {
			fmt.Fprintln(c, `{"return": {}}`)
			if f.afterCapabilities != nil {
				f.afterCapabilities()
			}
			continue
		}
		reply, ok := f.replies[cmd.Execute]
		if !ok {
			continue
		}
		fmt.Fprintln(c, reply)
		for _, ev := range f.after[cmd.Execute] {
			fmt.Fprintf(c, `{"event": %q, "timestamp": {"seconds": 1700000000, "microseconds": 250000}}`+"\n", ev)
		}
		if f.closeAfter[cmd.Execute] {
			return
		}
	}
}

func TestQMPFake(t *testing.T) {
	checkLeaks(t)
	f := &fakeQMP{
		replies: map[string]string{
			"query-status":     `{"return": {"status": "paused", "singlestep": false, "running": false}}`,
			"cont":             `{"return": {}}`,
			"stop":             `{"error": {"class": "GenericError", "desc": "nope"}}`,
			"system_powerdown": `{"return": {}}`,
			"quit":             `{"return": {}}`,
		},
		after:      map[string][]string{"system_powerdown": {"POWERDOWN"}, "quit": {"SHUTDOWN"}},
		closeAfter: map[string]bool{"quit": true},
	}
	path := newFakeQMP(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	q, err := Connect(ctx, path, WithLogger(testLogger{t}))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer q.Close()
	if q.Version != "7.2.3" {
		t.Errorf("Version = %q", q.Version)
	}
	st, err := q.Status(ctx)
	if err != nil || st.Status != "paused" || st.Running {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := q.Cont(ctx); err != nil {
		t.Fatalf("Cont: %v", err)
	}
	if err := q.Stop(ctx); err == nil || err.Error() != "qemu: qmp stop: nope" {
		t.Fatalf("Stop error = %v", err)
	}

	// A command QEMU never answers is bounded by ctx, and the session
	// stays usable afterwards.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = q.execute(short, "never-answered", nil)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered command: %v", err)
	}
	// The fake never answers, so the reply the next command would wait for
	// is missing; issue the next command on a fresh session instead.
	q.Close()
	if _, err := q.Status(ctx); !errors.Is(err, ErrQMPDisconnected) {
		t.Fatalf("Status after Close: %v", err)
	}
	if _, ok := <-q.Events(); ok {
		t.Fatal("Events not closed after Close")
	}

	q, err = Connect(ctx, path, WithLogger(testLogger{t}))
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	defer q.Close()
	if err := q.SystemPowerdown(ctx); err != nil {
		t.Fatalf("SystemPowerdown: %v", err)
	}
	ev := waitEvent(ctx, t, q, "POWERDOWN")
	if want := time.Unix(1700000000, 250000000); !ev.Time.Equal(want) {
		t.Errorf("event time = %v, want %v", ev.Time, want)
	}
	if err := q.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	waitEvent(ctx, t, q, "SHUTDOWN")
	select {
	case <-q.Done():
	case <-ctx.Done():
		t.Fatal("session did not end after the server closed the socket")
	}
	if err := q.Quit(ctx); !errors.Is(err, ErrQMPDisconnected) {
		t.Fatalf("Quit after disconnect: %v", err)
	}
}

func TestQMPConnectTimeout(t *testing.T) {
	checkLeaks(t)
	path := newFakeQMP(t, &fakeQMP{noGreeting: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Connect(ctx, path)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect without greeting: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Connect took %v", d)
	}
}

// TestQMPConnectAbortRace gives up on Connect just as the handshake
// completes. The abort must close the connection without touching state
// the handshake is still writing: under -race this once reported
// go-qemu's Disconnect (called to abort) reading SocketMonitor.stream
// while its Connect, still running in the dial goroutine, wrote it.
// Each round must end in a usable session or ctx's error, with nothing
// leaked.
func TestQMPConnectAbortRace(t *testing.T) {
	checkLeaks(t)
	var cancelMu sync.Mutex
	var cancelCur context.CancelFunc
	f := &fakeQMP{
		replies: map[string]string{"query-status": `{"return": {"status": "running", "running": true}}`},
		afterCapabilities: func() {
			cancelMu.Lock()
			defer cancelMu.Unlock()
			cancelCur()
		},
	}
	path := newFakeQMP(t, f)
	var won, aborted int
	for i := 0; i < 40; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cancelMu.Lock()
		cancelCur = cancel
		cancelMu.Unlock()
		q, err := Connect(ctx, path, WithLogger(testLogger{t}))
		if err != nil {
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: Connect: %v, want context.Canceled", i, err)
			}
			aborted++
			continue
		}
		won++
		st, err := q.Status(context.Background())
		if err != nil || !st.Running {
			t.Fatalf("round %d: Status after a won race = %+v, %v", i, st, err)
		}
		q.Close()
		cancel()
	}
	t.Logf("%d sessions, %d aborted handshakes", won, aborted)
}

func TestQMPConnectMissingSocket(t *testing.T) {
	_, err := Connect(context.Background(), filepath.Join(t.TempDir(), "absent"))
	if err == nil {
		t.Fatal("Connect to a missing socket succeeded")
	}
}

func TestQMPEventOverflowDoesNotBlockCommands(t *testing.T) {
	checkLeaks(t)
	f := &fakeQMP{
		replies: map[string]string{"system_powerdown": `{"return": {}}`, "query-status": `{"return": {"status": "running", "running": true}}`},
		after:   map[string][]string{"system_powerdown": {"A", "B", "C", "D"}},
	}
	path := newFakeQMP(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Connect(ctx, path, WithEventBuffer(1), WithLogger(testLogger{t}))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Nobody reads Events; commands must still get their replies.
	if st, err := q.Status(ctx); err != nil || !st.Running {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if ev := <-q.Events(); ev.Name != "A" {
		t.Fatalf("first event %q, want A (later ones dropped)", ev.Name)
	}
}

// waitEvent reads Events until name arrives; other events are logged.
func waitEvent(ctx context.Context, t *testing.T, q *QMP, name string) Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-q.Events():
			if !ok {
				t.Fatalf("events closed before %s", name)
			}
			t.Logf("event %s %v", ev.Name, ev.Data)
			if ev.Name == name {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", name, ctx.Err())
		}
	}
}

// TestQMPConcurrentCommands: commands from several goroutines on one
// session each get their own reply (cmdMu keeps one in flight), and
// Close while commands wait fails them with ErrQMPDisconnected.
func TestQMPConcurrentCommands(t *testing.T) {
	checkLeaks(t)
	f := &fakeQMP{replies: map[string]string{
		"query-status": `{"return": {"status": "running", "running": true}}`,
		"stop":         `{"error": {"class": "GenericError", "desc": "nope"}}`,
	}}
	path := newFakeQMP(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Connect(ctx, path, WithLogger(testLogger{t}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if st, err := q.Status(ctx); err != nil || !st.Running {
				errs <- fmt.Errorf("Status = %+v, %v", st, err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := q.Stop(ctx); err == nil || err.Error() != "qemu: qmp stop: nope" {
				errs <- fmt.Errorf("Stop = %v", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A command QEMU never answers holds the session; Close releases it.
	done := make(chan error, 1)
	go func() { _, err := q.execute(context.Background(), "never-answered", nil); done <- err }()
	go func() { done <- q.Cont(context.Background()) }()
	q.Close()
	for i := 0; i < 2; i++ {
		if err := <-done; !errors.Is(err, ErrQMPDisconnected) {
			t.Errorf("command pending at Close: %v", err)
		}
	}
}
