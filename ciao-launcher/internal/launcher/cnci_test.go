package launcher

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// cnciAgentBinary builds ciao-cnci-agent into the test's directory.
func cnciAgentBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds ciao-cnci-agent")
	}
	bin := filepath.Join(t.TempDir(), "ciao-cnci-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../networking/ciao-cnci-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNetworkNodeCNCI: a NETAGENT launcher (its node a namespace) runs the
// tenant's CNCI START as a namespace with a ciao-cnci-agent, which announces
// itself to the controller with the CNCI MAC of the START and an address
// of the pool. A compute-node launcher then starts the tenant's instance:
// its TenantAdded reaches that agent through the scheduler, and the
// instance gets its address by DHCP from the CNCI. Deleting the CNCI
// removes its namespace and agent.
func TestNetworkNodeCNCI(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter")
	bin := cnciAgentBinary(t)
	ul := nettest.NewUnderlay(t)
	nnNS, nnIP := ul.Attach(t, "nn")
	cnNS, cnIP := ul.Attach(t, "cn")

	srv := newTestServer(t)
	ctl := testutil.NewFakeController(t, srv.Port())
	srv.NextConnect(t)

	// The network node.
	dir := t.TempDir()
	ncfg := testConfig(t, srv, dir)
	ca, nnCert := testutil.TestCerts(t).WriteFiles(t, dir, ssntp.NETAGENT)
	_, cnciCert := testutil.TestCerts(t).WriteFiles(t, dir, ssntp.CNCIAGENT)
	ncfg.Cert = nnCert
	ncfg.NetNS, ncfg.ComputeIP = nnNS.Path(), nnIP
	_, pool, _ := net.ParseCIDR(ul.Prefix + ".200/30")
	ncfg.CNCI = CNCIConfig{Agent: bin, CACert: ca, Cert: cnciCert, Pool: *pool, Prefix: 24}
	ncfg.Simulation = true
	nn := startLauncherRole(t, srv, ncfg, ssntp.NETAGENT)

	cnciID := uuid.Generate().String()
	ctl.SendStart(t, testutil.StartInstance(cnciID), testutil.StartNetworkNode(), testutil.StartMemMB(100))
	added := ctl.NextConcentratorAdded(t)
	if added.InstanceUUID != cnciID || added.ConcentratorMAC != testutil.VNICMAC || added.ConcentratorIP != ul.Prefix+".200" {
		t.Fatalf("ConcentratorInstanceAdded %+v; want uuid %s, MAC %s, IP %s.200", added, cnciID, testutil.VNICMAC, ul.Prefix)
	}
	if rec := srv.NextConnect(t); rec.Role != ssntp.CNCIAGENT {
		t.Fatalf("connection of role %s, want the CNCI agent's", rec.Role)
	}
	cnciNS := nettest.NS{Name: "ciao-cnci-" + cnciID}
	if _, err := os.Stat(cnciNS.Path()); err != nil {
		t.Fatalf("no CNCI namespace: %v", err)
	}

	// The compute node and the tenant's instance.
	ccfg := testConfig(t, srv, t.TempDir())
	ccfg.Simulation = true
	ccfg.NetNS, ccfg.ComputeIP = cnNS.Path(), cnIP
	cn := startLauncher(t, srv, ccfg)
	inst := uuid.Generate().String()
	srv.SendCommand(t, cn.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(inst), testutil.StartMemMB(100),
		withTenantNet("172.16.0.2", "172.16.0.0/24", cnciID, added.ConcentratorIP)))
	waitStats(t, srv, "instance active", stateIs(inst, payloads.InstanceActive))
	v := vnicLink(t, cnNS.Handle(t), "172.16.0.2")
	if v == nil {
		t.Fatal("no VNIC")
	}
	in := nettest.NewNS(t, "in")
	peer := "svp" + strings.TrimPrefix(v.Attrs().Name, "svn")
	cnNS.MustRun(t, "ip", "link", "set", peer, "netns", in.Name)
	in.MustRun(t, "ip", "link", "set", peer, "name", "eth0")
	in.MustRun(t, "ip", "link", "set", "eth0", "up")
	if got := in.DHCP(t); got.String() != "172.16.0.2" {
		t.Fatalf("DHCP from the namespace CNCI gave %v", got)
	}
	if !in.Ping(networking.Gateway(mustParseSubnet(t, "172.16.0.0/24"))) {
		t.Fatal("instance cannot reach its gateway on the CNCI")
	}

	srv.SendCommand(t, cn.id, ssntp.DELETE, testutil.DeletePayload(inst, cn.id.String()))
	srv.NextInstanceDeleted(t)
	srv.SendCommand(t, nn.id, ssntp.DELETE, testutil.DeletePayload(cnciID, nn.id.String()))
	srv.NextInstanceDeleted(t)
	if _, err := os.Stat(cnciNS.Path()); err == nil {
		t.Fatal("CNCI namespace left after DELETE")
	}
}

func mustParseSubnet(t *testing.T, s string) net.IPNet {
	t.Helper()
	n, err := networking.ParseSubnet(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startLauncherRole is startLauncher for a launcher of another role.
func startLauncherRole(t *testing.T, srv *testutil.FakeServer, cfg Config, role ssntp.Role) *testLauncher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &testLauncher{cancel: cancel, done: make(chan error, 1)}
	go func() { tl.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { tl.stop(t) })
	rec := srv.NextConnect(t)
	tl.id = rec.Peer
	if rec.Role != role {
		t.Fatalf("launcher connected as %s, want %s", rec.Role, role)
	}
	return tl
}
