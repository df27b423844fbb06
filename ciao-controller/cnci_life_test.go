package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

const lifeAdminTok = "admintok"

// lifeCluster is the real ciao-scheduler, the controller in-process and
// fake launchers that report STATS every 20 ms, as launchers do (much
// faster), so the controller knows where every instance and CNCI runs.
type lifeCluster struct {
	sched   *testScheduler
	port    int
	root    string
	hc      *http.Client
	compute []*testutil.FakeAgent
	network *testutil.FakeAgent // nil without tenant networking
}

// startLifeCluster starts the real ciao-scheduler and the controller
// in-process, with the admin token lifeAdminTok; mod adjusts the
// controller's config. It starts no node.
func startLifeCluster(t *testing.T, network bool, mod func(*config)) *lifeCluster {
	t.Helper()
	s := startScheduler(t)
	cfg := s.controllerConfig(t)
	cfg.Network = network
	cfg.tokens = api.StaticTokens{lifeAdminTok: {TenantID: tenant, ProjectName: "admin", Roles: []string{"admin"}}}
	if mod != nil {
		mod(&cfg)
	}
	k := &lifeCluster{sched: s, port: s.port, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(k.hc.CloseIdleConnections)
	k.root = "http://" + startController(t, cfg).String() + "/v2.1"
	return k
}

// newLifeCluster starts the cluster; mod adjusts the controller's config.
// computeOpts are the options of each compute node (one node per entry).
func newLifeCluster(t *testing.T, network bool, mod func(*config), computeOpts ...[]testutil.Option) *lifeCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler")
	}
	k := startLifeCluster(t, network, mod)
	for _, opts := range computeOpts {
		k.compute = append(k.compute, testutil.NewFakeAgent(t, k.port, ssntp.AGENT, append([]testutil.Option{testutil.WithAutoReady(1 << 16)}, opts...)...))
	}
	agents := append([]*testutil.FakeAgent(nil), k.compute...)
	if network {
		k.network = testutil.NewFakeAgent(t, k.port, ssntp.NETAGENT, testutil.WithAutoReady(1<<16))
		agents = append(agents, k.network)
	}
	sendStatsEvery(t, 20*time.Millisecond, agents...)
	k.waitNodes(t, len(agents))
	return k
}

// call makes an admin API call and returns the body and status.
func (k *lifeCluster) call(method, path, body string) (string, int) {
	req, _ := http.NewRequest(method, k.root+path, strings.NewReader(body))
	req.Header.Set("X-Auth-Token", lifeAdminTok)
	resp, err := k.hc.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// poll waits for cond, at most testutil.WaitTimeout.
func (k *lifeCluster) poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testutil.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for state
	}
}

