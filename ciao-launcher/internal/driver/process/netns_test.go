package process

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking/nettest"
)

// TestVnicBadInput: a VNIC without an IPv4 address/prefix is a bad spec
// (nothing started, no namespace); a VNIC naming no link fails the launch
// and leaves no namespace either.
func TestVnicBadInput(t *testing.T) {
	d := New(DefaultConfig())
	d.cfg.CgroupRoot = ""
	ud := []byte("#ciao-process\nruncmd:\n  - [ /bin/sleep, 300 ]\n")
	for _, tc := range []struct {
		name string
		addr net.IPNet
		gw   net.IP
	}{
		{"no address", net.IPNet{}, nil},
		{"no prefix", net.IPNet{IP: net.ParseIP("172.16.0.2")}, nil},
		{"IPv6", net.IPNet{IP: net.ParseIP("fd00::2"), Mask: net.CIDRMask(64, 128)}, nil},
		{"IPv6 gateway", net.IPNet{IP: net.ParseIP("172.16.0.2"), Mask: net.CIDRMask(24, 32)}, net.ParseIP("fd00::1")},
	} {
		dir := t.TempDir()
		spec := driver.Spec{InstanceUUID: "bad", Dir: dir, UserData: ud, VnicPeer: "svp_bad", VnicAddr: tc.addr, VnicGateway: tc.gw}
		if _, err := d.Start(context.Background(), spec); !errors.Is(err, driver.ErrBadSpec) {
			t.Errorf("%s: Start: %v, want ErrBadSpec", tc.name, err)
		}
		if _, err := os.Stat(NetnsPath(dir)); !os.IsNotExist(err) {
			t.Errorf("%s: namespace file left: %v", tc.name, err)
		}
		if _, err := os.Stat(dir + "/stdout.log"); !os.IsNotExist(err) {
			t.Errorf("%s: the process was started", tc.name)
		}
	}

	nettest.RequireNetAdmin(t)
	node := nettest.NewNS(t, "pnet")
	dir := t.TempDir()
	spec := driver.Spec{InstanceUUID: "nolink", Dir: dir, UserData: ud, VnicPeer: "svp_missing", VnicNetns: node.Path(),
		VnicAddr: net.IPNet{IP: net.ParseIP("172.16.0.2"), Mask: net.CIDRMask(24, 32)}, VnicGateway: net.ParseIP("172.16.0.1")}
	if _, err := d.Start(context.Background(), spec); !errors.Is(err, driver.ErrLaunch) {
		t.Errorf("missing VNIC: Start: %v, want ErrLaunch", err)
	}
	if _, err := os.Stat(NetnsPath(dir)); !os.IsNotExist(err) {
		t.Errorf("missing VNIC: namespace file left: %v", err)
	}
}
