package launcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/sim"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// BenchmarkStart is the launcher's own cost of a simulated START, from the
// decoded SSNTP frame to the instance reported active to the main loop:
// parsing, admission, the instance directory and its durable state, the
// driver and the main loop's bookkeeping (no status frame: the launcher is
// not connected). It reports the process's CPU time (user + system,
// getrusage) per START as cpu-us/start, and allocations per START. The
// state directory is under $TMPDIR, on the disk the controller bench's
// launchers use. "one" starts one instance at a time (a START per create
// request, as in the bench's create phase), "burst100" queues 100 before
// the main loop takes them (a launch of many instances).
//
//	go test ./ciao-launcher/internal/launcher -run '^$' -bench BenchmarkStart -benchtime 2000x
func BenchmarkStart(b *testing.B) {
	for _, burst := range []int{1, 100} {
		name := "one"
		if burst > 1 {
			name = fmt.Sprintf("burst%d", burst)
		}
		b.Run(name, func(b *testing.B) { benchStart(b, burst) })
	}
}

func benchStart(b *testing.B, burst int) {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(b.TempDir(), "instances")
	cfg.Simulation, cfg.Network = true, false
	cfg.Drivers = driver.Registry{driver.KindSim: sim.New()}
	cfg.StatsInterval = time.Hour
	cfg.ResourceInterval = time.Hour
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		b.Fatal(err)
	}
	l := &Launcher{
		cfg: cfg, drivers: cfg.Drivers, nodeID: "bench",
		inbox: newMailbox[message](), events: make(chan instEvent),
		instances: make(map[string]*instRecord), memAvail: -1, diskAvail: -1, lastStatus: ssntp.READY,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		l.wg.Wait()
	}()
	frames := make([]*ssntp.Frame, b.N)
	for i := range frames {
		id := fmt.Sprintf("0a1b2c3d-%04x-4000-8000-%012x", i>>16, i)
		frames[i] = &ssntp.Frame{Payload: benchStartPayload(b, id)}
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i += burst {
		n := min(burst, b.N-i)
		for _, f := range frames[i : i+n] {
			l.handle(ctx, message{cmd: ssntp.START, frame: f})
		}
		// The main loop's part: apply the events until all n are active
		// and sampled (setRunning sends both).
		for seen := 0; seen < 2*n; seen++ {
			ev := <-l.events
			if ev.kind == evRemoved {
				b.Fatalf("START %s failed: %s", ev.id, ev.startFailure)
			}
			l.handleEvent(ev)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/start")
	if len(l.instances) != b.N {
		b.Fatalf("%d instances, want %d", len(l.instances), b.N)
	}
}

// benchStartPayload is a START as the controller sends it: the start
// section, the workload's cloud-init and the meta-data.
func benchStartPayload(b *testing.B, id string) []byte {
	cmd := testutil.StartCmd(testutil.StartInstance(id), testutil.StartMemMB(128), testutil.StartVCPUs(1))
	ud := "---\n#cloud-config\nusers:\n  - name: demouser\n    gecos: CIAO Demo User\n    lock-passwd: false\n" +
		"    passwd: $6$rounds=4096$w9I3hR4g/hu$AnYjaC2DfznbPSG3vxsgtgAS4mJwWBkcR74Y/KHNB5OsfAlA4gpU5j6CHWMOkkt9j.9d7OYJXJ4icXHzKXTAO.\n" +
		"    sudo: ALL=(ALL) NOPASSWD:ALL\n...\n"
	p, err := payloads.ComposeStart(&payloads.Start{Start: cmd}, ud, payloads.StartMetadata{UUID: id, Hostname: id})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// processCPU is the user + system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
