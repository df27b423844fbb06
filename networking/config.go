package networking

import (
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
)

// TunnelKind is how a tenant subnet's bridge reaches its CNCI.
type TunnelKind int

const (
	// TunnelVXLAN is the default: VXLAN, VNI = subnet key, UDP 4789
	// (spec §12).
	TunnelVXLAN TunnelKind = iota
	// TunnelGRE is the 2016 gretap tunnel, key = subnet key. It needs the
	// ip_gre kernel module.
	TunnelGRE
)

func (k TunnelKind) String() string {
	if k == TunnelGRE {
		return "gre"
	}
	return "vxlan"
}

// ParseTunnelKind parses "vxlan" or "gre".
func ParseTunnelKind(s string) (TunnelKind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "vxlan", "":
		return TunnelVXLAN, nil
	case "gre", "gretap":
		return TunnelGRE, nil
	}
	return 0, fmt.Errorf("%w: tunnel kind %q (want vxlan or gre)", ErrBadConfig, s)
}

// Config is what a ComputeNode or a Cnci needs to know about its node.
// Start from DefaultConfig.
type Config struct {
	// Netns is the network namespace file to work in ("" = the
	// process's own), e.g. /var/run/netns/<name>: tests and the dev
	// cluster model several nodes on one machine this way.
	Netns string
	// Tunnel is the tunnel kind (VXLAN unless configured otherwise).
	Tunnel TunnelKind
	// ComputeIP, if set, is the local tunnel endpoint; otherwise the
	// first address inside ComputeNets on a physical link is (§4).
	ComputeIP net.IP
	// ComputeNets and MgmtNets classify physical addresses; empty means
	// "any", which is only accepted with a single candidate interface.
	ComputeNets, MgmtNets []net.IPNet
	// Logger receives what the package does (nil: nothing).
	Logger Logger
}

// DefaultConfig is a node working in its own namespace with VXLAN tunnels.
func DefaultConfig() Config { return Config{Tunnel: TunnelVXLAN} }

// Validate checks the configuration without touching the kernel.
func (c *Config) Validate() error {
	if c.Tunnel != TunnelVXLAN && c.Tunnel != TunnelGRE {
		return fmt.Errorf("%w: tunnel kind %d", ErrBadConfig, int(c.Tunnel))
	}
	if c.ComputeIP != nil && c.ComputeIP.To4() == nil {
		return fmt.Errorf("%w: compute IP %v is not IPv4", ErrBadConfig, c.ComputeIP)
	}
	return nil
}

func (c *Config) logger() Logger {
	if c.Logger == nil {
		return nopLogger{}
	}
	return c.Logger
}

// PhysicalAddr is a compute-network address of the node and its link.
type PhysicalAddr struct {
	IP   net.IP
	Link string
	MAC  net.HardwareAddr
}

// ours says whether a link name is one this package makes.
func ours(name string) bool {
	for _, p := range []string{PrefixBridge, PrefixVnic, PrefixPeer, PrefixCnciVnic, PrefixTunnel} {
		if strings.HasPrefix(name, p+"_") {
			return true
		}
	}
	return false
}

// discover finds the compute address (§4): candidate links are physical
// ones (device, bond, vlan, macvlan, bridge, and veth/dummy as used by
// namespaced nodes), never loopback, docker*, virbr* or our own links.
func discover(s *space, c *Config) ([]PhysicalAddr, error) {
	links, err := s.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	inAny := func(ip net.IP, nets []net.IPNet) bool {
		if len(nets) == 0 {
			return true
		}
		for _, n := range nets {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
	var compute []PhysicalAddr
	mgmt, candidates := 0, 0
	for _, l := range links {
		a := l.Attrs()
		switch l.Type() {
		case "device", "bond", "vlan", "macvlan", "bridge", "veth", "dummy":
		default:
			continue
		}
		if a.Flags&net.FlagLoopback != 0 || strings.HasPrefix(a.Name, "docker") ||
			strings.HasPrefix(a.Name, "virbr") || ours(a.Name) {
			continue
		}
		addrs, err := s.h.AddrList(l, netlink.FAMILY_V4)
		if err != nil || len(addrs) == 0 {
			continue
		}
		candidates++
		for _, ad := range addrs {
			if c.ComputeIP != nil {
				if ad.IP.Equal(c.ComputeIP) {
					compute = append(compute, PhysicalAddr{IP: ad.IP.To4(), Link: a.Name, MAC: a.HardwareAddr})
				}
				continue
			}
			if inAny(ad.IP, c.MgmtNets) {
				mgmt++
			}
			if inAny(ad.IP, c.ComputeNets) {
				compute = append(compute, PhysicalAddr{IP: ad.IP.To4(), Link: a.Name, MAC: a.HardwareAddr})
			}
		}
	}
	if c.ComputeIP != nil {
		if len(compute) == 0 {
			return nil, fmt.Errorf("%w: compute IP %v is on no physical link", ErrNoPhysical, c.ComputeIP)
		}
		return compute, nil
	}
	if (len(c.ComputeNets) == 0 || len(c.MgmtNets) == 0) && candidates > 1 {
		return nil, fmt.Errorf("%w: %d candidate interfaces and no compute/management networks configured", ErrNoPhysical, candidates)
	}
	if len(compute) == 0 || mgmt == 0 {
		return nil, fmt.Errorf("%w: no compute or management address found", ErrNoPhysical)
	}
	return compute, nil
}
