package networking

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ciao-project/ciao/networking/nettest"
)

func TestSubnetKeyAndNames(t *testing.T) {
	for _, c := range []struct {
		subnet string
		key    uint32
	}{
		{"172.16.0.0/24", 4268},
		{"172.16.1.0/24", 0x0110AC},
		{"172.31.255.0/24", 0xFF1FAC},
		{"192.168.8.0/24", 0x08A8C0},
	} {
		if k := SubnetKey(mustSubnet(t, c.subnet)); k != c.key {
			t.Errorf("SubnetKey(%s) = %#x, want %#x", c.subnet, k, c.key)
		}
	}
	if m := InstanceMAC(net.ParseIP("172.16.0.2")).String(); m != "02:00:ac:10:00:02" {
		t.Errorf("InstanceMAC = %s", m)
	}
	if p := SSHPort(net.ParseIP("172.16.0.2")); p != 33002 {
		t.Errorf("SSHPort = %d", p)
	}
	if p := SSHPort(net.ParseIP("172.16.255.250")); p != 0 {
		t.Errorf("SSHPort beyond 65535 = %d", p)
	}
	if g := Gateway(mustSubnet(t, "172.16.3.0/24")); g.String() != "172.16.3.1" {
		t.Errorf("Gateway = %v", g)
	}
	vc := VnicConfig{TenantID: "t", SubnetID: "172.16.0.0/24", ConcID: "c", ConcIP: net.ParseIP("10.0.0.9"), VnicIP: net.ParseIP("172.16.0.5")}
	if a := cnVnicAlias(&vc); a != "vnic_t_172.16.0.0/24_c_10.0.0.9##172.16.0.5" || vnicAliasTopology(a) != "t_172.16.0.0/24_c_10.0.0.9" {
		t.Errorf("vnic alias %q", a)
	}
	n := mustSubnet(t, "172.16.0.0/24")
	if a := cnciGRETunnelAlias(n, net.ParseIP("10.0.0.5")); a != "gre_172.16.0.0+24##10.0.0.5" {
		t.Errorf("CNCI GRE alias %q", a)
	}
	if got, cn, ok := parseCnciAlias("gre_172.16.0.0+24##10.0.0.5", aliasTunnel); !ok || got.String() != "172.16.0.0/24" || !cn.Equal(net.ParseIP("10.0.0.5")) {
		t.Errorf("parseCnciAlias: %v %v %v", got, cn, ok)
	}
	if _, _, ok := parseCnciAlias("br_tenant_172.16.0.0/24_c_1.2.3.4", aliasBridge); ok {
		t.Error("a compute-node alias parsed as a CNCI one")
	}
}

func TestParseSubnetRejects(t *testing.T) {
	for _, s := range []string{"", "bogus", "172.16.0.1/24", "fd00::/64", "172.16.0.0/31", "172.16.0.0/0",
		"172.16.0.128/25", /* key ≥ 2^24: would be truncated as a VNI */
		"0.0.0.0/8"} {
		if _, err := ParseSubnet(s); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseSubnet(%q) = %v, want ErrBadConfig", s, err)
		}
	}
}

// linkNames lists every link of a namespace.
func linkNames(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	slices.Sort(out)
	return out
}

