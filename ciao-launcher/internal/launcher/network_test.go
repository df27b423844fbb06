package launcher

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// withTenantNet gives a START the networking section a controller sends
// for a compute-node instance at ip on subnet, served by CNCI cnci at cnciIP.
func withTenantNet(ip, subnet, cnci, cnciIP string) testutil.StartOption {
	return func(c *payloads.StartCmd) {
		mac := ""
		if p := net.ParseIP(ip); p != nil {
			mac = networking.InstanceMAC(p).String()
		}
		c.Networking = payloads.NetworkResources{
			VnicMAC: mac, VnicUUID: uuid.Generate().String(), ConcentratorUUID: cnci, ConcentratorIP: cnciIP,
			Subnet: subnet, PrivateIP: ip,
		}
	}
}

// tenantNet is what the launcher network tests run on: the node's network
// namespace (cn) and a real CNCI in another one, both on an underlay the
// test made.
type tenantNet struct {
	cnNS, cnciNS nettest.NS
	cnIP, cnciIP net.IP
	cnci         *networking.Cnci
	cnciID       string
}

func newTenantNet(t *testing.T) *tenantNet {
	t.Helper()
	ul := nettest.NewUnderlay(t)
	n := &tenantNet{cnciID: uuid.Generate().String()}
	n.cnNS, n.cnIP = ul.Attach(t, "cn")
	n.cnciNS, n.cnciIP = ul.Attach(t, "cnci")
	ccfg := networking.CnciConfig{Config: networking.DefaultConfig(), RunDir: t.TempDir()}
	ccfg.Netns, ccfg.Logger = n.cnciNS.Path(), nettest.Logger{T: t}
	cnci, err := networking.NewCnci(context.Background(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cnci.Shutdown(context.Background()); cnci.Close() })
	n.cnci = cnci
	return n
}

// onNode makes a launcher of cfg run its node networking in cn.
func (n *tenantNet) onNode(cfg *Config) { cfg.NetNS, cfg.ComputeIP = n.cnNS.Path(), n.cnIP }

// vnic is the networking section of a START for ip on subnet, served by
// the CNCI.
func (n *tenantNet) vnic(ip, subnet string) testutil.StartOption {
	return withTenantNet(ip, subnet, n.cnciID, n.cnciIP.String())
}

// agent connects a fake CNCI agent with the CNCI's UUID to srv; the
// launcher's TenantAdded/TenantRemoved go to it.
func (n *tenantNet) agent(t *testing.T, srv *testutil.FakeServer) *testutil.FakeCNCIAgent {
	t.Helper()
	a := testutil.NewFakeCNCIAgent(t, srv.Port(), testutil.WithUUID(uuid.MustParse(n.cnciID)))
	srv.NextConnect(t)
	return a
}

// tunnel gives the CNCI the tunnel to the node that ta asks for and
// returns the tenant subnet.
func (n *tenantNet) tunnel(t *testing.T, ta payloads.TenantAddedEvent) net.IPNet {
	t.Helper()
	sn, err := networking.ParseSubnet(ta.TenantSubnet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.cnci.AddRemoteSubnet(context.Background(), sn, uint32(ta.SubnetKey), net.ParseIP(ta.AgentIP)); err != nil {
		t.Fatal(err)
	}
	return sn
}

// vnicLink finds the VNIC of address ip in the node's namespace.
func vnicLink(t *testing.T, h *netlink.Handle, ip string) netlink.Link {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, "vnic_") && strings.HasSuffix(l.Attrs().Alias, "##"+ip) {
			return l
		}
	}
	return nil
}

