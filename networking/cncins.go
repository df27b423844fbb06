package networking

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CnciNamespace describes a CNCI hosted as a network namespace on a
// network node, the cheap alternative to a CNCI VM: the namespace gets a
// macvlan (bridge mode) of the node's compute link as eth0, with the
// tenant's CNCI MAC and a fixed address, where the VM would have had a
// macvtap and a DHCP lease. ciao-cnci-agent then runs the CNCI in it.
type CnciNamespace struct {
	// Name is the namespace name (/var/run/netns/<Name>).
	Name string
	// TenantID and VnicID make the macvlan's alias
	// (cncivnic_<tenant>_<vnic>).
	TenantID, VnicID string
	// MAC is the CNCI's MAC (vnic_mac of its START).
	MAC net.HardwareAddr
	// Addr is eth0's address with the compute network's prefix.
	Addr net.IPNet
	// Gateway, if set, is the namespace's default route.
	Gateway net.IP
}

// Path is the namespace file.
func (c *CnciNamespace) Path() string { return "/var/run/netns/" + c.Name }

func (c *CnciNamespace) validate() error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, "/ "):
		return fmt.Errorf("%w: CNCI namespace name %q", ErrBadConfig, c.Name)
	case c.TenantID == "" || c.VnicID == "":
		return fmt.Errorf("%w: CNCI namespace needs tenant and VNIC ids", ErrBadConfig)
	case len(c.MAC) != 6 || c.MAC[0]&1 != 0:
		return fmt.Errorf("%w: CNCI MAC %q is not a unicast MAC", ErrBadConfig, c.MAC.String())
	case c.Addr.IP.To4() == nil || len(c.Addr.Mask) == 0:
		return fmt.Errorf("%w: CNCI address %v", ErrBadConfig, c.Addr.String())
	}
	return nil
}

// CreateCnciNamespace makes the CNCI namespace described by c on the
// node described by node (whose compute link is the macvlan parent). It is
// idempotent: an existing namespace is left as it is. On failure nothing
// is left behind.
func CreateCnciNamespace(node Config, c CnciNamespace) (err error) {
	if err := c.validate(); err != nil {
		return err
	}
	if _, err := os.Stat(c.Path()); err == nil {
		return nil
	}
	s, err := openSpace(node.Netns)
	if err != nil {
		return err
	}
	defer s.close()
	phys, err := discover(s, &node)
	if err != nil {
		return err
	}
	if out, err := exec.Command("ip", "netns", "add", c.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("creating namespace %s: %w: %s", c.Name, err, strings.TrimSpace(string(out)))
	}
	defer func() {
		if err != nil {
			_ = DestroyCnciNamespace(c.Name)
		}
	}()
	parent, err := s.h.LinkByName(phys[0].Link)
	if err != nil {
		return fmt.Errorf("compute link %s: %w", phys[0].Link, err)
	}
	used := map[string]bool{}
	if links, err := s.h.LinkList(); err == nil {
		for _, l := range links {
			used[l.Attrs().Name] = true
		}
	}
	name, err := newLinkName(PrefixCnciVnic, used)
	if err != nil {
		return err
	}
	mv, err := s.addLink(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index,
		HardwareAddr: c.MAC, TxQLen: 500}, Mode: netlink.MACVLAN_MODE_BRIDGE}, aliasCnciVnic+c.TenantID+"_"+c.VnicID)
	if err != nil {
		return err
	}
	target, err := netns.GetFromPath(c.Path())
	if err != nil {
		_ = s.h.LinkDel(mv)
		return err
	}
	defer target.Close()
	if err := s.h.LinkSetNsFd(mv, int(target)); err != nil {
		_ = s.h.LinkDel(mv)
		return fmt.Errorf("moving %s into %s: %w", name, c.Name, err)
	}
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	addr := c.Addr
	addr.IP = addr.IP.To4()
	steps := []error{}
	steps = append(steps, h.LinkSetName(l, "eth0"))
	steps = append(steps, h.AddrAdd(l, &netlink.Addr{IPNet: &addr}))
	steps = append(steps, h.LinkSetUp(l), h.LinkSetUp(lo))
	if err := errors.Join(steps...); err != nil {
		return fmt.Errorf("configuring eth0 of %s: %w", c.Name, err)
	}
	if c.Gateway != nil {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: c.Gateway.To4()}); err != nil {
			return fmt.Errorf("default route of %s: %w", c.Name, err)
		}
	}
	return nil
}

// DestroyCnciNamespace kills what runs in a CNCI namespace (its dnsmasq)
// and deletes it, with its links. A missing namespace is not an error.
func DestroyCnciNamespace(name string) error {
	if name == "" || strings.ContainsAny(name, "/ ") {
		return fmt.Errorf("%w: CNCI namespace name %q", ErrBadConfig, name)
	}
	if _, err := os.Stat("/var/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, p := range strings.Fields(string(out)) {
			_ = exec.Command("kill", "-9", p).Run()
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AttachContainer moves a container VNIC's peer (in node's namespace) into
// the container's network namespace nsPath (e.g. /proc/<pid>/ns/net) as
// eth0 with address addr, up, with a default route through gw: what the
// 2016 Docker plugin had dockerd do. It is idempotent: a peer already moved
// (eth0 with addr present) is fine.
func AttachContainer(node Config, peer, nsPath string, addr net.IPNet, gw net.IP) error {
	s, err := openSpace(node.Netns)
	if err != nil {
		return err
	}
	defer s.close()
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("container namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := s.h.LinkByName(peer)
	if err != nil {
		if e, err2 := h.LinkByName("eth0"); err2 == nil {
			if as, _ := h.AddrList(e, netlink.FAMILY_V4); len(as) > 0 && as[0].IP.Equal(addr.IP) {
				return nil
			}
		}
		return fmt.Errorf("container VNIC %s: %w", peer, err)
	}
	if err := s.h.LinkSetNsFd(l, int(target)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", peer, nsPath, err)
	}
	if l, err = h.LinkByName(peer); err != nil {
		return err
	}
	a := addr
	a.IP = a.IP.To4()
	steps := []error{h.LinkSetName(l, "eth0"), h.AddrAdd(l, &netlink.Addr{IPNet: &a}), h.LinkSetUp(l)}
	if gw != nil {
		steps = append(steps, h.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.To4()}))
	}
	if err := errors.Join(steps...); err != nil {
		return fmt.Errorf("configuring eth0 in %s: %w", nsPath, err)
	}
	return nil
}

