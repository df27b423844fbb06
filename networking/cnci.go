package networking

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CnciConfig configures the CNCI side.
type CnciConfig struct {
	Config
	// RunDir holds the dnsmasq files (default /tmp, as in 2016).
	RunDir string
	// Firewall turns on NAT (masquerade through the compute link) and IP
	// forwarding at start, and SSH port forwarding per subnet (§8).
	Firewall bool
}

// cnciSubnet is one tenant subnet served by the CNCI.
type cnciSubnet struct {
	subnet  net.IPNet
	key     uint32
	bridge  linkInfo
	tunnel  linkInfo            // VXLAN: the subnet's one device
	gre     map[string]linkInfo // GRE: CN IP → its gretap
	remotes map[string]bool     // CN IPs
	dns     *dnsmasq
}

// Cnci is the concentrator of one tenant (§6): per tenant subnet a bridge
// owning the gateway address, dnsmasq, and tunnels to every compute node
// hosting the subnet; NAT and SSH forwarding to the outside.
//
// mu serialises every operation and guards subnets.
type Cnci struct {
	cfg   CnciConfig
	log   Logger
	space *space
	local PhysicalAddr
	fw    *firewall

	mu      sync.Mutex
	names   map[string]bool
	subnets map[string]*cnciSubnet // subnet CIDR →
}

// NewCnci opens the CNCI's namespace, finds its compute address, rebuilds
// its subnets from the links (re-attaching to or restarting their
// dnsmasq) and, with Firewall, sets up NAT.
func NewCnci(ctx context.Context, cfg CnciConfig) (*Cnci, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/tmp"
	}
	s, err := openSpace(cfg.Netns)
	if err != nil {
		return nil, err
	}
	c := &Cnci{cfg: cfg, log: cfg.logger(), space: s}
	phys, err := discover(s, &cfg.Config)
	if err != nil {
		s.close()
		return nil, err
	}
	c.local = phys[0]
	c.fw = &firewall{space: s, ext: c.local.Link}
	if cfg.Firewall {
		if err := c.fw.init(ctx); err != nil {
			s.close()
			return nil, fmt.Errorf("firewall: %w", err)
		}
	}
	if err := c.rebuild(ctx); err != nil {
		s.close()
		return nil, err
	}
	return c, nil
}

// ComputeAddr is the CNCI's compute address and link (its tunnel endpoint,
// what ConcentratorInstanceAdded reports).
func (c *Cnci) ComputeAddr() PhysicalAddr { return c.local }

// Close releases the CNCI's handles; its links, dnsmasq and rules stay
// (a restarted agent rebuilds from them). Shutdown removes them. After
// Close every method fails with ErrClosed.
func (c *Cnci) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.space.close()
}

// rebuild reads the subnets back from the links (§6.2, §12.3).
func (c *Cnci) rebuild(ctx context.Context) error {
	links, err := c.space.h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = map[string]bool{}
	c.subnets = map[string]*cnciSubnet{}
	var tunnels []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		c.names[a.Name] = true
		if n, _, ok := parseCnciAlias(a.Alias, aliasBridge); ok && l.Type() == "bridge" {
			sn := &cnciSubnet{subnet: n, key: SubnetKey(n), bridge: infoOf(l), gre: map[string]linkInfo{}, remotes: map[string]bool{}}
			sn.dns = &dnsmasq{space: c.space, dir: c.cfg.RunDir, alias: a.Alias, bridge: sn.bridge, subnet: n}
			c.subnets[n.String()] = sn
		} else if strings.HasPrefix(a.Alias, aliasTunnel) {
			tunnels = append(tunnels, l)
		}
	}
	for _, l := range tunnels {
		n, cnIP, ok := parseCnciAlias(l.Attrs().Alias, aliasTunnel)
		sn := c.subnets[n.String()]
		if !ok || sn == nil {
			return fmt.Errorf("networking: rebuild: tunnel %s (%s) has no bridge", l.Attrs().Name, l.Attrs().Alias)
		}
		if cnIP != nil { // GRE: one link per compute node
			sn.gre[cnIP.String()] = infoOf(l)
			sn.remotes[cnIP.String()] = true
			continue
		}
		sn.tunnel = infoOf(l)
		fdb, err := c.space.h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			return fmt.Errorf("reading the FDB of %s: %w", l.Attrs().Name, err)
		}
		for _, e := range fdb {
			if isZeroMAC(e.HardwareAddr) && e.IP != nil {
				sn.remotes[e.IP.String()] = true
			}
		}
	}
	for _, sn := range c.subnets {
		if err := sn.dns.attach(ctx); err != nil {
			return fmt.Errorf("rebuild: dnsmasq of %v: %w", sn.subnet.String(), err)
		}
	}
	c.log.Infof("networking: CNCI %v: %d subnets rebuilt from link aliases", c.local.IP, len(c.subnets))
	return nil
}

func isZeroMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]|m[1]|m[2]|m[3]|m[4]|m[5] == 0
}

// checkRemote validates a TenantAdded/TenantRemoved description.
func checkRemote(subnet net.IPNet, key uint32, cnIP net.IP) error {
	if err := CheckSubnet(subnet); err != nil {
		return err
	}
	if want := SubnetKey(subnet); key != want {
		return fmt.Errorf("%w: subnet %v has key %d, got %d", ErrKeyMismatch, subnet.String(), want, key)
	}
	if cnIP.To4() == nil || cnIP.IsUnspecified() {
		return fmt.Errorf("%w: compute node IP %v", ErrBadConfig, cnIP)
	}
	return nil
}

// AddRemoteSubnet connects compute node cnIP to the subnet (TenantAdded,
// §6.3): the subnet's bridge, gateway, dnsmasq, SSH forwarding and tunnel
// are made on its first compute node; then the node is added to the
// tunnel's flood list (VXLAN) or given its own gretap (GRE). It returns
// the bridge name. On failure nothing it made is left behind.
func (c *Cnci) AddRemoteSubnet(ctx context.Context, subnet net.IPNet, key uint32, cnIP net.IP) (string, error) {
	subnet.IP = subnet.IP.To4()
	if err := checkRemote(subnet, key, cnIP); err != nil {
		return "", err
	}
	cnIP = cnIP.To4()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.space.h == nil {
		return "", ErrClosed
	}
	sn, existed := c.subnets[subnet.String()]
	if !existed {
		var err error
		if sn, err = c.createSubnet(ctx, subnet, key); err != nil {
			return "", err
		}
	}
	if !sn.remotes[cnIP.String()] {
		if err := c.addRemote(sn, cnIP); err != nil {
			if !existed {
				_ = c.removeSubnet(ctx, sn)
			}
			return "", err
		}
	}
	if !existed {
		c.subnets[subnet.String()] = sn
	}
	return sn.bridge.name, nil
}

func (c *Cnci) createSubnet(ctx context.Context, subnet net.IPNet, key uint32) (sn *cnciSubnet, err error) {
	h := c.space.h
	bName, err := newLinkName(PrefixBridge, c.names)
	if err != nil {
		return nil, err
	}
	sn = &cnciSubnet{subnet: subnet, key: key, gre: map[string]linkInfo{}, remotes: map[string]bool{}}
	defer func() {
		if err != nil {
			_ = c.removeSubnet(ctx, sn)
			delete(c.names, bName)
		}
	}()
	alias := cnciBridgeAlias(subnet)
	br, err := c.space.addLink(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bName}}, alias)
	if err != nil {
		return sn, err
	}
	sn.bridge = infoOf(br)
	if err := h.LinkSetUp(br); err != nil {
		return sn, fmt.Errorf("setting %s up: %w", bName, err)
	}
	sn.dns = &dnsmasq{space: c.space, dir: c.cfg.RunDir, alias: alias, bridge: sn.bridge, subnet: subnet}
	if err := sn.dns.start(ctx); err != nil {
		return sn, fmt.Errorf("dnsmasq for %v: %w", subnet.String(), err)
	}
	if c.cfg.Firewall {
		if err := c.fw.ssh(ctx, bName, subnet, true); err != nil {
			return sn, fmt.Errorf("SSH forwarding for %v: %w", subnet.String(), err)
		}
	}
	if c.cfg.Tunnel == TunnelVXLAN {
		tName, err := newLinkName(PrefixTunnel, c.names)
		if err != nil {
			return sn, err
		}
		tun, err := c.space.addLink(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tName, MasterIndex: sn.bridge.index},
			VxlanId: int(key), SrcAddr: c.local.IP, Port: VXLANPort, Learning: true}, cnciTunnelAlias(subnet))
		if err != nil {
			delete(c.names, tName)
			return sn, err
		}
		sn.tunnel = infoOf(tun)
		// Compute nodes reach each other through the CNCI: frames come
		// in and go out of the same VXLAN port.
		if err := h.LinkSetHairpin(tun, true); err != nil {
			return sn, fmt.Errorf("hairpin on %s: %w", tName, err)
		}
		if err := h.LinkSetUp(tun); err != nil {
			return sn, fmt.Errorf("setting %s up: %w", tName, err)
		}
	}
	c.log.Infof("networking: CNCI subnet %v: bridge %s, gateway %v, dnsmasq, tunnel key %d", subnet.String(), bName, Gateway(subnet), key)
	return sn, nil
}

