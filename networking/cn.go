package networking

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
)

// VnicRole is what a VNIC is for.
type VnicRole int

const (
	// TenantVM is a tap for a VM.
	TenantVM VnicRole = iota + 1
	// TenantContainer is a veth pair whose peer goes into a container.
	TenantContainer
)

// ContainerMTU is the MTU of container VNICs when none is given: room for
// the tunnel overhead on a 1500-byte underlay (DHCP gives VMs the same).
const ContainerMTU = 1400

// VnicConfig describes one instance's VNIC on a compute node, from the
// START payload's networking section (launcher spec §10.2).
type VnicConfig struct {
	Role    VnicRole
	VnicIP  net.IP
	VnicMAC net.HardwareAddr
	MTU     int // containers only; 0 = ContainerMTU
	Subnet  net.IPNet
	ConcIP  net.IP
	// VnicID is the VNIC's uuid; InstanceID, TenantID and ConcID the
	// instance's, its tenant's and its CNCI's. SubnetID names the subnet
	// (the launcher uses the CIDR text).
	VnicID, InstanceID, TenantID, SubnetID, ConcID string
}

// Validate checks a VNIC description; a failure wraps ErrBadConfig or
// ErrNoConcentrator.
func (c *VnicConfig) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrBadConfig}, a...)...) }
	switch {
	case c.Role != TenantVM && c.Role != TenantContainer:
		return bad("unknown VNIC role %d", int(c.Role))
	case c.TenantID == "" || c.SubnetID == "" || c.VnicID == "":
		return bad("tenant, subnet and VNIC ids are required")
	case len(c.VnicMAC) != 6:
		return bad("VNIC MAC %q", c.VnicMAC.String())
	case c.ConcID == "" || c.ConcIP == nil:
		return fmt.Errorf("%w: VNIC %s names no CNCI (id %q, IP %v)", ErrNoConcentrator, c.VnicID, c.ConcID, c.ConcIP)
	case c.ConcIP.To4() == nil || c.ConcIP.IsUnspecified():
		return fmt.Errorf("%w: CNCI IP %v is not a usable IPv4 address", ErrNoConcentrator, c.ConcIP)
	case c.MTU < 0 || (c.MTU > 0 && c.MTU < 576):
		return bad("MTU %d", c.MTU)
	}
	for _, s := range []string{c.TenantID, c.SubnetID, c.ConcID} {
		if strings.ContainsAny(s, "_#") {
			return bad("identifier %q contains _ or #", s)
		}
	}
	if err := CheckSubnet(c.Subnet); err != nil {
		return err
	}
	ip := c.VnicIP.To4()
	if ip == nil || !c.Subnet.Contains(ip) {
		return bad("VNIC IP %v is not in subnet %v", c.VnicIP, c.Subnet.String())
	}
	if ip.Equal(c.Subnet.IP) || ip.Equal(Gateway(c.Subnet)) || ip.Equal(broadcast(c.Subnet)) {
		return bad("VNIC IP %v is the network, gateway or broadcast address of %v", ip, c.Subnet.String())
	}
	return nil
}

func broadcast(n net.IPNet) net.IP {
	ip := make(net.IP, 4)
	for i := range ip {
		ip[i] = n.IP.To4()[i] | ^n.Mask[i]
	}
	return ip
}

// Vnic is a created VNIC.
type Vnic struct {
	// Name is the link name (tap, or host end of the veth) and Alias
	// its alias.
	Name, Alias string
	// PeerName is the container end of a veth pair (containers only):
	// the caller (Docker, or a test) moves it into the container.
	PeerName string
	// TapDevice is set for a CNCI VM's macvtap: /dev/tap<ifindex>.
	TapDevice string
	// Bridge and BridgeAlias are the subnet bridge's name and alias;
	// Gateway is the subnet's gateway (the CNCI).
	Bridge, BridgeAlias string
	Gateway             net.IP
}

// TunnelEvent says that a subnet's tunnel to its CNCI was created (first
// instance of the subnet on the node) or removed (last one gone): the
// launcher sends TenantAdded / TenantRemoved with these fields.
type TunnelEvent struct {
	Added     bool
	CnciIP    net.IP
	CnIP      net.IP
	ConcID    string
	TenantID  string
	SubnetID  string
	SubnetKey uint32
	Subnet    net.IPNet
}