// CnciVnic is the macvtap of a CNCI VM on a network node (§5.5).
type CnciVnic struct {
	Name  string
	Index int
	Alias string
}

// TapDevice is the character device QEMU opens (once per queue) to use the
// macvtap: /dev/tap<ifindex>.
func (v *CnciVnic) TapDevice() string { return fmt.Sprintf("/dev/tap%d", v.Index) }

// CreateCnciVnic makes the macvtap of a CNCI VM (§5.5): svc_<hex> in bridge
// mode on the node's compute link, txqueuelen 500, the CNCI's MAC, alias
// cncivnic_<tenant>_<vnic>, up. It is idempotent (same alias: the existing
// one). It also makes /dev/tap<ifindex> if no udev did.
func CreateCnciVnic(node Config, tenantID, vnicID string, mac net.HardwareAddr) (*CnciVnic, error) {
	if tenantID == "" || vnicID == "" || strings.ContainsAny(tenantID+vnicID, "_#") {
		return nil, fmt.Errorf("%w: CNCI VNIC needs tenant and VNIC ids without _ or # (%q, %q)", ErrBadConfig, tenantID, vnicID)
	}
	if len(mac) != 6 || mac[0]&1 != 0 {
		return nil, fmt.Errorf("%w: CNCI MAC %q is not a unicast MAC", ErrBadConfig, mac.String())
	}
	s, err := openSpace(node.Netns)
	if err != nil {
		return nil, err
	}
	defer s.close()
	alias := aliasCnciVnic + tenantID + "_" + vnicID
	links, err := s.h.LinkList()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, l := range links {
		used[l.Attrs().Name] = true
		if l.Attrs().Alias == alias {
			v := &CnciVnic{Name: l.Attrs().Name, Index: l.Attrs().Index, Alias: alias}
			return v, s.tapDevice(v)
		}
	}
	phys, err := discover(s, &node)
	if err != nil {
		return nil, err
	}
	parent, err := s.h.LinkByName(phys[0].Link)
	if err != nil {
		return nil, err
	}
	name, err := newLinkName(PrefixCnciVnic, used)
	if err != nil {
		return nil, err
	}
	l, err := s.addLink(&netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name,
		ParentIndex: parent.Attrs().Index, HardwareAddr: mac, TxQLen: 500}, Mode: netlink.MACVLAN_MODE_BRIDGE}}, alias)
	if err != nil {
		return nil, err
	}
	v := &CnciVnic{Name: name, Index: l.Attrs().Index, Alias: alias}
	if err := s.h.LinkSetUp(l); err != nil {
		_ = s.h.LinkDel(l)
		return nil, fmt.Errorf("setting %s up: %w", name, err)
	}
	if err := s.tapDevice(v); err != nil {
		_ = s.h.LinkDel(l)
		return nil, err
	}
	return v, nil
}

// tapDevice makes /dev/tap<index> from the macvtap's sysfs dev numbers if
// it is missing (no udev, as in containers). Only for a node in the
// process's own namespace: /dev and /sys show that one (a VM on a
// namespaced node is not supported).
func (s *space) tapDevice(v *CnciVnic) error {
	if s.path != "" {
		return nil
	}
	if _, err := os.Stat(v.TapDevice()); err == nil {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/net/%s/macvtap/tap%d/dev", v.Name, v.Index))
	dev := strings.TrimSpace(string(b))
	if err != nil {
		return fmt.Errorf("macvtap %s device numbers: %w", v.Name, err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(dev, "%d:%d", &major, &minor); err != nil {
		return fmt.Errorf("macvtap %s: bad dev %q", v.Name, dev)
	}
	if err := unix.Mknod(v.TapDevice(), unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", v.TapDevice(), err)
	}
	return nil
}

// DestroyCnciVnic deletes the macvtap of a CNCI VM; a missing one is not
// an error.
func DestroyCnciVnic(node Config, tenantID, vnicID string) error {
	s, err := openSpace(node.Netns)
	if err != nil {
		return err
	}
	defer s.close()
	alias := aliasCnciVnic + tenantID + "_" + vnicID
	links, err := s.h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Attrs().Alias == alias {
			dev := fmt.Sprintf("/dev/tap%d", l.Attrs().Index)
			if err := s.h.LinkDel(l); err != nil {
				return fmt.Errorf("deleting %s: %w", l.Attrs().Name, err)
			}
			_ = os.Remove(dev) // ours if no udev made it; udev removes its own
		}
	}
	return nil
}
