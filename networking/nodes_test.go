package networking

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests in this package model nodes as network namespaces on one
// machine: an underlay namespace holds a bridge, and every node (compute
// node, CNCI) is a namespace with a veth "eth0" on it. Instances are
// namespaces too (a container: the peer of a VNIC veth moved in). Nothing
// is created outside namespaces the test owns, and nothing leaves the host.

// requireNetAdmin skips without root (fails under CI, where it must run).
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("networking tests need root (CAP_NET_ADMIN) and run as root in CI")
	}
	t.Skip("networking tests need root (CAP_NET_ADMIN)")
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing (make deps installs it)", tool)
			}
			t.Skipf("%s is missing (make deps installs it)", tool)
		}
	}
}

type testLogger struct{ t testing.TB }

func (l testLogger) Infof(f string, a ...any)    { l.t.Helper(); l.t.Logf(f, a...) }
func (l testLogger) Warningf(f string, a ...any) { l.t.Helper(); l.t.Logf("WARNING: "+f, a...) }

// ns is a test network namespace.
type ns struct {
	name string
}

func (n ns) path() string { return "/var/run/netns/" + n.name }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNS creates a namespace with lo up and IPv6 off (so that no stray
// router solicitations show up in packet counts), deleted at cleanup.
func newNS(t testing.TB, role string) ns {
	t.Helper()
	n := ns{name: "ciaonet-" + role + "-" + randHex(4)}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(func() {
		// Processes left in it (dnsmasq) would keep interfaces alive.
		if out, err := exec.Command("ip", "netns", "pids", n.name).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", p).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	n.mustRun(t, "ip", "link", "set", "lo", "up")
	err := n.do(t, func() error {
		for _, k := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("turning IPv6 off in %s: %v", n.name, err)
	}
	return n
}

func (n ns) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

func (n ns) mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", n.name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n ns) handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(n.name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// do runs f on a thread inside the namespace (sockets made there stay
// there).
func (n ns) do(t testing.TB, f func() error) error {
	t.Helper()
	h, err := netns.GetFromName(n.name)
	if err != nil {
		return err
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and dies with us
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ciaoLinks lists the links of the namespace made by this package.
func (n ns) ciaoLinks(t testing.TB) []string {
	t.Helper()
	links, err := n.handle(t).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if ours(l.Attrs().Name) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// underlay is the "data-centre network": a bridge in its own namespace.
type underlay struct {
	ns     ns
	prefix string // first three octets
	mu     sync.Mutex
	next   int
}

func newUnderlay(t testing.TB) *underlay {
	t.Helper()
	u := &underlay{ns: newNS(t, "ul"), prefix: "10.77.0", next: 1}
	u.ns.mustRun(t, "ip", "link", "add", "ul", "type", "bridge")
	u.ns.mustRun(t, "ip", "addr", "add", u.prefix+".254/24", "dev", "ul")
	u.ns.mustRun(t, "ip", "link", "set", "ul", "up")
	return u
}

// attach makes a node namespace with eth0 on the underlay; it returns the
// namespace and its IP.
func (u *underlay) attach(t testing.TB, role string) (ns, net.IP) {
	t.Helper()
	n := newNS(t, role)
	u.mu.Lock()
	i := u.next
	u.next++
	u.mu.Unlock()
	port := fmt.Sprintf("u%d", i)
	u.ns.mustRun(t, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.name)
	u.ns.mustRun(t, "ip", "link", "set", port, "master", "ul", "up")
	ip := fmt.Sprintf("%s.%d", u.prefix, i)
	n.mustRun(t, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	n.mustRun(t, "ip", "link", "set", "eth0", "up")
	return n, net.ParseIP(ip).To4()
}

// dhcpScript is busybox udhcpc's hook: configure what the lease says.
const dhcpScript = `#!/bin/sh
case "$1" in
bound|renew)
	busybox ip addr flush dev "$interface"
	busybox ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && busybox ip route replace default via "$router"
	;;
esac
exit 0
`

// instance is a container modelled as a namespace holding the VNIC's
// veth peer as eth0.
type instance struct {
	ns  ns
	ip  net.IP
	mac net.HardwareAddr
}

// plug moves a container VNIC's peer into a fresh instance namespace as
// eth0, up, without an address (DHCP gives it).
func plug(t testing.TB, node ns, v *Vnic, ip net.IP) *instance {
	t.Helper()
	in := &instance{ns: newNS(t, "in"), ip: ip, mac: InstanceMAC(ip)}
	node.mustRun(t, "ip", "link", "set", v.PeerName, "netns", in.ns.name)
	in.ns.mustRun(t, "ip", "link", "set", v.PeerName, "name", "eth0")
	in.ns.mustRun(t, "ip", "link", "set", "eth0", "up")
	return in
}

// dhcp runs a DHCP client in the instance and returns the address it got.
func (in *instance) dhcp(t testing.TB) net.IP {
	t.Helper()
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	if err := os.WriteFile(script, []byte(dhcpScript), 0o755); err != nil {
		t.Fatal(err)
	}
	in.ns.mustRun(t, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script)
	addrs, err := in.ns.handle(t).AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return a.IP.To4()
		}
	}
	t.Fatalf("instance %s has no address after DHCP", in.ns.name)
	return nil
}

// ping says whether a ping from the namespace is answered within 5 s.
func (n ns) ping(ip net.IP) bool {
	return n.cmd("busybox", "ping", "-c", "1", "-W", "5", "-w", "5", ip.String()).Run() == nil
}

// pingOnce says whether a ping is answered within 1 s (for pings that
// must fail: a pass/fail check, not a timing one).
func (n ns) pingOnce(ip net.IP) bool {
	return n.cmd("busybox", "ping", "-c", "1", "-W", "1", "-w", "1", ip.String()).Run() == nil
}

// arping says whether ip answers ARP on eth0 within 1 s.
func (n ns) arping(ip net.IP) bool {
	return n.cmd("busybox", "arping", "-c", "1", "-w", "1", "-f", "-I", "eth0", ip.String()).Run() == nil
}

// sniffer counts, on one link of a namespace, the frames that carry any of
// the given byte patterns (a MAC, an IPv4 address).
type sniffer struct {
	fd       int
	patterns [][]byte
	matched  atomic.Int64
	seen     atomic.Int64
	done     chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func sniff(t testing.TB, n ns, link string, patterns ...[]byte) *sniffer {
	t.Helper()
	s := &sniffer{patterns: patterns, done: make(chan struct{})}
	err := n.do(t, func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// Promiscuous, so that a bridge passes up the frames it
		// forwards and not only those for itself.
		mr := unix.PacketMreq{Ifindex: int32(l.Attrs().Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		s.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("sniffing %s in %s: %v", link, n.name, err)
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			k, _, err := unix.Recvfrom(s.fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			s.seen.Add(1)
			for _, p := range s.patterns {
				if strings.Contains(string(buf[:k]), string(p)) {
					s.matched.Add(1)
					break
				}
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop ends the capture; the counts are final after it.
func (s *sniffer) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
	unix.Close(s.fd)
	<-s.done
}

// serveTCP listens on port in the namespace and answers every connection
// with reply.
func serveTCP(t testing.TB, n ns, port int, reply string) {
	t.Helper()
	var ln net.Listener
	err := n.do(t, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
}

// dialTCP connects from the namespace and returns what the server said.
func dialTCP(t testing.TB, n ns, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	err := n.do(t, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 64)
	k, err := c.Read(b)
	return string(b[:k]), err
}

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