// cnBridge is one tenant subnet present on the node.
type cnBridge struct {
	bridge, tunnel linkInfo
	vnics          map[string]bool // vnic aliases
	containers     bool
}

// cnVnic is one VNIC of the node.
type cnVnic struct {
	link   linkInfo
	id     string // VNIC uuid ("" when rebuilt from the kernel)
	bridge string // bridge alias
}

// ComputeNode manages the tenant networking of a compute node (§5): per
// tenant subnet a bridge and a tunnel to the CNCI, and a tap or veth per
// instance. Its only persistent state is the links' aliases: a new
// ComputeNode (say after a launcher restart) rebuilds itself from them.
//
// mu serialises every operation and guards the maps; VNIC creation is a
// few netlink calls, so one lock costs little and keeps creation and the
// removal of a subnet's last VNIC from racing.
type ComputeNode struct {
	cfg   Config
	log   Logger
	space *space
	local PhysicalAddr

	mu      sync.Mutex
	names   map[string]bool      // link names in use
	bridges map[string]*cnBridge // bridge alias →
	vnics   map[string]*cnVnic   // vnic alias →
	ids     map[string]string    // VNIC uuid → vnic alias
}

// NewComputeNode opens the node's namespace, finds its compute address and
// rebuilds the topology from the links' aliases. Close releases it (the
// links stay).
func NewComputeNode(cfg Config) (*ComputeNode, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := openSpace(cfg.Netns)
	if err != nil {
		return nil, err
	}
	cn := &ComputeNode{cfg: cfg, log: cfg.logger(), space: s}
	phys, err := discover(s, &cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	cn.local = phys[0]
	if err := cn.rebuild(); err != nil {
		s.close()
		return nil, err
	}
	return cn, nil
}

// Close releases the netlink handle; the links are untouched. After Close
// CreateVnic and DestroyVnic fail with ErrClosed.
func (cn *ComputeNode) Close() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.space.close()
}

// ComputeAddr is the node's compute address (tunnel endpoint) and link.
func (cn *ComputeNode) ComputeAddr() PhysicalAddr { return cn.local }

// rebuild reads the topology back from the links' aliases (§5.2).
func (cn *ComputeNode) rebuild() error {
	links, err := cn.space.h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.names = map[string]bool{}
	cn.bridges = map[string]*cnBridge{}
	cn.vnics = map[string]*cnVnic{}
	cn.ids = map[string]string{}
	tunnels := map[string]linkInfo{}
	var vnics []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		cn.names[a.Name] = true
		switch {
		case strings.HasPrefix(a.Alias, aliasBridge) && l.Type() == "bridge":
			cn.bridges[a.Alias] = &cnBridge{bridge: infoOf(l), vnics: map[string]bool{}}
		case strings.HasPrefix(a.Alias, aliasTunnel):
			tunnels[a.Alias] = infoOf(l)
		case strings.HasPrefix(a.Alias, aliasVnic):
			vnics = append(vnics, l)
		}
	}
	for alias, b := range cn.bridges {
		tAlias := aliasTunnel + strings.TrimPrefix(alias, aliasBridge)
		t, ok := tunnels[tAlias]
		if !ok {
			if cn.referenced(alias, vnics) {
				return fmt.Errorf("networking: rebuild: bridge %s (%s) has no tunnel", b.bridge.name, alias)
			}
			// Half-made by a process that died creating it: remove.
			cn.log.Warningf("networking: rebuild: removing bridge %s (%s), left without tunnel or VNICs", b.bridge.name, alias)
			_ = cn.space.deleteLink(b.bridge)
			delete(cn.bridges, alias)
			continue
		}
		b.tunnel = t
		delete(tunnels, tAlias)
	}
	for alias, t := range tunnels {
		cn.log.Warningf("networking: rebuild: removing tunnel %s (%s), left without its bridge", t.name, alias)
		_ = cn.space.deleteLink(t)
	}
	for _, l := range vnics {
		a := l.Attrs()
		top := vnicAliasTopology(a.Alias)
		b, ok := cn.bridges[aliasBridge+top]
		if !ok {
			return fmt.Errorf("networking: rebuild: VNIC %s (%s) has no bridge", a.Name, a.Alias)
		}
		b.vnics[a.Alias] = true
		if l.Type() == "veth" {
			b.containers = true
		}
		cn.vnics[a.Alias] = &cnVnic{link: infoOf(l), bridge: aliasBridge + top}
	}
	cn.log.Infof("networking: compute node %v: %d subnets, %d VNICs rebuilt from link aliases", cn.local.IP, len(cn.bridges), len(cn.vnics))
	return nil
}