// create asks for n servers of tenant; it returns the status and the ids.
func (k *lifeCluster) create(tn string, n int) (int, []string, string) {
	b, code := k.call(http.MethodPost, "/"+tn+"/servers",
		fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":%d}}`, controller.WorkloadClear, n))
	var r struct {
		Servers []struct{ ID string } `json:"servers"`
	}
	_ = json.Unmarshal([]byte(b), &r)
	var ids []string
	for _, s := range r.Servers {
		ids = append(ids, s.ID)
	}
	return code, ids, b
}

// created is the answer to a create: status, ids and body.
type created struct {
	code int
	ids  []string
	body string
}

// createAsync asks for one server of tn in the background; the answer
// comes on the channel.
func (k *lifeCluster) createAsync(tn string) <-chan created {
	done := make(chan created, 1)
	go func() { code, ids, b := k.create(tn, 1); done <- created{code, ids, b} }()
	return done
}

// state is a server's status, "" if it is not found.
func (k *lifeCluster) state(tn, id string) string {
	b, code := k.call(http.MethodGet, "/"+tn+"/servers/"+id, "")
	if code != http.StatusOK {
		return ""
	}
	var r struct {
		Server struct{ Status string } `json:"server"`
	}
	_ = json.Unmarshal([]byte(b), &r)
	return r.Server.Status
}

// cncis maps tenant to CNCI id, as GET /v2.1/cncis lists them.
func (k *lifeCluster) cncis(t *testing.T) map[string]string {
	t.Helper()
	b, code := k.call(http.MethodGet, "/cncis", "")
	var r struct {
		CNCIs []struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant_id"`
		} `json:"cncis"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(b), &r) != nil {
		t.Fatalf("GET /cncis: %d %s", code, b)
	}
	m := map[string]string{}
	for _, c := range r.CNCIs {
		if _, dup := m[c.Tenant]; dup {
			t.Fatalf("two CNCIs listed for tenant %s: %s", c.Tenant, b)
		}
		m[c.Tenant] = c.ID
	}
	return m
}

// hasEvents reports whether the event log holds every message prefix.
func (k *lifeCluster) hasEvents(prefixes ...string) bool {
	b, _ := k.call(http.MethodGet, "/events", "")
	for _, p := range prefixes {
		if !strings.Contains(b, p) {
			return false
		}
	}
	return true
}

// cnciStart waits for the next CNCI START on the network node and, if up,
// brings its agent up; it returns the CNCI id and agent.
func (k *lifeCluster) cnciStart(t *testing.T, tn string, up bool) (string, *testutil.FakeCNCIAgent) {
	t.Helper()
	cs := k.network.NextStart(t)
	if cs.TenantUUID != tn {
		t.Fatalf("CNCI START for tenant %s, want %s", cs.TenantUUID, tn)
	}
	if !up {
		return cs.InstanceUUID, nil
	}
	return cs.InstanceUUID, testutil.NewFakeCNCIAgent(t, k.port, testutil.WithUUID(uuid.MustParse(cs.InstanceUUID)), testutil.WithTenant(tn))
}

// nextDelete is the next DELETE the network node got.
func (k *lifeCluster) nextDelete(t *testing.T) payloads.StopCmd {
	t.Helper()
	var d payloads.Delete
	if err := yaml.Unmarshal(k.network.NextCommand(t, ssntp.DELETE).Payload, &d); err != nil {
		t.Fatal(err)
	}
	return d.Delete
}

// tenantCNCIs are the CNCIs the network node runs for tn.
func (k *lifeCluster) tenantCNCIs(tn string) []string {
	var ids []string
	for _, in := range k.network.Instances() {
		if in.Tenant == tn {
			ids = append(ids, in.UUID)
		}
	}
	return ids
}

// createWithCNCI creates one server of tn while its new CNCI comes up and
// checks that the server's START names that CNCI.
func (k *lifeCluster) createWithCNCI(t *testing.T, tn string) (server, cnci string, agent *testutil.FakeCNCIAgent) {
	t.Helper()
	done := k.createAsync(tn)
	cnci, agent = k.cnciStart(t, tn, true)
	r := <-done
	if r.code != http.StatusAccepted || len(r.ids) != 1 {
		t.Fatalf("create for %s: %d %s", tn, r.code, r.body)
	}
	s := k.compute[0].NextStart(t)
	if s.InstanceUUID != r.ids[0] || s.Networking.ConcentratorUUID != cnci {
		t.Fatalf("server START %s with concentrator %s, want %s with %s", s.InstanceUUID, s.Networking.ConcentratorUUID, r.ids[0], cnci)
	}
	return r.ids[0], cnci, agent
}

// deleteServer deletes an active server and waits until it is gone.
func (k *lifeCluster) deleteServer(t *testing.T, tn, id string) {
	t.Helper()
	k.poll(t, id+" active", func() bool { return k.state(tn, id) == "active" })
	if b, code := k.call(http.MethodDelete, "/"+tn+"/servers/"+id, ""); code != http.StatusNoContent && code != http.StatusAccepted {
		t.Fatalf("delete %s: %d %s", id, code, b)
	}
	k.poll(t, id+" gone", func() bool { return k.state(tn, id) == "" })
}

// TestCNCILifecycle runs the real ciao-scheduler, the controller
// in-process with tenant networking, -cnci-idle 300ms and -cnci-timeout
// 3s, a compute node, a network node and fake CNCI agents:
//   - when a tenant's last server goes, its CNCI gets DELETE on the
//     network node once idle, its record goes when the node confirms,
//     with the events "CNCI Delete" and "CNCI Deleted"; the tenant's next
//     create starts a new CNCI and uses it;
//   - a create that arrives while the CNCI's deletion is in flight (the
//     network node loses the first DELETE) starts no CNCI until the old
//     one is gone (the controller re-sends the DELETE), then gets a new
//     working CNCI: the network node never runs two CNCIs of the tenant;
//   - a CNCI that never announces itself fails its create with 503 and
//     gets DELETE; its record goes.
func TestCNCILifecycle(t *testing.T) {
	const (
		t1 = "5a1e0b1c-0000-4000-8000-0000000000a1"
		t3 = "5a1e0b1c-0000-4000-8000-0000000000a3"
	)
	k := newLifeCluster(t, true, func(c *config) { c.CNCITimeout, c.CNCIIdle = 3*time.Second, 300*time.Millisecond }, nil)

	// Idle deletion, then a new CNCI on the next create.
	srv, cnci1, agent1 := k.createWithCNCI(t, t1)
	if got := k.cncis(t)[t1]; got != cnci1 {
		t.Fatalf("listed CNCI of %s: %q, want %s", t1, got, cnci1)
	}
	k.deleteServer(t, t1, srv)
	if d := k.nextDelete(t); d.InstanceUUID != cnci1 || d.WorkloadAgentUUID != k.network.UUID().String() {
		t.Fatalf("DELETE %+v, want CNCI %s on the network node", d, cnci1)
	}
	agent1.Close() // its VM is gone
	k.poll(t, "CNCI record gone", func() bool { _, ok := k.cncis(t)[t1]; return !ok })
	k.poll(t, "CNCI deletion events", func() bool { return k.hasEvents("CNCI Delete "+cnci1, "CNCI Deleted "+cnci1) })
	if ids := k.tenantCNCIs(t1); len(ids) != 0 {
		t.Fatalf("the network node still runs CNCIs %v", ids)
	}
	srv, cnci2, agent2 := k.createWithCNCI(t, t1)
	if cnci2 == cnci1 {
		t.Fatal("the deleted CNCI was reused")
	}
	if got := k.cncis(t)[t1]; got != cnci2 {
		t.Fatalf("listed CNCI of %s: %q, want %s", t1, got, cnci2)
	}

	// A create racing the deletion: the first DELETE is lost.
	k.network.Set(t, testutil.WithDropDeletes(1))
	k.deleteServer(t, t1, srv)
	if d := k.nextDelete(t); d.InstanceUUID != cnci2 {
		t.Fatalf("DELETE of %s, want %s", d.InstanceUUID, cnci2)
	}
	done := k.createAsync(t1)
	// The create waits: the dying CNCI still runs, so no new one yet.
	k.network.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 300*time.Millisecond)
	if d := k.nextDelete(t); d.InstanceUUID != cnci2 {
		t.Fatalf("re-sent DELETE of %s, want %s", d.InstanceUUID, cnci2)
	}
	agent2.Close()
	cnci3, _ := k.cnciStart(t, t1, true)
	// The network node handles frames in order: the DELETE before this
	// START, so the old CNCI was gone when the new one was asked for.
	if _, ok := k.network.Instance(cnci2); ok {
		t.Fatalf("CNCI %s of %s started while %s still runs", cnci3, t1, cnci2)
	}
	k.poll(t, "only the new CNCI runs", func() bool { ids := k.tenantCNCIs(t1); return len(ids) == 1 && ids[0] == cnci3 })
	r := <-done
	if r.code != http.StatusAccepted || len(r.ids) != 1 {
		t.Fatalf("create racing the deletion: %d %s", r.code, r.body)
	}
	if s := k.compute[0].NextStart(t); s.InstanceUUID != r.ids[0] || s.Networking.ConcentratorUUID != cnci3 {
		t.Fatalf("server START %s with concentrator %s, want %s with %s", s.InstanceUUID, s.Networking.ConcentratorUUID, r.ids[0], cnci3)
	}
	if got := k.cncis(t)[t1]; got != cnci3 {
		t.Fatalf("listed CNCI of %s: %q, want %s", t1, got, cnci3)
	}

	// A CNCI that never announces itself: 503, then DELETE.
	done3 := k.createAsync(t3)
	silent, _ := k.cnciStart(t, t3, false)
	if r := <-done3; r.code != http.StatusServiceUnavailable {
		t.Fatalf("create with a silent CNCI: %d %s, want 503", r.code, r.body)
	}
	if d := k.nextDelete(t); d.InstanceUUID != silent {
		t.Fatalf("DELETE of %s, want the timed-out %s", d.InstanceUUID, silent)
	}
	k.poll(t, "timed-out CNCI deleted", func() bool {
		_, listed := k.cncis(t)[t3]
		return !listed && len(k.tenantCNCIs(t3)) == 0 &&
			k.hasEvents("CNCI Start Timeout "+silent, "CNCI Delete "+silent, "CNCI Deleted "+silent)
	})
	if got := k.cncis(t)[t1]; got != cnci3 {
		t.Errorf("tenant %s's CNCI changed to %q", t1, got)
	}
}

// TestResendDroppedStart: the real ciao-scheduler places STARTs on two
// compute nodes; one loses the first START it gets. The controller
// (-resend-pending-after 1s) sends that START again, the instance
// runs, and every instance runs on exactly one node; an instance a node
// reported is never sent twice. The re-sent instance is then deleted as
// any other.
func TestResendDroppedStart(t *testing.T) {
	k := newLifeCluster(t, false, func(c *config) { c.ResendPending = time.Second },
		[]testutil.Option{testutil.WithDropStarts(1)}, nil)
	code, ids, body := k.create(tenant, 4)
	if code != http.StatusAccepted || len(ids) != 4 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, id := range ids {
		k.poll(t, id+" active", func() bool { return k.state(tenant, id) == "active" })
	}
	runs := map[string]int{}
	starts := 0
	for _, a := range k.compute {
		for _, in := range a.Instances() {
			runs[in.UUID]++
		}
		for _, r := range a.Received() {
			if r.Kind == testutil.RecordFrame && r.Frame.Type == ssntp.COMMAND && r.Frame.Command() == ssntp.START {
				starts++
			}
		}
	}
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("instance %s runs on %d nodes", id, runs[id])
		}
	}
	if len(runs) != 4 || starts != 5 {
		t.Errorf("%d instances run after %d STARTs, want 4 after 5 (one re-sent)", len(runs), starts)
	}
	k.poll(t, "re-send event", func() bool { return k.hasEvents("Start re-sent for ") })
	var resent string
	for _, id := range ids {
		if k.hasEvents("Start re-sent for " + id) {
			resent = id
		}
	}
	if resent == "" {
		t.Fatal("no re-send event names a created instance")
	}
	k.deleteServer(t, tenant, resent)
}