// floodEntry is the all-zero FDB entry that sends unknown and broadcast
// traffic of a VXLAN device to a compute node.
func floodEntry(index int, cnIP net.IP) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, HardwareAddr: make(net.HardwareAddr, 6), IP: cnIP}
}

func (c *Cnci) addRemote(sn *cnciSubnet, cnIP net.IP) error {
	h := c.space.h
	if c.cfg.Tunnel == TunnelVXLAN {
		if err := h.NeighAppend(floodEntry(sn.tunnel.index, cnIP)); err != nil {
			return fmt.Errorf("adding compute node %v to %s: %w", cnIP, sn.tunnel.name, err)
		}
	} else {
		tName, err := newLinkName(PrefixTunnel, c.names)
		if err != nil {
			return err
		}
		tun, err := c.space.addLink(newTunnel(TunnelGRE, tName, sn.key, c.local.IP, cnIP), cnciGRETunnelAlias(sn.subnet, cnIP))
		if err == nil {
			if err = h.LinkSetMasterByIndex(tun, sn.bridge.index); err == nil {
				err = h.LinkSetUp(tun)
			}
			if err != nil {
				_ = h.LinkDel(tun)
			}
		}
		if err != nil {
			delete(c.names, tName)
			if isNotSupported(err) {
				err = fmt.Errorf("%w: %v", ErrGREUnavailable, err)
			}
			return fmt.Errorf("tunnel to %v: %w", cnIP, err)
		}
		sn.gre[cnIP.String()] = infoOf(tun)
	}
	sn.remotes[cnIP.String()] = true
	c.log.Infof("networking: CNCI subnet %v: compute node %v added (%d nodes)", sn.subnet.String(), cnIP, len(sn.remotes))
	return nil
}

// DelRemoteSubnet disconnects compute node cnIP from the subnet
// (TenantRemoved, §6.4). The bridge and its dnsmasq stay until Shutdown.
// An unknown subnet or node is not an error.
func (c *Cnci) DelRemoteSubnet(ctx context.Context, subnet net.IPNet, key uint32, cnIP net.IP) error {
	subnet.IP = subnet.IP.To4()
	if err := checkRemote(subnet, key, cnIP); err != nil {
		return err
	}
	cnIP = cnIP.To4()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.space.h == nil {
		return ErrClosed
	}
	sn := c.subnets[subnet.String()]
	if sn == nil || !sn.remotes[cnIP.String()] {
		return nil
	}
	h := c.space.h
	if c.cfg.Tunnel == TunnelVXLAN {
		if err := h.NeighDel(floodEntry(sn.tunnel.index, cnIP)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing compute node %v from %s: %w", cnIP, sn.tunnel.name, err)
		}
		// Forget what was learnt behind that node.
		if fdb, err := h.NeighList(sn.tunnel.index, unix.AF_BRIDGE); err == nil {
			for _, e := range fdb {
				if e.IP.Equal(cnIP) {
					_ = h.NeighDel(&e)
				}
			}
		}
	} else if li, ok := sn.gre[cnIP.String()]; ok {
		if err := c.space.deleteLink(li); err != nil {
			return err
		}
		delete(sn.gre, cnIP.String())
		delete(c.names, li.name)
	}
	delete(sn.remotes, cnIP.String())
	c.log.Infof("networking: CNCI subnet %v: compute node %v removed (%d nodes)", subnet.String(), cnIP, len(sn.remotes))
	return nil
}

