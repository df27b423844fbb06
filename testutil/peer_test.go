package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// fatalTB records the first Fatalf and ends the goroutine as the real one
// does, so failure paths can be tested without failing the test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// fatal runs fn as a test body and returns its Fatalf message, "" if none.
func fatal(t *testing.T, fn func(tb testing.TB)) string {
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ftb)
	}()
	<-done
	ftb.mu.Lock()
	defer ftb.mu.Unlock()
	return ftb.msg
}

func frameRecord(t ssntp.Type, op uint8, payload string) Record {
	return Record{Kind: RecordFrame, Frame: &ssntp.Frame{Type: t, Operand: op, Payload: []byte(payload)}}
}

func TestRecorderNextTakesOldestMatchInAnyOrder(t *testing.T) {
	r := newRecorder("test recorder")
	r.add(frameRecord(ssntp.STATUS, uint8(ssntp.READY), "r1"))
	r.add(frameRecord(ssntp.COMMAND, uint8(ssntp.STATS), "s1"))
	r.add(frameRecord(ssntp.STATUS, uint8(ssntp.READY), "r2"))
	r.add(Record{Kind: RecordConnect})

	if got := string(r.NextCommand(t, ssntp.STATS).Payload); got != "s1" {
		t.Errorf("STATS: %q", got)
	}
	if got := string(r.NextStatus(t, ssntp.READY).Payload); got != "r1" {
		t.Errorf("first READY: %q", got)
	}
	if got := string(r.Next(t, ssntp.STATUS, uint8(ssntp.READY)).Payload); got != "r2" {
		t.Errorf("second READY: %q", got)
	}
	if r.NextConnect(t).Kind != RecordConnect {
		t.Error("connect")
	}
	// Status 3 is not Command 3: types are part of the match.
	r.Nothing(t, ssntp.STATUS, uint8(ssntp.OFFLINE), 0)
	if n := len(r.Received()); n != 4 {
		t.Errorf("Received keeps everything, taken or not: %d records", n)
	}
}

func TestRecorderNextWaitsForLateRecords(t *testing.T) {
	r := newRecorder("test recorder")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.add(frameRecord(ssntp.EVENT, uint8(ssntp.InstanceDeleted), fmt.Sprint(i)))
		}()
	}
	seen := map[string]bool{}
	for range 20 {
		seen[string(r.NextEvent(t, ssntp.InstanceDeleted).Payload)] = true
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Errorf("took %d distinct records, want 20", len(seen))
	}
	go r.add(Record{Kind: RecordDisconnect, Peer: uuid.MustParse(AgentUUID), Role: ssntp.AGENT})
	if rec := r.NextDisconnect(t); rec.Peer.String() != AgentUUID || rec.Role != ssntp.AGENT {
		t.Errorf("disconnect record %v", rec)
	}
}

func TestRecorderNextFailureListsArrivals(t *testing.T) {
	r := newRecorder("FakeThing 1234")
	r.add(frameRecord(ssntp.COMMAND, uint8(ssntp.STATS), "s"))
	r.add(frameRecord(ssntp.ERROR, uint8(ssntp.StartFailure), "e"))
	r.NextCommand(t, ssntp.STATS)
	msg := fatal(t, func(tb testing.TB) {
		r.wait(tb, frameMatch(ssntp.EVENT, uint8(ssntp.NodeConnected)), frameName(ssntp.EVENT, uint8(ssntp.NodeConnected)), 20*time.Millisecond)
	})
	for _, want := range []string{
		"FakeThing 1234",
		`no EVENT Node Connected (6)`,
		"* COMMAND STATISTICS (3)",
		"  ERROR Could not start instance (1)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
	if msg := fatal(t, func(tb testing.TB) {
		newRecorder("empty").wait(tb, kindMatch(RecordConnect), "connect", time.Millisecond)
	}); !strings.Contains(msg, "nothing arrived") {
		t.Errorf("empty recorder: %s", msg)
	}
}

func TestRecorderSummaryIsBounded(t *testing.T) {
	r := newRecorder("busy")
	for range 3 * maxListed {
		r.add(frameRecord(ssntp.COMMAND, uint8(ssntp.STATS), ""))
	}
	s := r.summary()
	if n := strings.Count(s, "\n"); n != maxListed+1 {
		t.Errorf("%d lines, want %d:\n%s", n, maxListed+1, s)
	}
	if !strings.Contains(s, "100 older") {
		t.Errorf("no count of the older records:\n%s", s)
	}
}

func TestRecorderNothing(t *testing.T) {
	r := newRecorder("quiet")
	r.add(frameRecord(ssntp.STATUS, uint8(ssntp.READY), ""))
	r.Nothing(t, ssntp.STATUS, uint8(ssntp.FULL), 10*time.Millisecond)

	// A match already waiting fails at once; one arriving later too.
	if msg := fatal(t, func(tb testing.TB) { r.Nothing(tb, ssntp.STATUS, uint8(ssntp.READY), time.Hour) }); !strings.Contains(msg, "expected none") {
		t.Errorf("waiting READY not reported: %q", msg)
	}
	msg := fatal(t, func(tb testing.TB) {
		go r.add(frameRecord(ssntp.STATUS, uint8(ssntp.FULL), ""))
		r.Nothing(tb, ssntp.STATUS, uint8(ssntp.FULL), time.Hour)
	})
	if !strings.Contains(msg, "STATUS FULL (2)") {
		t.Errorf("late FULL not reported: %q", msg)
	}
}

func TestRecordString(t *testing.T) {
	id := uuid.MustParse(AgentUUID)
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{Kind: RecordConnect, Peer: id, Role: ssntp.AGENT | ssntp.NETAGENT}, `connect (client ` + AgentUUID + ` "CNAgent-NetworkingAgent-")`},
		{Record{Kind: RecordDisconnect}, "disconnect"},
		{frameRecord(ssntp.EVENT, 42, "xy"), "EVENT 42 origin 00000000-0000-0000-0000-000000000000, 2 bytes"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// testUUID is a recognisable UUID, 00000000-0000-0000-0000-0000000000nn.
func testUUID(n byte) uuid.UUID {
	var id uuid.UUID
	id[15] = n
	return id
}
