package networking

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/ciao-project/ciao/networking/nettest"
)

// The tests in this package model nodes as network namespaces on one
// machine (see internal/nettest). Instances are namespaces too: a
// container is the peer of a VNIC veth moved into one.

var (
	requireNetAdmin = nettest.RequireNetAdmin
	requireTools    = nettest.RequireTools
)

type testLogger = nettest.Logger

// instance is a container modelled as a namespace holding the VNIC's
// veth peer as eth0.
type instance struct {
	ns  nettest.NS
	ip  net.IP
	mac net.HardwareAddr
}

// plug moves a container VNIC's peer into a fresh instance namespace as
// eth0, up, without an address (DHCP gives it).
func plug(t testing.TB, node nettest.NS, v *Vnic, ip net.IP) *instance {
	t.Helper()
	in := &instance{ns: nettest.NewNS(t, "in"), ip: ip, mac: InstanceMAC(ip)}
	node.MustRun(t, "ip", "link", "set", v.PeerName, "netns", in.ns.Name)
	in.ns.MustRun(t, "ip", "link", "set", v.PeerName, "name", "eth0")
	in.ns.MustRun(t, "ip", "link", "set", "eth0", "up")
	return in
}

func (in *instance) dhcp(t testing.TB) net.IP { t.Helper(); return in.ns.DHCP(t) }

func mustSubnet(t testing.TB, s string) net.IPNet {
	t.Helper()
	n, err := ParseSubnet(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// host is subnet address + i.
func host(n net.IPNet, i int) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(n.IP.To4())+uint32(i))
	return ip
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