// TestBadInputLeavesNothing: bad subnets, duplicate VNICs, a missing CNCI
// and a tunnel the kernel refuses all fail clearly, and the node's links
// are exactly what they were.
func TestBadInputLeavesNothing(t *testing.T) {
	requireNetAdmin(t)
	ctx := context.Background()
	ul := nettest.NewUnderlay(t)
	node, _ := ul.Attach(t, "cn")
	cn := newTestCN(t, node)
	h := node.Handle(t)
	subnet := mustSubnet(t, "172.16.5.0/24")
	good := func() VnicConfig {
		ip := host(subnet, 2)
		return VnicConfig{Role: TenantVM, VnicIP: ip, VnicMAC: InstanceMAC(ip), Subnet: subnet,
			ConcIP: net.ParseIP("10.77.0.50"), VnicID: "v1", InstanceID: "i1", TenantID: "tenant",
			SubnetID: subnet.String(), ConcID: "cnci"}
	}
	before := linkNames(t, h)
	for _, c := range []struct {
		name string
		mod  func(*VnicConfig)
		want error
	}{
		{"subnet /31", func(c *VnicConfig) { c.Subnet = net.IPNet{IP: c.Subnet.IP, Mask: net.CIDRMask(31, 32)} }, ErrBadConfig},
		{"subnet IPv6", func(c *VnicConfig) { c.Subnet = net.IPNet{IP: net.ParseIP("fd00::"), Mask: net.CIDRMask(64, 128)} }, ErrBadConfig},
		{"subnet key beyond 24 bits", func(c *VnicConfig) {
			c.Subnet = net.IPNet{IP: net.ParseIP("172.16.5.128").To4(), Mask: net.CIDRMask(25, 32)}
			c.VnicIP = net.ParseIP("172.16.5.130")
		}, ErrBadConfig},
		{"address outside the subnet", func(c *VnicConfig) { c.VnicIP = net.ParseIP("172.16.6.2") }, ErrBadConfig},
		{"gateway address", func(c *VnicConfig) { c.VnicIP = Gateway(c.Subnet) }, ErrBadConfig},
		{"no MAC", func(c *VnicConfig) { c.VnicMAC = nil }, ErrBadConfig},
		{"no role", func(c *VnicConfig) { c.Role = 0 }, ErrBadConfig},
		{"no CNCI IP", func(c *VnicConfig) { c.ConcIP = nil }, ErrNoConcentrator},
		{"no CNCI id", func(c *VnicConfig) { c.ConcID = "" }, ErrNoConcentrator},
		{"CNCI IP 0.0.0.0", func(c *VnicConfig) { c.ConcIP = net.IPv4zero }, ErrNoConcentrator},
	} {
		vc := good()
		c.mod(&vc)
		if _, _, err := cn.CreateVnic(ctx, vc); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if after := linkNames(t, h); !slices.Equal(before, after) {
		t.Fatalf("links changed: %v → %v", before, after)
	}

	// Duplicates: the same VNIC id at another address, another VNIC at
	// the same address.
	if _, _, err := cn.CreateVnic(ctx, good()); err != nil {
		t.Fatal(err)
	}
	withVnic := linkNames(t, h)
	dupID := good()
	dupID.VnicIP, dupID.VnicMAC = host(subnet, 3), InstanceMAC(host(subnet, 3))
	if _, _, err := cn.CreateVnic(ctx, dupID); !errors.Is(err, ErrDuplicateVnic) {
		t.Errorf("same VNIC id, other address: %v", err)
	} else {
		t.Log(err)
	}
	dupIP := good()
	dupIP.VnicID = "v2"
	if _, _, err := cn.CreateVnic(ctx, dupIP); !errors.Is(err, ErrDuplicateVnic) {
		t.Errorf("other VNIC, same address: %v", err)
	} else {
		t.Log(err)
	}
	if after := linkNames(t, h); !slices.Equal(withVnic, after) {
		t.Fatalf("links changed: %v → %v", withVnic, after)
	}
	if _, err := cn.DestroyVnic(ctx, good()); err != nil {
		t.Fatal(err)
	}

	// The kernel refuses the tunnel (its VNI is taken on this port): the
	// bridge made just before is removed again.
	node.MustRun(t, "ip", "link", "add", "squat", "type", "vxlan", "id", "1377452", "dstport", "4789", "local", cn.ComputeAddr().IP.String())
	before = linkNames(t, h)
	vc := good()
	vc.Subnet = mustSubnet(t, "172.4.21.0/24") // key 0x1504AC = 1377452
	vc.SubnetID = vc.Subnet.String()
	vc.VnicIP, vc.VnicMAC = host(vc.Subnet, 2), InstanceMAC(host(vc.Subnet, 2))
	if _, _, err := cn.CreateVnic(ctx, vc); err == nil {
		t.Fatal("tunnel on a taken VNI succeeded")
	} else {
		t.Logf("taken VNI: %v", err)
	}
	if after := linkNames(t, h); !slices.Equal(before, after) {
		t.Fatalf("a failed tunnel left links: %v → %v", before, after)
	}
	if cn.Subnets() != 0 || cn.Vnics() != 0 {
		t.Fatalf("state after failures: %d subnets, %d VNICs", cn.Subnets(), cn.Vnics())
	}
}

// TestCnciBadInput: the CNCI refuses a wrong key, a bad subnet and a bad
// compute-node address, and builds nothing.
func TestCnciBadInput(t *testing.T) {
	requireNetAdmin(t)
	requireTools(t, "dnsmasq", "iptables-restore", "nsenter")
	ul := nettest.NewUnderlay(t)
	n, _ := ul.Attach(t, "cnci")
	c := newTestCnci(t, n, t.TempDir())
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	ctx := context.Background()
	sub := mustSubnet(t, "172.16.9.0/24")
	cnIP := net.ParseIP("10.77.0.1")
	if _, err := c.AddRemoteSubnet(ctx, sub, SubnetKey(sub)+1, cnIP); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := c.AddRemoteSubnet(ctx, net.IPNet{IP: sub.IP, Mask: net.CIDRMask(31, 32)}, SubnetKey(sub), cnIP); !errors.Is(err, ErrBadConfig) {
		t.Errorf("bad subnet: %v", err)
	}
	if _, err := c.AddRemoteSubnet(ctx, sub, SubnetKey(sub), nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no compute node IP: %v", err)
	}
	if l := n.CiaoLinks(t); len(l) != 0 || len(c.Subnets()) != 0 {
		t.Errorf("bad input built %v / %+v", l, c.Subnets())
	}
}

// TestVMTapAndGRE: a VM VNIC is a tap on the subnet bridge; with GRE
// configured the tunnel is a gretap when the kernel has one.
func TestVMTapAndGRE(t *testing.T) {
	requireNetAdmin(t)
	ctx := context.Background()
	ul := nettest.NewUnderlay(t)
	node, _ := ul.Attach(t, "cn")
	subnet := mustSubnet(t, "172.16.7.0/24")
	vc := VnicConfig{Role: TenantVM, VnicIP: host(subnet, 2), VnicMAC: InstanceMAC(host(subnet, 2)), Subnet: subnet,
		ConcIP: net.ParseIP("10.77.0.50"), VnicID: "v1", InstanceID: "i1", TenantID: "tenant", SubnetID: subnet.String(), ConcID: "cnci"}
	h := node.Handle(t)

	cn := newTestCN(t, node)
	defer cn.Close()
	v, ev, err := cn.CreateVnic(ctx, vc)
	if err != nil || ev == nil {
		t.Fatalf("CreateVnic: %v, %v", ev, err)
	}
	tap, err := h.LinkByName(v.Name)
	if err != nil {
		t.Fatal(err)
	}
	br, _ := h.LinkByName(v.Bridge)
	if tap.Type() != "tuntap" || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Alias != v.Alias {
		t.Errorf("tap %s: type %s, master %d (bridge %d), alias %q", v.Name, tap.Type(), tap.Attrs().MasterIndex, br.Attrs().Index, tap.Attrs().Alias)
	}
	var tunnel netlink.Link
	ls, _ := h.LinkList()
	for _, l := range ls {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "vxlan" {
			tunnel = l
		}
	}
	if vx, ok := tunnel.(*netlink.Vxlan); !ok || vx.VxlanId != int(SubnetKey(subnet)) || vx.Port != VXLANPort || !vx.Group.Equal(vc.ConcIP) {
		t.Errorf("tunnel %+v", tunnel)
	}
	if ev, err := cn.DestroyVnic(ctx, vc); err != nil || ev == nil || ev.Added {
		t.Fatalf("DestroyVnic: %+v, %v", ev, err)
	}
	if l := node.CiaoLinks(t); len(l) != 0 {
		t.Fatalf("left %v", l)
	}
	// Hard reset removes whatever is left.
	if _, _, err := cn.CreateVnic(ctx, vc); err != nil {
		t.Fatal(err)
	}
	cn.Close()
	if failed, err := ResetNetwork(Config{Netns: node.Path()}); err != nil {
		t.Fatalf("ResetNetwork: %v %v", failed, err)
	}
	if l := node.CiaoLinks(t); len(l) != 0 {
		t.Fatalf("reset left %v", l)
	}

	cfg := DefaultConfig()
	cfg.Netns, cfg.Tunnel, cfg.Logger = node.Path(), TunnelGRE, testLogger{T: t}
	gcn, err := NewComputeNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gcn.Close()
	_, _, err = gcn.CreateVnic(ctx, vc)
	if errors.Is(err, ErrGREUnavailable) {
		if l := node.CiaoLinks(t); len(l) != 0 {
			t.Fatalf("failed gretap left %v", l)
		}
		t.Skipf("gretap is not available in this kernel (the ip_gre module is missing); this test skips even under CI, where the kernel lacks it too: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gcn.DestroyVnic(ctx, vc); err != nil {
		t.Fatal(err)
	}
}

// TestCnciVnicMacvtap: a CNCI VM's macvtap on a network node: bridge mode
// on the compute link, the CNCI MAC, its alias; created once, removed.
func TestCnciVnicMacvtap(t *testing.T) {
	requireNetAdmin(t)
	ul := nettest.NewUnderlay(t)
	node, ip := ul.Attach(t, "nn")
	cfg := DefaultConfig()
	cfg.Netns, cfg.ComputeIP = node.Path(), ip
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	if _, err := CreateCnciVnic(cfg, "tenant", "vnic", net.HardwareAddr{0x01, 0, 0, 0, 0, 1}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("multicast MAC: %v", err)
	}
	v, err := CreateCnciVnic(cfg, "tenant", "vnic", mac)
	if err != nil {
		t.Fatal(err)
	}
	again, err := CreateCnciVnic(cfg, "tenant", "vnic", mac)
	if err != nil || again.Name != v.Name {
		t.Fatalf("second create: %+v %v (first %+v)", again, err, v)
	}
	l, err := node.Handle(t).LinkByName(v.Name)
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := l.(*netlink.Macvtap)
	if !ok || mv.Mode != netlink.MACVLAN_MODE_BRIDGE || l.Attrs().HardwareAddr.String() != mac.String() ||
		l.Attrs().Alias != "cncivnic_tenant_vnic" || l.Attrs().TxQLen != 500 {
		t.Fatalf("macvtap %T %+v", l, l.Attrs())
	}
	if err := DestroyCnciVnic(cfg, "tenant", "vnic"); err != nil {
		t.Fatal(err)
	}
	if ls := node.CiaoLinks(t); len(ls) != 0 {
		t.Fatalf("left %v", ls)
	}
}

// TestRebuildRemovesHalfMadeSubnets: a bridge left without its tunnel (an
// agent that died creating it) and a tunnel without its bridge are
// removed when the node is rebuilt; a complete subnet stays.
func TestRebuildRemovesHalfMadeSubnets(t *testing.T) {
	requireNetAdmin(t)
	ul := nettest.NewUnderlay(t)
	node, _ := ul.Attach(t, "cn")
	node.MustRun(t, "ip", "link", "add", "sbr_dead", "type", "bridge")
	node.MustRun(t, "ip", "link", "set", "sbr_dead", "alias", "br_t_172.16.3.0/24_c_10.77.0.50")
	node.MustRun(t, "ip", "link", "add", "sgt_dead", "type", "vxlan", "id", "200620", "dstport", "4789")
	node.MustRun(t, "ip", "link", "set", "sgt_dead", "alias", "gre_t_172.16.4.0/24_c_10.77.0.50")
	cn := newTestCN(t, node)
	defer cn.Close()
	if l := node.CiaoLinks(t); len(l) != 0 || cn.Subnets() != 0 {
		t.Fatalf("left %v, %d subnets", l, cn.Subnets())
	}
}

// TestResetVethPairs: deleting one end of a container VNIC's veth removes
// its peer, which the hard reset then finds gone; that is not a failure
// (ciao-launcher -hard-reset exited 1 on every node with a container).
func TestResetVethPairs(t *testing.T) {
	requireNetAdmin(t)
	node := nettest.NewNS(t, "cn")
	h := node.Handle(t)
	for i := range 3 {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("%s_%d", PrefixPeer, i)},
			PeerName: fmt.Sprintf("%s_%d", PrefixVnic, i)}
		if err := h.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
	}
	if failed, err := ResetNetwork(Config{Netns: node.Path()}); err != nil {
		t.Fatalf("ResetNetwork: %v %v", failed, err)
	}
	if l := node.CiaoLinks(t); len(l) != 0 {
		t.Fatalf("reset left %v", l)
	}
}
