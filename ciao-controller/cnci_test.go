package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
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
	const (
		t1, t2, t3 = "5a1e0b1c-0000-4000-8000-000000000001", "5a1e0b1c-0000-4000-8000-000000000002", "5a1e0b1c-0000-4000-8000-000000000003"
		adminTok   = lifeAdminTok
	)
	k := startLifeCluster(t, true, func(c *config) {
		c.CNCITimeout = 5 * time.Second
		c.tokens = api.StaticTokens{adminTok: {TenantID: t1, ProjectName: "admin", Roles: []string{"admin"}}}
	})
	root, port := k.root, k.port
	compute := testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(1<<16))
	network := testutil.NewFakeAgent(t, port, ssntp.NETAGENT, testutil.WithAutoReady(1<<16))
	createFor := func(tenant string) (int, string) {
		code, _, body := k.create(tenant, 1)
		return code, body
	}
	// Both nodes listed: both placeable.
	k.waitNodes(t, 2)

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