// referenced says whether a VNIC link's alias points at bridge alias.
func (cn *ComputeNode) referenced(bridgeAlias string, vnics []netlink.Link) bool {
	for _, l := range vnics {
		if aliasBridge+vnicAliasTopology(l.Attrs().Alias) == bridgeAlias {
			return true
		}
	}
	return false
}

// CreateVnic creates the VNIC of an instance, and the subnet's bridge and
// tunnel if it is the subnet's first instance on the node, in which case
// it also returns the tunnel event to report. It is idempotent: the VNIC
// of an existing alias is returned as it is (RESTART). On failure nothing
// it created is left behind.
func (cn *ComputeNode) CreateVnic(ctx context.Context, c VnicConfig) (*Vnic, *TunnelEvent, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.Subnet.IP = c.Subnet.IP.To4()
	vAlias, bAlias, tAlias := cnVnicAlias(&c), cnBridgeAlias(&c), cnTunnelAlias(&c)
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.space.h == nil {
		return nil, nil, ErrClosed
	}

	if v, ok := cn.vnics[vAlias]; ok && !cn.linkExists(v.link) {
		// Gone behind our back: a container's veth dies with its
		// namespace when the container stops. Make it again.
		cn.forgetVnic(vAlias, v)
	}
	if v, ok := cn.vnics[vAlias]; ok {
		if v.id != "" && v.id != c.VnicID {
			return nil, nil, fmt.Errorf("%w: address %v of subnet %s is VNIC %s's", ErrDuplicateVnic, c.VnicIP, c.SubnetID, v.id)
		}
		if v.id == "" {
			v.id = c.VnicID
			cn.ids[c.VnicID] = vAlias
		}
		return cn.describe(&c, v, vAlias), nil, nil
	}
	if other, ok := cn.ids[c.VnicID]; ok {
		return nil, nil, fmt.Errorf("%w: VNIC %s already exists as %s", ErrDuplicateVnic, c.VnicID, other)
	}

	b, existed := cn.bridges[bAlias]
	var ev *TunnelEvent
	if !existed {
		var err error
		if b, err = cn.createSubnet(&c, bAlias, tAlias); err != nil {
			return nil, nil, err
		}
		ev = cn.event(&c, true)
	}
	link, peer, err := cn.createVnicLink(&c, vAlias, b.bridge)
	if err != nil {
		if !existed {
			cn.removeSubnet(b)
		}
		return nil, nil, err
	}
	if !existed {
		cn.bridges[bAlias] = b
	}
	b.vnics[vAlias] = true
	if c.Role == TenantContainer {
		b.containers = true
	}
	v := &cnVnic{link: link, id: c.VnicID, bridge: bAlias}
	cn.vnics[vAlias] = v
	cn.ids[c.VnicID] = vAlias
	out := cn.describe(&c, v, vAlias)
	out.PeerName = peer
	return out, ev, nil
}

// linkExists says whether a link is still there under its name.
func (cn *ComputeNode) linkExists(li linkInfo) bool {
	l, err := cn.space.h.LinkByIndex(li.index)
	return err == nil && l.Attrs().Name == li.name
}

// forgetVnic drops a VNIC from the maps (not from its bridge's kernel
// state: the caller deals with the link).
func (cn *ComputeNode) forgetVnic(alias string, v *cnVnic) {
	delete(cn.vnics, alias)
	delete(cn.names, v.link.name)
	if v.id != "" {
		delete(cn.ids, v.id)
	}
	if b := cn.bridges[v.bridge]; b != nil {
		delete(b.vnics, alias)
	}
}

