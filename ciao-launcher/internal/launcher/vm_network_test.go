package launcher

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// waitConsole polls an instance's serial console until it holds want.
func waitConsole(t *testing.T, cfg Config, id, want string) {
	t.Helper()
	console := filepath.Join(cfg.StateDir, id, "console.log")
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(console); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling a file qemu writes, with a deadline
	}
	b, _ := os.ReadFile(console)
	t.Fatalf("instance %s: no %q on the console:\n%s", id, want, b)
}

// TestVMTenantNetworking: a real TCG VM started with a networking section
// on a launcher whose node is a network namespace gets its tap VNIC there
// (QEMU inherits the tap opened inside that namespace), asks for an
// address by DHCP and gets the START's private IP from the CNCI (a
// namespace on the same underlay, reached through the subnet's tunnel),
// as its console says; the CNCI's namespace then reaches the VM by ping.
func TestVMTenantNetworking(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter")
	tn := newTenantNet(t)

	srv := newTestServer(t)
	cfg := vmConfig(t, srv)
	cfg.Network = true
	tn.onNode(&cfg)
	l := startLauncher(t, srv, cfg)
	fakeCNCI := tn.agent(t, srv)
	srv.NextConcentratorAdded(t)

	const subnet, vmIP = "172.16.0.0/24", "172.16.0.2"
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, vmInstance, "---\n#cloud-config\n...\n",
		func(c *payloads.StartCmd) { c.ImageUUID = vmImage }, testutil.StartMemMB(256),
		tn.vnic(vmIP, subnet)))
	ta := fakeCNCI.NextTenantAdded(t)
	tn.tunnel(t, ta)
	waitStats(t, srv, "VM active", stateIs(vmInstance, payloads.InstanceActive))
	if v := vnicLink(t, tn.cnNS.Handle(t), vmIP); v == nil || v.Type() != "tuntap" {
		t.Fatalf("no tap VNIC for the VM in the node's namespace: %v", v)
	}
	waitMarker(t, cfg, vmInstance)
	waitConsole(t, cfg, vmInstance, testutil.VMNetMarker+" eth0 "+vmIP+"/24")
	if !tn.cnciNS.Ping(net.ParseIP(vmIP)) {
		t.Fatalf("the CNCI cannot ping the VM at %s", vmIP)
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(vmInstance, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != vmInstance {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	if ls := tn.cnNS.CiaoLinks(t); len(ls) != 0 {
		t.Errorf("node keeps %v after the DELETE", ls)
	}
}
