package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	yaml "gopkg.in/yaml.v2"
)

// childEnv holds the flags of a controller run by the test binary itself
// (TestMain), so a test can SIGKILL a real controller process without
// building one.
const childEnv = "CIAO_CONTROLLER_CHILD_ARGS"

// childMain runs the controller from the flags in childEnv, serving plain
// HTTP, until SIGTERM.
func childMain(args string) int {
	cfg, err := parseFlags(flag.NewFlagSet("child", flag.ContinueOnError),
		append(strings.Fields(args), "-httpscert", "unused", "-httpskey", "unused"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller child:", err)
		return 2
	}
	cfg.PlainHTTP = true
	_ = flag.Set("logtostderr", "true") // glog's flags live on the command line set
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "controller child:", err)
		return 1
	}
	return 0
}

// buildScheduler builds ciao-scheduler into dir.
func buildScheduler(t *testing.T, dir string) string {
	t.Helper()
	sched := filepath.Join(dir, "ciao-scheduler")
	if out, err := exec.Command("go", "build", "-o", sched, "../ciao-scheduler").CombinedOutput(); err != nil {
		t.Fatalf("building ciao-scheduler: %v\n%s", err, out)
	}
	return sched
}

// TestControllerSIGKILL: the controller (its own process, against the real
// ciao-scheduler and three fake launchers that record every START) is
// killed with SIGKILL while clients launch 500 instances, then restarted
// on the same database. Every instance whose create was answered 202 is
// there after the restart, every one becomes active from the launchers'
// STATS, and no instance was STARTed twice on the launchers.
func TestControllerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler")
	}
	s := startScheduler(t)
	dir, ca, ctlCert, port := s.dir, s.ca, s.ctlCert, s.port
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(token+" "+tenant+" demo member\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var agents []*testutil.FakeAgent
	for i := 0; i < 3; i++ {
		agents = append(agents, testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(1<<20)))
	}
	// Launchers report every 50 ms; the controller re-sends STARTs left
	// pending after 10 s, two hundred report periods (slack for a loaded CI).
	sendStatsEvery(t, 50*time.Millisecond, agents...)

	apiPort := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/v2.1/" + tenant
	args := strings.Join([]string{"-cacert", ca, "-cert", ctlCert, "-server", "127.0.0.1", "-port", strconv.Itoa(port),
		"-compute-host", "127.0.0.1", "-compute-port", strconv.Itoa(apiPort), "-database", filepath.Join(dir, "c.db"),
		"-tokens", tokens, "-resend-pending-after", "10s"}, " ")
	first := startChild(t, dir, "controller1", args)
	waitAPI(t, base)

	const want = 500
	hc := &http.Client{Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		killed   = make(chan struct{})
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; count() < want; i++ {
				n := 1 + (c+i)%3
				ids, err := create(hc, base, n)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the controller is down: retry
					continue
				}
				mu.Lock()
				for _, id := range ids {
					accepted[id] = true
				}
				if len(accepted) >= 200 {
					killOnce.Do(func() { close(killed) })
				}
				mu.Unlock()
			}
		}(c)
	}
	<-killed
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("controller was not killed by SIGKILL: %v", first.ProcessState)
	}
	atKill := count()
	startChild(t, dir, "controller2", args)
	wg.Wait()
	t.Logf("%d creates accepted before SIGKILL, %d in all", atKill, count())

	// Every accepted instance is listed and becomes active on a node.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := listStates(hc, base)
		missing, notActive := 0, 0
		if err == nil {
			for id := range accepted {
				switch s, ok := st[id]; {
				case !ok:
					missing++
				case !strings.HasPrefix(s, "active@") || s == "active@":
					notActive++
				}
			}
			if missing == 0 && notActive == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %d accepted instances missing, %d not active (%v)", missing, notActive, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	// No instance was STARTed twice, and every accepted one was STARTed.
	starts := map[string]int{}
	for _, a := range agents {
		for _, r := range a.Received() {
			if r.Frame == nil || r.Frame.Type != ssntp.COMMAND || ssntp.Command(r.Frame.Operand) != ssntp.START {
				continue
			}
			var s payloads.Start
			if err := yaml.Unmarshal(r.Frame.Payload, &s); err != nil {
				t.Fatal(err)
			}
			starts[s.Start.InstanceUUID]++
		}
	}
	for id, n := range starts {
		if n > 1 {
			t.Errorf("instance %s STARTed %d times", id, n)
		}
	}
	for id := range accepted {
		if starts[id] != 1 {
			t.Errorf("accepted instance %s STARTed %d times", id, starts[id])
		}
	}
	t.Logf("%d instances STARTed on the launchers, %d accepted", len(starts), len(accepted))
}

// startChild runs the test binary as a controller (childMain) with its
// standard error in <dir>/<name>.log; it is SIGTERMed at cleanup.
func startChild(t *testing.T, dir, name, args string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+args)
	cmd.Stderr = logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return cmd
}

// waitAPI waits until the controller answers on base.
func waitAPI(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/flavors")
		if err == nil {
			resp.Body.Close()
			return
		}
		var op *net.OpError
		if time.Now().After(deadline) || !errors.As(err, &op) {
			t.Fatalf("controller API never came up: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// create asks for n instances and returns their ids if the answer is 202.
func create(hc *http.Client, base string, n int) ([]string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/servers",
		strings.NewReader(fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":%d}}`, controller.WorkloadClear, n)))
	req.Header.Set("X-Auth-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("create: HTTP %d: %s", resp.StatusCode, body)
	}
	var r struct {
		Servers []struct{ ID string } `json:"servers"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	ids := make([]string, len(r.Servers))
	for i, s := range r.Servers {
		ids[i] = s.ID
	}
	return ids, nil
}

// listStates maps each listed server to "status@host".
func listStates(hc *http.Client, base string) (map[string]string, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/servers/detail", nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Servers []struct {
			ID, Status string
			HostID     string `json:"hostId"`
		} `json:"servers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(r.Servers))
	for _, s := range r.Servers {
		m[s.ID] = s.Status + "@" + s.HostID
	}
	return m, nil
}
