package networking

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Link name prefixes (§3.1). Every link this package creates is named
// <prefix>_<hex> and carries an alias (§3.2) saying what it is.
const (
	PrefixBridge   = "sbr" // tenant-subnet bridge (compute node and CNCI)
	PrefixVnic     = "svn" // VM tap, or host end of a container veth
	PrefixPeer     = "svp" // container end of a veth pair
	PrefixCnciVnic = "svc" // CNCI macvtap/macvlan on a network node
	PrefixTunnel   = "sgt" // tunnel endpoint (VXLAN or gretap)
)

// Alias prefixes.
const (
	aliasBridge   = "br_"
	aliasTunnel   = "gre_"
	aliasVnic     = "vnic_"
	aliasCnciVnic = "cncivnic_"
)

// VXLANPort is the UDP port of every tenant tunnel (§12.1), set explicitly
// because the Linux default is 8472.
const VXLANPort = 4789

// maxVNI bounds a VXLAN network identifier (24 bits).
const maxVNI = 1 << 24

// Sentinel errors. Compare with errors.Is.
var (
	// ErrBadConfig: a VNIC or subnet description is incomplete or wrong
	// (bad subnet, address outside it, missing identifier...). Nothing was
	// created.
	ErrBadConfig = errors.New("networking: invalid configuration")
	// ErrDuplicateVnic: the VNIC id or address is already used by another
	// VNIC of this node. Nothing was created.
	ErrDuplicateVnic = errors.New("networking: duplicate VNIC")
	// ErrNoConcentrator: the VNIC names no CNCI (concentrator id or IP)
	// to tunnel to. Nothing was created.
	ErrNoConcentrator = errors.New("networking: no concentrator")
	// ErrKeyMismatch: a tunnel key does not match its subnet (§2).
	ErrKeyMismatch = errors.New("networking: subnet key does not match the subnet")
	// ErrNoPhysical: no physical interface carries the compute or
	// management address (§4).
	ErrNoPhysical = errors.New("networking: unable to autoconfigure network")
	// ErrClosed: the ComputeNode or Cnci was closed.
	ErrClosed = errors.New("networking: closed")
	// ErrGREUnavailable: the kernel has no gretap support.
	ErrGREUnavailable = errors.New("networking: gretap is not available in this kernel")
)

// SubnetKey is the tunnel key (GRE key, VXLAN VNI) of a subnet: its 4-byte
// network address read as a little-endian uint32 (§2), so 172.16.0.0 gives
// 0x000010AC.
func SubnetKey(subnet net.IPNet) uint32 {
	ip := subnet.IP.Mask(subnet.Mask).To4()
	if ip == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(ip)
}

// CheckSubnet says whether subnet can be a tenant subnet: IPv4, prefix
// 1…30, and a key usable as a VXLAN VNI (below 2^24, §12.1; never
// truncated, which could make two subnets share a segment).
func CheckSubnet(subnet net.IPNet) error {
	if subnet.IP.To4() == nil || len(subnet.Mask) != net.IPv4len {
		return fmt.Errorf("%w: subnet %v is not IPv4", ErrBadConfig, subnet.String())
	}
	ones, bits := subnet.Mask.Size()
	if bits != 32 || ones < 1 || ones > 30 {
		return fmt.Errorf("%w: subnet %v: prefix must be 1 to 30", ErrBadConfig, subnet.String())
	}
	if !subnet.IP.Equal(subnet.IP.Mask(subnet.Mask)) {
		return fmt.Errorf("%w: subnet %v: host bits set", ErrBadConfig, subnet.String())
	}
	if k := SubnetKey(subnet); k == 0 || k >= maxVNI {
		return fmt.Errorf("%w: subnet %v: key %#x does not fit a 24-bit VNI", ErrBadConfig, subnet.String(), k)
	}
	return nil
}

// ParseSubnet parses a tenant subnet CIDR and checks it with CheckSubnet.
func ParseSubnet(s string) (net.IPNet, error) {
	ip, n, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return net.IPNet{}, fmt.Errorf("%w: subnet %q: %v", ErrBadConfig, s, err)
	}
	if !ip.Equal(n.IP) {
		return net.IPNet{}, fmt.Errorf("%w: subnet %q: host bits set", ErrBadConfig, s)
	}
	n.IP = n.IP.To4()
	if n.IP == nil {
		return net.IPNet{}, fmt.Errorf("%w: subnet %q is not IPv4", ErrBadConfig, s)
	}
	return *n, CheckSubnet(*n)
}

