package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// TestCNCIPerTenant runs the real ciao-scheduler, the controller
// in-process with tenant networking on, a compute node and a network node
// (fake launchers) and fake CNCI agents:
//   - five concurrent first creates of a tenant start exactly one CNCI
//     (the CNCI workload, network_node 1, the tenant's 02: MAC, hostname
//     cnci-<tenant>) on the network node, wait for its agent's
//     ConcentratorInstanceAdded, and then start their instances with that
//     CNCI as concentrator; the tenant's next create starts no CNCI;
//   - a CNCI whose agent never announces itself fails the waiting create
//     with 503 after -cnci-timeout, with an error event;
//   - a CNCI START answered by StartFailure fails the create with 503 and
//     the event "CNCI Start Failure <id>: ...".
func TestCNCIPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler")
	}
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

	const (
		t1, t2, t3 = "5a1e0b1c-0000-4000-8000-000000000001", "5a1e0b1c-0000-4000-8000-000000000002", "5a1e0b1c-0000-4000-8000-000000000003"
		adminTok   = "admintok"
	)
	cfg := newConfig()
	cfg.CACert, cfg.Cert, cfg.Server, cfg.Port = ca, ctlCert, "127.0.0.1", port
	cfg.PlainHTTP, cfg.ComputeHost, cfg.ComputePort = true, "127.0.0.1", 0
	cfg.Database = filepath.Join(dir, "controller.db")
	cfg.Network, cfg.CNCITimeout = true, 5*time.Second
	cfg.tokens = api.StaticTokens{adminTok: {TenantID: t1, ProjectName: "admin", Roles: []string{"admin"}}}
	cfg.ssntpMod = func(c *ssntp.Config) { c.BackoffUnit = 20 * time.Millisecond; c.Log = testutil.Logger(t) }
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
	var root string
	select {
	case a := <-addr:
		root = "http://" + a.String() + "/v2.1"
	case err := <-ran:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not come up")
	}
	compute := testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(1<<16))
	network := testutil.NewFakeAgent(t, port, ssntp.NETAGENT, testutil.WithAutoReady(1<<16))
	hc := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	createFor := func(tenant string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, root+"/"+tenant+"/servers",
			strings.NewReader(fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":1}}`, controller.WorkloadClear)))
		req.Header.Set("X-Auth-Token", adminTok)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// The scheduler places a START only on a node whose READY it has read.
	// The agents send READY then STATS on one connection, so once the
	// controller lists both nodes (from their STATS) both are placeable.
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		req, _ := http.NewRequest(http.MethodGet, root+"/nodes", nil)
		req.Header.Set("X-Auth-Token", adminTok)
		var nodes struct {
			Nodes []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		}
		if resp, err := hc.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&nodes)
			resp.Body.Close()
		}
		if len(nodes.Nodes) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller lists %d nodes, want the compute and the network node", len(nodes.Nodes))
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for state
	}

	// Five concurrent first creates: one CNCI.
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Add(1)
		go func(i int) { defer wg.Done(); codes[i], _ = createFor(t1) }(i)
	}
	cs := network.NextStart(t)
	if cs.TenantUUID != t1 || !strings.HasPrefix(cs.Networking.VnicMAC, "02:") || cs.Networking.PrivateIP != "" {
		t.Errorf("CNCI START %+v", cs)
	}
	if nn, err := cs.NetworkNode(); !nn || err != nil {
		t.Errorf("CNCI START without network_node 1: %+v", cs.RequestedResources)
	}
	in, _ := network.Instance(cs.InstanceUUID)
	if in.Start.InstanceUUID != cs.InstanceUUID {
		t.Errorf("the network node does not run the CNCI %s", cs.InstanceUUID)
	}
	testutil.NewFakeCNCIAgent(t, port, testutil.WithUUID(uuid.MustParse(cs.InstanceUUID)), testutil.WithTenant(t1))
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("create %d for the new tenant: HTTP %d", i, c)
		}
	}
	if code, body := createFor(t1); code != http.StatusAccepted {
		t.Fatalf("create after the CNCI: %d %s", code, body)
	}
	for i := 0; i < 6; i++ {
		s := compute.NextStart(t)
		if s.Networking.ConcentratorUUID != cs.InstanceUUID || s.Networking.ConcentratorIP != testutil.CNCIIP || s.TenantUUID != t1 {
			t.Fatalf("instance START networking %+v, want CNCI %s at %s", s.Networking, cs.InstanceUUID, testutil.CNCIIP)
		}
	}
	network.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 200*time.Millisecond)
	cn, err := getCNCI(t, root, adminTok)
	if err != nil || !strings.Contains(cn, cs.InstanceUUID) || !strings.Contains(cn, testutil.CNCIIP) {
		t.Errorf("GET /v2.1/cncis = %s %v", cn, err)
	}

	// A CNCI that never announces itself: 503 after the timeout.
	if code, body := createFor(t2); code != http.StatusServiceUnavailable {
		t.Errorf("create with a silent CNCI: %d %s, want 503", code, body)
	}
	silent := network.NextStart(t)
	if silent.TenantUUID != t2 {
		t.Errorf("second CNCI START for %s, want %s", silent.TenantUUID, t2)
	}
	if ev, _ := getEvents(t, root, adminTok); !strings.Contains(ev, "CNCI Start Timeout "+silent.InstanceUUID) {
		t.Errorf("no timeout event: %s", ev)
	}

	// A CNCI START refused by the network node: 503 and the failure event.
	network.Set(t, testutil.WithStartFailure(payloads.StartLaunchFailure))
	if code, body := createFor(t3); code != http.StatusServiceUnavailable {
		t.Errorf("create with a failing CNCI: %d %s, want 503", code, body)
	}
	failed := network.NextStart(t)
	if ev, _ := getEvents(t, root, adminTok); !strings.Contains(ev, "CNCI Start Failure "+failed.InstanceUUID+": Failed to launch instance") {
		t.Errorf("no failure event: %s", ev)
	}
	if cn, err := getCNCI(t, root, adminTok); err != nil || strings.Contains(cn, t3) {
		t.Errorf("a failed CNCI is listed: %s %v", cn, err)
	}
}

func getCNCI(t *testing.T, root, tok string) (string, error) {
	t.Helper()
	return getAdmin(root+"/cncis", tok)
}

func getEvents(t *testing.T, root, tok string) (string, error) {
	t.Helper()
	return getAdmin(root+"/events", tok)
}

func getAdmin(url, tok string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Auth-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return string(b), err
}
