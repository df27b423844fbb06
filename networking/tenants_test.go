package networking

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/ciao-project/ciao/networking/nettest"
)

// tenant is one tenant of the multi-node test: a subnet, its CNCI and its
// instances.
type tenant struct {
	id     string
	subnet net.IPNet
	cnciNS nettest.NS
	runDir string
	cnciIP net.IP
	cnci   *Cnci
	insts  []*instance
	vnics  []VnicConfig
	nodes  []nettest.NS // node of each instance
}

func (tn *tenant) vnicConfig(i int, ip net.IP) VnicConfig {
	return VnicConfig{
		Role: TenantContainer, VnicIP: ip, VnicMAC: InstanceMAC(ip), Subnet: tn.subnet, ConcIP: tn.cnciIP,
		VnicID: fmt.Sprintf("vnic-%s-%d", tn.id, i), InstanceID: fmt.Sprintf("inst-%s-%d", tn.id, i),
		TenantID: tn.id, SubnetID: tn.subnet.String(), ConcID: "cnci-" + tn.id,
	}
}

// forward does what the scheduler and the CNCI agent do with a tunnel
// event (that path is tested in ciao-cnci-agent).
func (tn *tenant) forward(t *testing.T, ev *TunnelEvent) {
	t.Helper()
	if ev == nil {
		return
	}
	var err error
	if ev.Added {
		_, err = tn.cnci.AddRemoteSubnet(context.Background(), ev.Subnet, ev.SubnetKey, ev.CnIP)
	} else {
		err = tn.cnci.DelRemoteSubnet(context.Background(), ev.Subnet, ev.SubnetKey, ev.CnIP)
	}
	if err != nil {
		t.Fatalf("CNCI of %s: %v", tn.id, err)
	}
}

func newTestCnci(t *testing.T, n nettest.NS, runDir string) *Cnci {
	t.Helper()
	cfg := CnciConfig{Config: DefaultConfig(), RunDir: runDir, Firewall: true}
	cfg.Netns = n.Path()
	cfg.Logger = testLogger{T: t}
	c, err := NewCnci(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("NewCnci: %v", err)
	}
	return c
}

func newTestCN(t *testing.T, n nettest.NS) *ComputeNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Netns = n.Path()
	cfg.Logger = testLogger{T: t}
	cn, err := NewComputeNode(cfg)
	if err != nil {
		t.Fatalf("NewComputeNode: %v", err)
	}
	return cn
}