// Gateway is the subnet's gateway address, network + 1 (owned by the CNCI).
func Gateway(subnet net.IPNet) net.IP {
	ip := make(net.IP, 4)
	copy(ip, subnet.IP.Mask(subnet.Mask).To4())
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(ip)+1)
	return ip
}

// InstanceMAC is the MAC of the instance with address ip: 02:00 followed by
// the four address bytes (§2). The CNCI's DHCP table uses the same rule.
func InstanceMAC(ip net.IP) net.HardwareAddr {
	v4 := ip.To4()
	if v4 == nil {
		return nil
	}
	return net.HardwareAddr{0x02, 0x00, v4[0], v4[1], v4[2], v4[3]}
}

// SSHPort is the port on the CNCI forwarded to port 22 of the instance
// with address ip (33000 + o3·256 + o4), or 0 when that is not a port.
func SSHPort(ip net.IP) int {
	v4 := ip.To4()
	if v4 == nil {
		return 0
	}
	p := 33000 + int(v4[2])<<8 + int(v4[3])
	if p >= 65535 {
		return 0
	}
	return p
}

// newLinkName returns <prefix>_<random hex> not in used (and marks it),
// trying a bounded number of times (the 2016 loop never advanced, §3.1).
func newLinkName(prefix string, used map[string]bool) (string, error) {
	var b [4]byte
	for range 10 {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		name := fmt.Sprintf("%s_%x", prefix, binary.LittleEndian.Uint32(b[:]))
		if !used[name] {
			used[name] = true
			return name, nil
		}
	}
	return "", fmt.Errorf("networking: no free %s_ link name after 10 tries", prefix)
}

// cnTopology is the identity part shared by the aliases of a compute-node
// subnet: <tenant>_<subnetID>_<concID>_<concIP>.
func cnTopology(c *VnicConfig) string {
	return fmt.Sprintf("%s_%s_%s_%s", c.TenantID, c.SubnetID, c.ConcID, c.ConcIP)
}

func cnBridgeAlias(c *VnicConfig) string { return aliasBridge + cnTopology(c) }
func cnTunnelAlias(c *VnicConfig) string { return aliasTunnel + cnTopology(c) }
func cnVnicAlias(c *VnicConfig) string {
	return aliasVnic + cnTopology(c) + "##" + c.VnicIP.String()
}

// vnicAliasTopology is the topology part of a vnic alias ("" if alias is
// not one).
func vnicAliasTopology(alias string) string {
	if !strings.HasPrefix(alias, aliasVnic) {
		return ""
	}
	t, _, ok := strings.Cut(strings.TrimPrefix(alias, aliasVnic), "##")
	if !ok {
		return ""
	}
	return t
}

// subnetAliasPart is the subnet as it appears in CNCI aliases: the CIDR
// with "/" replaced by "+".
func subnetAliasPart(subnet net.IPNet) string {
	return strings.ReplaceAll(subnet.String(), "/", "+")
}

func cnciBridgeAlias(subnet net.IPNet) string { return aliasBridge + subnetAliasPart(subnet) }
func cnciTunnelAlias(subnet net.IPNet) string { return aliasTunnel + subnetAliasPart(subnet) }
func cnciGRETunnelAlias(subnet net.IPNet, cnIP net.IP) string {
	return aliasTunnel + subnetAliasPart(subnet) + "##" + cnIP.String()
}

// parseCnciAlias parses the subnet of a CNCI bridge or tunnel alias
// ("br_172.16.0.0+24", "gre_172.16.0.0+24[##10.0.0.5]").
func parseCnciAlias(alias, prefix string) (net.IPNet, net.IP, bool) {
	rest, ok := strings.CutPrefix(alias, prefix)
	if !ok {
		return net.IPNet{}, nil, false
	}
	sub, cn, hasCN := strings.Cut(rest, "##")
	_, n, err := net.ParseCIDR(strings.ReplaceAll(sub, "+", "/"))
	if err != nil || strings.Contains(sub, "_") {
		return net.IPNet{}, nil, false
	}
	var cnIP net.IP
	if hasCN {
		if cnIP = net.ParseIP(cn).To4(); cnIP == nil {
			return net.IPNet{}, nil, false
		}
	}
	n.IP = n.IP.To4()
	return *n, cnIP, true
}
