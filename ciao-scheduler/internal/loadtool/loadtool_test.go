package loadtool

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/scheduler"
	"github.com/ciao-project/ciao/ssntp/certs"
	"github.com/ciao-project/ciao/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

// TestRun drives an in-process scheduler with a small load and checks
// that every START is accounted for and every figure is printed.
func TestRun(t *testing.T) {
	cr, s := startScheduler(t)

	var out bytes.Buffer
	starts := 3000
	if testing.Short() {
		starts = 500
	}
	res, err := Run(context.Background(), Config{
		Addr:   s.Addr().String(),
		CACert: cr.CACert, AgentCert: cr.Agent, ControllerCert: cr.Controller,
		Agents: 5, Starts: starts, Rate: 5000, MemMB: 128,
		StatusPeriod: 100 * time.Millisecond, FlatProcs: 1,
		SchedulerPID: os.Getpid(), // this process: the figures exist, whatever they say
		Out:          &out, Log: testutil.Logger(t),
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	if len(res.Phases) != 2 {
		t.Fatalf("%d phases", len(res.Phases))
	}
	for _, ph := range res.Phases {
		if ph.Placed != starts || len(ph.Failures) != 0 {
			t.Errorf("%s: placed %d of %d, failures %v", ph.Name, ph.Placed, starts, ph.Failures)
		}
		if ph.MinPerAgent != starts/5 || ph.MaxPerAgent != starts/5 {
			t.Errorf("%s: spread %d..%d, want %d each", ph.Name, ph.MinPerAgent, ph.MaxPerAgent, starts/5)
		}
		if ph.P50 <= 0 || ph.P99 < ph.P50 || ph.PlacementsPerSec <= 0 {
			t.Errorf("%s: implausible figures %+v", ph.Name, ph)
		}
	}
	for _, want := range []string{"connections/s", "placements/s", "latency p50", "latency p99", "spread per agent", "errors", "load tool CPU", "peak RSS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestFullCloud sizes the agents so the second half of the STARTs cannot
// fit: they come back as full_cloud from the scheduler or, when a READY
// sent before the last STARTs arrived made the scheduler believe in room
// that is gone, full_cn from the agent (the 2016 design: a READY
// overwrites the scheduler's reservations).
func TestFullCloud(t *testing.T) {
	cr, s := startScheduler(t)
	res, err := Run(context.Background(), Config{
		Addr:   s.Addr().String(),
		CACert: cr.CACert, AgentCert: cr.Agent, ControllerCert: cr.Controller,
		Agents: 2, Starts: 400, MemMB: 100, AgentMemMB: 100 * 100,
		Log: testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ph := res.Phases[0]
	if ph.Placed != 200 || ph.Failures["full_cloud"]+ph.Failures["full_cn"] != 200 || len(ph.Failures) > 2 {
		t.Fatalf("placed %d, failures %v; want 200 and 200 full_cloud or full_cn", ph.Placed, ph.Failures)
	}
}

func TestSeq(t *testing.T) {
	tl, err := newTool(Config{Starts: 1 << 20, MemMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int{0, 1, 0xabcde, 1<<20 - 1} {
		tl.setSeq(seq)
		got, ok := tl.seqOf(tl.start)
		if !ok || got != seq {
			t.Fatalf("seq %d read back as %d, %v", seq, got, ok)
		}
	}
	if _, ok := tl.seqOf([]byte("start:\n")); ok {
		t.Fatal("foreign payload accepted")
	}
}

// startScheduler runs an in-process scheduler on a free port with fresh
// certificates, closed at cleanup.
func startScheduler(t *testing.T) (*Creds, *scheduler.Scheduler) {
	t.Helper()
	cr, err := MakeCreds(certs.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cfg := scheduler.NewConfig()
	cfg.Cert, cfg.CACert = "", ""
	cfg.CertPEM, cfg.CACertPEM = cr.Anchor, cr.CACert
	cfg.Listen = "127.0.0.1:0"
	cfg.ConfigURI = ""
	cfg.SSNTPLog = testutil.Logger(t)
	s, err := scheduler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	return cr, s
}
