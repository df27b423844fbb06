package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// The cluster start-up the package's integration tests share: the real
// ciao-scheduler binary, the controller in-process, agents reporting.

// testScheduler is a running ciao-scheduler binary, with the test's
// certificates written in dir.
type testScheduler struct {
	dir     string
	certs   *testutil.Certs
	ca      string // the CA certificate file
	ctlCert string // the controller's certificate file
	port    int    // the scheduler's SSNTP port on 127.0.0.1
}

// startScheduler builds ciao-scheduler into a temporary directory and
// runs it (stopped at cleanup) with the ssntp configuration of
// testutil.ConfigureCmd.
func startScheduler(t *testing.T) *testScheduler {
	t.Helper()
	dir := t.TempDir()
	sched := buildScheduler(t, dir)
	certs := testutil.TestCerts(t)
	ca, schedCert := certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, ctlCert := certs.WriteFiles(t, dir, ssntp.Controller)
	conf := filepath.Join(dir, "configuration.yaml")
	if err := os.WriteFile(conf, testutil.Marshal(t, testutil.ConfigureCmd()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	testutil.StartCommand(t, dir, "scheduler", sched, "-cert", schedCert, "-cacert", ca,
		"-listen", "127.0.0.1:"+strconv.Itoa(port), "-configuration-uri", "file://"+conf, "-logtostderr")
	return &testScheduler{dir: dir, certs: certs, ca: ca, ctlCert: ctlCert, port: port}
}

// cert writes the certificate of role r into s.dir and returns its file.
func (s *testScheduler) cert(t *testing.T, r ssntp.Role) string {
	t.Helper()
	_, cert := s.certs.WriteFiles(t, s.dir, r)
	return cert
}

// controllerConfig is the configuration of an in-process controller of
// s: plain HTTP on a free port of 127.0.0.1, its database in s.dir, SSNTP
// reconnecting fast and logging to t.
func (s *testScheduler) controllerConfig(t *testing.T) config {
	cfg := newConfig()
	cfg.CACert, cfg.Cert, cfg.Server, cfg.Port = s.ca, s.ctlCert, "127.0.0.1", s.port
	cfg.PlainHTTP, cfg.ComputeHost, cfg.ComputePort = true, "127.0.0.1", 0
	cfg.Database = filepath.Join(s.dir, "controller.db")
	cfg.ssntpMod = func(c *ssntp.Config) { c.BackoffUnit = 20 * time.Millisecond; c.Log = testutil.Logger(t) }
	return cfg
}

// startController runs the controller in-process (run) until the test
// ends, when run must return context.Canceled; it returns the address
// its API listens on. It sets cfg.onListen.
func startController(t *testing.T, cfg config) net.Addr {
	t.Helper()
	addr := make(chan net.Addr, 1)
	cfg.onListen = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-ran:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not come up")
	}
	return nil
}

// sendStatsEvery has every agent send its STATS each period, as
// launchers do, until the test ends.
func sendStatsEvery(t *testing.T, period time.Duration, agents ...*testutil.FakeAgent) {
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, a := range agents {
					a.SendStats(t)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
}

// waitNodes waits, at most testutil.WaitTimeout, until the controller
// lists n nodes or more (from their STATS). A START is placed only on a
// node whose READY the scheduler read; agents send READY before STATS
// on one connection, so a listed node is placeable.
func (k *lifeCluster) waitNodes(t *testing.T, n int) {
	t.Helper()
	listed := 0
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		var nodes struct {
			Nodes []struct{ ID string } `json:"nodes"`
		}
		if b, code := k.call(http.MethodGet, "/nodes", ""); code == http.StatusOK && json.Unmarshal([]byte(b), &nodes) == nil {
			listed = len(nodes.Nodes)
		}
		if listed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller lists %d nodes, want %d", listed, n)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for state
	}
}