// TestTenantNetworking runs a launcher whose node is a network namespace
// on an underlay shared with a CNCI (another namespace, real networking).
// A START with a networking section gets a VNIC on its tenant bridge and
// sends TenantAdded (once per subnet) with the wire fields the CNCI agent
// checks; the instance gets its address from the CNCI by DHCP. Bad
// networking sections fail with invalid_data / network_failure and leave
// nothing. A restarted launcher re-adopts without a new tunnel; deleting
// the subnet's last instance removes every interface and sends
// TenantRemoved.
func TestTenantNetworking(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter")
	tn := newTenantNet(t)
	cnNS, cnIP, cnciIP, cnciID := tn.cnNS, tn.cnIP, tn.cnciIP, tn.cnciID

	srv, l, _, cfg := simLauncher(t, tn.onNode)
	fakeCNCI := tn.agent(t, srv) // the CNCI's connect, before the restarted launcher's below
	srv.NextConcentratorAdded(t)
	h := cnNS.Handle(t)
	const subnet = "172.16.0.0/24"
	first, second := "0a1b2c3d-0000-4000-8000-00000000000a", "0a1b2c3d-0000-4000-8000-00000000000b"

	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(first), testutil.StartMemMB(100),
		tn.vnic("172.16.0.2", subnet)))
	ta := fakeCNCI.NextTenantAdded(t)
	if ta.AgentUUID != l.id.String() || ta.AgentIP != cnIP.String() || ta.TenantUUID != testutil.TenantUUID ||
		ta.TenantSubnet != subnet || ta.ConcentratorUUID != cnciID || ta.ConcentratorIP != cnciIP.String() || ta.SubnetKey != 4268 {
		t.Fatalf("TenantAdded %+v", ta)
	}
	sn := tn.tunnel(t, ta)
	waitStats(t, srv, "first instance active, node compute address reported", func(s payloads.Stat) bool {
		return stateIs(first, payloads.InstanceActive)(s) && len(s.Networks) == 1 && s.Networks[0].NodeIP == cnIP.String()
	})
	v := vnicLink(t, h, "172.16.0.2")
	if v == nil || v.Type() != "veth" {
		t.Fatalf("no veth VNIC for the instance: %v", v)
	}
	inst := nettest.NewNS(t, "in")
	peer := "svp" + strings.TrimPrefix(v.Attrs().Name, "svn")
	cnNS.MustRun(t, "ip", "link", "set", peer, "netns", inst.Name)
	inst.MustRun(t, "ip", "link", "set", peer, "name", "eth0")
	inst.MustRun(t, "ip", "link", "set", "eth0", "up")
	if got := inst.DHCP(t); got.String() != "172.16.0.2" {
		t.Fatalf("DHCP gave %v", got)
	}

	// Same subnet again: a VNIC, no new tunnel.
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(second), testutil.StartMemMB(100),
		tn.vnic("172.16.0.3", subnet)))
	waitStats(t, srv, "second instance active", stateIs(second, payloads.InstanceActive))
	if vnicLink(t, h, "172.16.0.3") == nil {
		t.Fatal("no VNIC for the second instance")
	}

	// Bad networking sections.
	links := len(cnNS.CiaoLinks(t))
	for _, tc := range []struct {
		name   string
		opt    testutil.StartOption
		reason payloads.StartFailureReason
	}{
		{"bad subnet", withTenantNet("172.16.9.2", "172.16.9.0/33", cnciID, cnciIP.String()), payloads.StartInvalidData},
		{"address outside the subnet", withTenantNet("172.16.8.2", "172.16.9.0/24", cnciID, cnciIP.String()), payloads.StartInvalidData},
		{"no CNCI", withTenantNet("172.16.9.2", "172.16.9.0/24", "", ""), payloads.StartNetworkFailure},
		{"duplicate VNIC address", tn.vnic("172.16.0.3", subnet), payloads.StartNetworkFailure},
	} {
		id := uuid.Generate().String()
		srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(id), testutil.StartMemMB(100), tc.opt))
		if f := srv.NextStartFailure(t); f.InstanceUUID != id || f.Reason != tc.reason {
			t.Errorf("%s: %+v, want %s", tc.name, f, tc.reason)
		}
		if _, err := os.Stat(filepath.Join(cfg.StateDir, id)); err == nil {
			t.Errorf("%s: instance directory left behind", tc.name)
		}
	}
	if n := len(cnNS.CiaoLinks(t)); n != links {
		t.Fatalf("failed STARTs changed the node's links: %d → %d", links, n)
	}

	// A restarted launcher finds its VNICs; no new tunnel.
	l.stop(t)
	l = startLauncher(t, srv, cfg)
	waitStats(t, srv, "instances re-adopted", func(s payloads.Stat) bool {
		return stateIs(first, payloads.InstanceActive)(s) && stateIs(second, payloads.InstanceActive)(s)
	})
	if !inst.Ping(networking.Gateway(sn)) {
		t.Fatal("instance lost its gateway across the launcher restart")
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(first, l.id.String()))
	srv.NextInstanceDeleted(t)
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(second, l.id.String()))
	srv.NextInstanceDeleted(t)
	tr := fakeCNCI.NextTenantRemoved(t)
	if tr.AgentIP != cnIP.String() || tr.TenantSubnet != subnet || tr.SubnetKey != 4268 || tr.ConcentratorUUID != cnciID {
		t.Fatalf("TenantRemoved %+v", tr)
	}
	if got := fakeCNCI.Tunnels(); len(got) != 0 {
		t.Errorf("the CNCI still has tunnels %+v (one TenantAdded per subnet expected)", got)
	}
	if ls := cnNS.CiaoLinks(t); len(ls) != 0 {
		t.Fatalf("node keeps %v", ls)
	}
}
