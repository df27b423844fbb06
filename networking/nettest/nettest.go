// Package nettest models nodes as network namespaces on one machine for
// the networking tests: an underlay bridge in its own namespace, nodes and
// instances as namespaces with veths, DHCP, ping, ARP, packet counts and
// TCP probes run inside them. Everything it creates is in namespaces it
// owns (named ciaonet-<role>-<random>) and removed at test cleanup; nothing
// leaves the host. Only _test.go files import it.
package nettest

import (
	"crypto/rand"
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

func ciaoName(name string) bool {
	for _, p := range []string{"sbr_", "svn_", "svp_", "svc_", "sgt_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// RequireNetAdmin skips without root (fails under CI, where it must run).
func RequireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("networking tests need root (CAP_NET_ADMIN) and run as root in CI")
	}
	t.Skip("networking tests need root (CAP_NET_ADMIN)")
}

func RequireTools(t *testing.T, tools ...string) {
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

// Logger routes a networking.Logger to t.Logf.
type Logger struct{ T testing.TB }

func (l Logger) Infof(f string, a ...any) { l.T.Helper(); l.T.Logf(f, a...) }

// Warningf logs a warning.
func (l Logger) Warningf(f string, a ...any) { l.T.Helper(); l.T.Logf("WARNING: "+f, a...) }

// NS is a test network namespace.
type NS struct {
	Name string
}

// Path is the namespace file.
func (n NS) Path() string { return "/var/run/netns/" + n.Name }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNS creates a namespace with lo up and IPv6 off (so that no stray
// router solicitations show up in packet counts), deleted at cleanup.
func NewNS(t testing.TB, role string) NS {
	t.Helper()
	n := NS{Name: "ciaonet-" + role + "-" + randHex(4)}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		// Processes left in it (dnsmasq) would keep interfaces alive.
		if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", p).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	})
	n.MustRun(t, "ip", "link", "set", "lo", "up")
	err := n.Do(t, func() error {
		for _, k := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("turning IPv6 off in %s: %v", n.Name, err)
	}
	return n
}

// Cmd runs a command in the namespace.
func (n NS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// MustRun runs a command in the namespace and returns its output.
func (n NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Handle is a netlink handle in the namespace, closed at cleanup.
func (n NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(n.Name)
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

// Do runs f on a thread inside the namespace (sockets made there stay
// there).
func (n NS) Do(t testing.TB, f func() error) error {
	t.Helper()
	h, err := netns.GetFromName(n.Name)
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

// CiaoLinks lists the links of the namespace named like ciao's (sbr_, svn_, svp_, svc_, sgt_).
func (n NS) CiaoLinks(t testing.TB) []string {
	t.Helper()
	links, err := n.Handle(t).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if ciaoName(l.Attrs().Name) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// Underlay is the "data-centre network": a bridge in its own namespace.
type Underlay struct {
	NS     NS
	Prefix string // first three octets
	mu     sync.Mutex
	next   int
}

// NewUnderlay makes the underlay bridge (10.77.0.254/24) in its own namespace.
func NewUnderlay(t testing.TB) *Underlay {
	t.Helper()
	u := &Underlay{NS: NewNS(t, "ul"), Prefix: "10.77.0", next: 1}
	u.NS.MustRun(t, "ip", "link", "add", "ul", "type", "bridge")
	u.NS.MustRun(t, "ip", "addr", "add", u.Prefix+".254/24", "dev", "ul")
	u.NS.MustRun(t, "ip", "link", "set", "ul", "up")
	return u
}

// Attach makes a node namespace with eth0 on the underlay; it returns the
// namespace and its IP.
func (u *Underlay) Attach(t testing.TB, role string) (NS, net.IP) {
	t.Helper()
	n := NewNS(t, role)
	u.mu.Lock()
	i := u.next
	u.next++
	u.mu.Unlock()
	port := fmt.Sprintf("u%d", i)
	u.NS.MustRun(t, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	u.NS.MustRun(t, "ip", "link", "set", port, "master", "ul", "up")
	ip := fmt.Sprintf("%s.%d", u.Prefix, i)
	n.MustRun(t, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	n.MustRun(t, "ip", "link", "set", "eth0", "up")
	return n, net.ParseIP(ip).To4()
}

// DHCPScript is busybox udhcpc's hook: configure what the lease says.
const DHCPScript = `#!/bin/sh
case "$1" in
bound|renew)
	busybox ip addr flush dev "$interface"
	busybox ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && busybox ip route replace default via "$router"
	;;
esac
exit 0
`

// DHCP runs a DHCP client on eth0 of the namespace and returns the address it got.
func (n NS) DHCP(t testing.TB) net.IP {
	t.Helper()
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	if err := os.WriteFile(script, []byte(DHCPScript), 0o755); err != nil {
		t.Fatal(err)
	}
	n.MustRun(t, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script)
	addrs, err := n.Handle(t).AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return a.IP.To4()
		}
	}
	t.Fatalf("%s has no address after DHCP", n.Name)
	return nil
}

// Ping says whether a ping from the namespace is answered within 5 s.
func (n NS) Ping(ip net.IP) bool {
	return n.Cmd("busybox", "ping", "-c", "1", "-W", "5", "-w", "5", ip.String()).Run() == nil
}

// PingOnce says whether a ping is answered within 1 s (for pings that
// must fail: a pass/fail check, not a timing one).
func (n NS) PingOnce(ip net.IP) bool {
	return n.Cmd("busybox", "ping", "-c", "1", "-W", "1", "-w", "1", ip.String()).Run() == nil
}

// Arping says whether ip answers ARP on eth0 within 1 s.
func (n NS) Arping(ip net.IP) bool {
	return n.Cmd("busybox", "arping", "-c", "1", "-w", "1", "-f", "-I", "eth0", ip.String()).Run() == nil
}

// Sniffer counts, on one link of a namespace, the frames that carry any of
// the given byte patterns (a MAC, an IPv4 address).
type Sniffer struct {
	fd       int
	patterns [][]byte
	Matched  atomic.Int64 // frames carrying a pattern
	Seen     atomic.Int64 // all frames
	done     chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Sniff starts counting on link of n.
func Sniff(t testing.TB, n NS, link string, patterns ...[]byte) *Sniffer {
	t.Helper()
	s := &Sniffer{patterns: patterns, done: make(chan struct{})}
	err := n.Do(t, func() error {
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
		t.Fatalf("sniffing %s in %s: %v", link, n.Name, err)
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
			s.Seen.Add(1)
			for _, p := range s.patterns {
				if strings.Contains(string(buf[:k]), string(p)) {
					s.Matched.Add(1)
					break
				}
			}
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the capture; the counts are final after it.
func (s *Sniffer) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
	unix.Close(s.fd)
	<-s.done
}

// ServeTCP listens on port in the namespace and answers every connection
// with reply.
func ServeTCP(t testing.TB, n NS, port int, reply string) {
	t.Helper()
	var ln net.Listener
	err := n.Do(t, func() error {
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

// DialTCP connects from the namespace and returns what the server said.
func DialTCP(t testing.TB, n NS, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	err := n.Do(t, func() error {
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