func (cn *ComputeNode) describe(c *VnicConfig, v *cnVnic, alias string) *Vnic {
	b := cn.bridges[v.bridge]
	out := &Vnic{Name: v.link.name, Alias: alias, BridgeAlias: v.bridge, Gateway: Gateway(c.Subnet)}
	if b != nil {
		out.Bridge = b.bridge.name
	}
	if c.Role == TenantContainer {
		out.PeerName = PrefixPeer + strings.TrimPrefix(v.link.name, PrefixVnic)
	}
	return out
}

func (cn *ComputeNode) event(c *VnicConfig, added bool) *TunnelEvent {
	return &TunnelEvent{
		Added: added, CnciIP: c.ConcIP.To4(), CnIP: cn.local.IP, ConcID: c.ConcID, TenantID: c.TenantID,
		SubnetID: c.SubnetID, SubnetKey: SubnetKey(c.Subnet), Subnet: c.Subnet,
	}
}

// createSubnet creates a subnet's bridge and its tunnel to the CNCI, both
// up (§5.3 step 5, §12.2). On failure it removes what it made.
func (cn *ComputeNode) createSubnet(c *VnicConfig, bAlias, tAlias string) (*cnBridge, error) {
	h := cn.space.h
	bName, err := newLinkName(PrefixBridge, cn.names)
	if err != nil {
		return nil, err
	}
	tName, err := newLinkName(PrefixTunnel, cn.names)
	if err != nil {
		delete(cn.names, bName)
		return nil, err
	}
	fail := func(err error, made ...linkInfo) (*cnBridge, error) {
		for _, li := range made {
			_ = cn.space.deleteLink(li)
		}
		delete(cn.names, bName)
		delete(cn.names, tName)
		return nil, err
	}
	br, err := cn.space.addLink(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bName}}, bAlias)
	if err != nil {
		return fail(err)
	}
	bi := infoOf(br)
	tun, err := cn.space.addLink(newTunnel(cn.cfg.Tunnel, tName, SubnetKey(c.Subnet), cn.local.IP, c.ConcIP.To4()), tAlias)
	if err != nil {
		if cn.cfg.Tunnel == TunnelGRE && isNotSupported(err) {
			err = fmt.Errorf("%w: %v", ErrGREUnavailable, err)
		}
		return fail(err, bi)
	}
	ti := infoOf(tun)
	if err := h.LinkSetMaster(tun, br); err != nil {
		return fail(fmt.Errorf("enslaving %s to %s: %w", tName, bName, err), ti, bi)
	}
	// The CNCI sends broadcasts back to every compute node of the
	// subnet, this one included (its one VXLAN device floods to all, see
	// the package doc): the tunnel port must not learn, or a reflected
	// frame would move a local instance's MAC onto the tunnel.
	if err := h.LinkSetLearning(tun, false); err != nil {
		return fail(fmt.Errorf("turning learning off on %s: %w", tName, err), ti, bi)
	}
	if err := h.LinkSetUp(tun); err != nil {
		return fail(fmt.Errorf("setting %s up: %w", tName, err), ti, bi)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fail(fmt.Errorf("setting %s up: %w", bName, err), ti, bi)
	}
	cn.log.Infof("networking: subnet %s of tenant %s: bridge %s, %s tunnel %s (key %d) to CNCI %v",
		c.SubnetID, c.TenantID, bName, cn.cfg.Tunnel, tName, SubnetKey(c.Subnet), c.ConcIP)
	return &cnBridge{bridge: bi, tunnel: ti, vnics: map[string]bool{}}, nil
}

// newTunnel is the tunnel link of a compute-node subnet.
func newTunnel(kind TunnelKind, name string, key uint32, local, remote net.IP) netlink.Link {
	if kind == TunnelGRE {
		return &netlink.Gretap{LinkAttrs: netlink.LinkAttrs{Name: name}, IKey: key, OKey: key,
			Local: local, Remote: remote, PMtuDisc: 1}
	}
	return &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name}, VxlanId: int(key),
		SrcAddr: local, Group: remote, Port: VXLANPort, Learning: true}
}