// TestTenantNetworks: two tenants, each with a CNCI and an instance on each
// of two compute nodes. A's instances get their addresses from their
// CNCI's DHCP, reach each other across nodes, their gateway, the outside
// (masquerade), and are reachable by SSH forwarding and a public IP; B's
// never reach A's, and not one of B's frames shows on A's bridges.
// Restarted compute nodes and CNCIs rebuild their state from the kernel
// and traffic still flows; deleting the VNICs removes every interface.
func TestTenantNetworks(t *testing.T) {
	requireNetAdmin(t)
	requireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter")
	ctx := testCtx(t)
	ul := nettest.NewUnderlay(t)
	n1, _ := ul.Attach(t, "cn1")
	n2, _ := ul.Attach(t, "cn2")
	nodes := []nettest.NS{n1, n2}
	cns := []*ComputeNode{newTestCN(t, n1), newTestCN(t, n2)}

	tenants := []*tenant{
		{id: "tenantA", subnet: mustSubnet(t, "172.16.0.0/24")},
		{id: "tenantB", subnet: mustSubnet(t, "172.16.1.0/24")},
	}
	for _, tn := range tenants {
		tn.cnciNS, tn.cnciIP = ul.Attach(t, "cnci")
		tn.runDir = t.TempDir()
		tn.cnci = newTestCnci(t, tn.cnciNS, tn.runDir)
		t.Cleanup(func() { _ = tn.cnci.Shutdown(context.Background()) })
		for i := range nodes {
			ip := host(tn.subnet, 2+i)
			vc := tn.vnicConfig(i, ip)
			v, ev, err := cns[i].CreateVnic(ctx, vc)
			if err != nil {
				t.Fatalf("CreateVnic %s on node %d: %v", vc.VnicID, i, err)
			}
			if ev == nil || !ev.Added || !ev.CnIP.Equal(cns[i].ComputeAddr().IP) || ev.SubnetKey != SubnetKey(tn.subnet) {
				t.Fatalf("first VNIC of %s on node %d: tunnel event %+v", tn.id, i, ev)
			}
			tn.forward(t, ev)
			tn.insts = append(tn.insts, plug(t, nodes[i], v, ip))
			tn.vnics = append(tn.vnics, vc)
			tn.nodes = append(tn.nodes, nodes[i])
		}
	}
	A, B := tenants[0], tenants[1]

	t.Run("dhcp", func(t *testing.T) {
		for _, tn := range tenants {
			for _, in := range tn.insts {
				if got := in.dhcp(t); !got.Equal(in.ip) {
					t.Errorf("%s instance got %v by DHCP, want %v", tn.id, got, in.ip)
				}
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("same tenant across nodes", func(t *testing.T) {
		for _, tn := range tenants {
			if !tn.insts[0].ns.Ping(tn.insts[1].ip) {
				t.Errorf("%s: instance on node 1 cannot ping its peer on node 2", tn.id)
			}
			if !tn.insts[1].ns.Ping(Gateway(tn.subnet)) {
				t.Errorf("%s: instance cannot ping its gateway", tn.id)
			}
		}
	})

	t.Run("isolation", func(t *testing.T) {
		// Watch every bridge of tenant A for anything of B's.
		var patterns [][]byte
		for _, in := range B.insts {
			patterns = append(patterns, in.mac, in.ip.To4())
		}
		var sniffers []*nettest.Sniffer
		for i, cn := range cns {
			v, _, err := cn.CreateVnic(ctx, A.vnics[i]) // idempotent: returns the bridge
			if err != nil {
				t.Fatal(err)
			}
			sniffers = append(sniffers, nettest.Sniff(t, nodes[i], v.Bridge, patterns...))
		}
		sa := A.cnci.Subnets()
		sniffers = append(sniffers, nettest.Sniff(t, A.cnciNS, sa[0].Bridge, patterns...))
		// A's own traffic during the window shows the capture works.
		control := nettest.Sniff(t, nodes[1], mustBridge(t, cns[1], A.vnics[1]), A.insts[0].mac)

		// Every check must fail; they run side by side (each waits 1 s).
		var wg sync.WaitGroup
		check := func(what string, b *instance, ip net.IP, f func(nettest.NS, net.IP) bool) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f(b.ns, ip) {
					t.Errorf("tenant B instance %v: %s %v answered", b.ip, what, ip)
				}
			}()
		}
		for _, b := range B.insts {
			for _, a := range A.insts {
				check("ping", b, a.ip, nettest.NS.PingOnce)
				check("arping", b, a.ip, nettest.NS.Arping)
			}
			check("arping", b, Gateway(A.subnet), nettest.NS.Arping)
		}
		wg.Wait()
		if !A.insts[0].ns.Ping(A.insts[1].ip) {
			t.Error("A lost its own connectivity during the isolation check")
		}
		for _, s := range append(sniffers, control) {
			s.Stop()
		}
		for i, s := range sniffers {
			if n := s.Matched.Load(); n != 0 {
				t.Errorf("A bridge %d saw %d frames of tenant B (of %d)", i, n, s.Seen.Load())
			}
		}
		if control.Matched.Load() == 0 {
			t.Errorf("control capture saw none of A's own frames: the capture does not work")
		}
	})

	t.Run("nat and ssh forwarding", func(t *testing.T) {
		if !A.insts[0].ns.Ping(net.ParseIP(ul.Prefix + ".254")) {
			t.Error("A instance cannot reach the underlay through its CNCI's masquerade")
		}
		nettest.ServeTCP(t, A.insts[1].ns, 22, "ssh-A2")
		got, err := nettest.DialTCP(t, ul.NS, fmt.Sprintf("%s:%d", A.cnciIP, SSHPort(A.insts[1].ip)))
		if err != nil || got != "ssh-A2" {
			t.Errorf("SSH port forwarding to %v: %q, %v", A.insts[1].ip, got, err)
		}
		pub := net.ParseIP(ul.Prefix + ".200")
		if err := A.cnci.AssignPublicIP(ctx, pub, A.insts[1].ip); err != nil {
			t.Fatal(err)
		}
		got, err = nettest.DialTCP(t, ul.NS, pub.String()+":22")
		if err != nil || got != "ssh-A2" {
			t.Errorf("public IP %v → %v: %q, %v", pub, A.insts[1].ip, got, err)
		}
		if err := A.cnci.ReleasePublicIP(ctx, pub, A.insts[1].ip); err != nil {
			t.Fatal(err)
		}
		if _, err := nettest.DialTCP(t, ul.NS, pub.String()+":22"); err == nil {
			t.Error("released public IP still answers")
		}
	})

	t.Run("restart rebuilds from the kernel", func(t *testing.T) {
		for i := range cns {
			cns[i].Close()
			cns[i] = newTestCN(t, nodes[i])
			if cns[i].Subnets() != 2 || cns[i].Vnics() != 2 {
				t.Errorf("node %d rebuilt %d subnets, %d VNICs; want 2, 2", i, cns[i].Subnets(), cns[i].Vnics())
			}
		}
		for _, tn := range tenants {
			tn.cnci.Close()
			tn.cnci = newTestCnci(t, tn.cnciNS, tn.runDir)
			s := tn.cnci.Subnets()
			if len(s) != 1 || len(s[0].Remotes) != 2 {
				t.Errorf("CNCI of %s rebuilt %+v; want one subnet with two compute nodes", tn.id, s)
			}
		}
		if !A.insts[0].ns.Ping(A.insts[1].ip) {
			t.Error("A's instances lost each other after the restart")
		}
		// The rebuilt node knows the subnet: a new VNIC makes no tunnel.
		vc := A.vnicConfig(9, host(A.subnet, 9))
		_, ev, err := cns[0].CreateVnic(ctx, vc)
		if err != nil || ev != nil {
			t.Fatalf("VNIC on a rebuilt subnet: event %+v, %v", ev, err)
		}
		if ev, err := cns[0].DestroyVnic(ctx, vc); err != nil || ev != nil {
			t.Fatalf("destroying it: event %+v, %v", ev, err)
		}
		// A fresh DHCP exchange still works through the restarted CNCI.
		if got := A.insts[1].dhcp(t); !got.Equal(A.insts[1].ip) {
			t.Errorf("DHCP after restart gave %v", got)
		}
	})

	t.Run("delete removes the interfaces", func(t *testing.T) {
		for _, tn := range tenants {
			for i, vc := range tn.vnics {
				node := 0
				if tn.nodes[i] == n2 {
					node = 1
				}
				ev, err := cns[node].DestroyVnic(ctx, vc)
				if err != nil {
					t.Fatal(err)
				}
				if ev == nil || ev.Added {
					t.Fatalf("last VNIC of %s on node %d: event %+v", tn.id, node, ev)
				}
				tn.forward(t, ev)
				// Twice is fine.
				if ev, err := cns[node].DestroyVnic(ctx, vc); err != nil || ev != nil {
					t.Fatalf("second destroy: %+v, %v", ev, err)
				}
			}
			if s := tn.cnci.Subnets(); len(s) != 1 || len(s[0].Remotes) != 0 {
				t.Errorf("CNCI of %s after the deletes: %+v", tn.id, s)
			}
		}
		for i, n := range nodes {
			if l := n.CiaoLinks(t); len(l) != 0 {
				t.Errorf("node %d keeps %v", i, l)
			}
		}
		for _, tn := range tenants {
			if err := tn.cnci.Shutdown(ctx); err != nil {
				t.Errorf("CNCI shutdown: %v", err)
			}
			if l := tn.cnciNS.CiaoLinks(t); len(l) != 0 {
				t.Errorf("CNCI of %s keeps %v", tn.id, l)
			}
		}
	})
}

func mustBridge(t *testing.T, cn *ComputeNode, vc VnicConfig) string {
	t.Helper()
	v, _, err := cn.CreateVnic(context.Background(), vc)
	if err != nil {
		t.Fatal(err)
	}
	return v.Bridge
}