// removeSubnet stops a subnet's dnsmasq and deletes its rules and links.
func (c *Cnci) removeSubnet(ctx context.Context, sn *cnciSubnet) error {
	var errs []error
	if sn.dns != nil {
		errs = append(errs, sn.dns.stop())
	}
	if c.cfg.Firewall && sn.bridge.name != "" {
		errs = append(errs, c.fw.ssh(ctx, sn.bridge.name, sn.subnet, false))
	}
	for _, li := range sn.gre {
		errs = append(errs, c.space.deleteLink(li))
		delete(c.names, li.name)
	}
	for _, li := range []linkInfo{sn.tunnel, sn.bridge} {
		if li.name != "" {
			errs = append(errs, c.space.deleteLink(li))
			delete(c.names, li.name)
		}
	}
	return errors.Join(errs...)
}

// Shutdown removes every subnet (dnsmasq, rules, links) and, with
// Firewall, the NAT set-up (§6.5). It continues past errors.
func (c *Cnci) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.space.h == nil {
		return ErrClosed
	}
	var errs []error
	for k, sn := range c.subnets {
		errs = append(errs, c.removeSubnet(ctx, sn))
		delete(c.subnets, k)
	}
	if c.cfg.Firewall {
		errs = append(errs, c.fw.shutdown(ctx))
	}
	return errors.Join(errs...)
}

// SubnetInfo describes a served subnet.
type SubnetInfo struct {
	Subnet  net.IPNet
	Bridge  string
	Tunnel  string
	Remotes []string // compute node IPs, sorted
}

// Subnets lists the served subnets, sorted by CIDR.
func (c *Cnci) Subnets() []SubnetInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []SubnetInfo
	for _, sn := range c.subnets {
		si := SubnetInfo{Subnet: sn.subnet, Bridge: sn.bridge.name, Tunnel: sn.tunnel.name}
		for r := range sn.remotes {
			si.Remotes = append(si.Remotes, r)
		}
		sort.Strings(si.Remotes)
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subnet.String() < out[j].Subnet.String() })
	return out
}

// AssignPublicIP maps public to the instance address private (§8.3): the
// address goes on the external link, DNAT in and SNAT out.
func (c *Cnci) AssignPublicIP(ctx context.Context, public, private net.IP) error {
	if public.To4() == nil || private.To4() == nil {
		return fmt.Errorf("%w: public %v / private %v", ErrBadConfig, public, private)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.space.h == nil {
		return ErrClosed
	}
	l, err := c.space.h.LinkByName(c.local.Link)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: public.To4(), Mask: net.CIDRMask(32, 32)}}
	if err := c.space.h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("adding %v to %s: %w", public, c.local.Link, err)
	}
	if err := c.fw.floating(ctx, public.To4(), private.To4(), true); err != nil {
		_ = c.space.h.AddrDel(l, addr)
		return err
	}
	return nil
}

// ReleasePublicIP undoes AssignPublicIP.
func (c *Cnci) ReleasePublicIP(ctx context.Context, public, private net.IP) error {
	if public.To4() == nil || private.To4() == nil {
		return fmt.Errorf("%w: public %v / private %v", ErrBadConfig, public, private)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.space.h == nil {
		return ErrClosed
	}
	err := c.fw.floating(ctx, public.To4(), private.To4(), false)
	if l, lerr := c.space.h.LinkByName(c.local.Link); lerr == nil {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: public.To4(), Mask: net.CIDRMask(32, 32)}}
		if e := c.space.h.AddrDel(l, addr); e != nil && !errors.Is(e, unix.EADDRNOTAVAIL) && err == nil {
			err = e
		}
	}
	return err
}