func isNotSupported(err error) bool {
	return errors.Is(err, errNotSupported) || strings.Contains(err.Error(), "not supported")
}

// removeSubnet deletes a subnet's tunnel and bridge.
func (cn *ComputeNode) removeSubnet(b *cnBridge) error {
	err := errors.Join(cn.space.deleteLink(b.tunnel), cn.space.deleteLink(b.bridge))
	delete(cn.names, b.tunnel.name)
	delete(cn.names, b.bridge.name)
	return err
}

// createVnicLink creates the tap or veth of a VNIC, enslaved and up.
func (cn *ComputeNode) createVnicLink(c *VnicConfig, alias string, bridge linkInfo) (linkInfo, string, error) {
	h := cn.space.h
	name, err := newLinkName(PrefixVnic, cn.names)
	if err != nil {
		return linkInfo{}, "", err
	}
	var (
		l    netlink.Link
		peer string
	)
	if c.Role == TenantVM {
		err = cn.space.do(func() error {
			return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP})
		})
		if err == nil {
			if l, err = h.LinkByName(name); err == nil {
				if err = h.LinkSetAlias(l, alias); err != nil {
					_ = h.LinkDel(l)
				}
			}
		}
		if err != nil {
			err = fmt.Errorf("creating tap %s: %w", name, err)
		}
	} else {
		peer = PrefixPeer + strings.TrimPrefix(name, PrefixVnic)
		mtu := c.MTU
		if mtu == 0 {
			mtu = ContainerMTU
		}
		l, err = cn.space.addLink(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
			PeerName: peer, PeerHardwareAddr: c.VnicMAC}, alias)
		if err == nil {
			var p netlink.Link
			if p, err = h.LinkByName(peer); err == nil {
				err = h.LinkSetMTU(p, mtu)
			}
			if err != nil {
				_ = h.LinkDel(l)
				err = fmt.Errorf("setting up %s: %w", peer, err)
			}
		}
	}
	if err != nil {
		delete(cn.names, name)
		return linkInfo{}, "", err
	}
	li := infoOf(l)
	if err := h.LinkSetMasterByIndex(l, bridge.index); err != nil {
		_ = cn.space.deleteLink(li)
		delete(cn.names, name)
		return linkInfo{}, "", fmt.Errorf("enslaving %s to %s: %w", name, bridge.name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		_ = cn.space.deleteLink(li)
		delete(cn.names, name)
		return linkInfo{}, "", fmt.Errorf("setting %s up: %w", name, err)
	}
	return li, peer, nil
}

// DestroyVnic deletes an instance's VNIC and, if it was the subnet's last
// on the node, the subnet's tunnel and bridge, returning the tunnel event
// to report. An unknown VNIC is not an error.
func (cn *ComputeNode) DestroyVnic(ctx context.Context, c VnicConfig) (*TunnelEvent, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Subnet.IP = c.Subnet.IP.To4()
	vAlias := cnVnicAlias(&c)
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.space.h == nil {
		return nil, ErrClosed
	}
	v, ok := cn.vnics[vAlias]
	if !ok {
		return nil, nil
	}
	if err := cn.space.deleteLink(v.link); err != nil {
		return nil, err
	}
	delete(cn.vnics, vAlias)
	delete(cn.names, v.link.name)
	if v.id != "" {
		delete(cn.ids, v.id)
	} else {
		delete(cn.ids, c.VnicID)
	}
	b := cn.bridges[v.bridge]
	if b == nil {
		return nil, nil
	}
	delete(b.vnics, vAlias)
	if len(b.vnics) > 0 {
		return nil, nil
	}
	delete(cn.bridges, v.bridge)
	if err := cn.removeSubnet(b); err != nil {
		return cn.event(&c, false), err
	}
	cn.log.Infof("networking: subnet %s of tenant %s left the node: bridge %s and tunnel %s removed",
		c.SubnetID, c.TenantID, b.bridge.name, b.tunnel.name)
	return cn.event(&c, false), nil
}

// Subnets is the number of tenant subnets on the node; Vnics the VNICs.
func (cn *ComputeNode) Subnets() int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.bridges)
}

// Vnics is the number of VNICs on the node.
func (cn *ComputeNode) Vnics() int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.vnics)
}
