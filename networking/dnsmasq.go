package networking

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// dnsmasq is the DHCP/DNS server of one CNCI subnet bridge (§7). It only
// leases the fixed MAC → IP pairs of the subnet (02:00:<ip>).
type dnsmasq struct {
	space  *space
	dir    string // where its files live
	alias  string // the bridge alias, part of every file name
	bridge linkInfo
	subnet net.IPNet
}

func (d *dnsmasq) file(ext string) string {
	return filepath.Join(d.dir, "dnsmasq_"+d.alias+"."+ext)
}

// poolSize is the number of DHCP addresses: 2^(32-prefix) − 3.
func poolSize(subnet net.IPNet) int {
	ones, _ := subnet.Mask.Size()
	return 1<<(32-ones) - 3
}

// hostAddr is network + n.
func hostAddr(subnet net.IPNet, n int) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(subnet.IP.To4())+uint32(n))
	return ip
}

func (d *dnsmasq) gatewayAddr() *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: Gateway(d.subnet), Mask: d.subnet.Mask}}
}

func (d *dnsmasq) writeFiles() error {
	var hosts strings.Builder
	n := poolSize(d.subnet)
	for i := range n {
		ip := hostAddr(d.subnet, i+2)
		fmt.Fprintf(&hosts, "%s,%s,id:*\n", InstanceMAC(ip), ip)
	}
	conf := strings.Join([]string{
		"pid-file=" + d.file("pid"),
		"dhcp-leasefile=" + d.file("leases"),
		"dhcp-hostsfile=" + d.file("hosts"),
		"domain-needed",
		"bogus-priv",
		"bind-interfaces",
		"interface=" + d.bridge.name,
		"except-interface=lo",
		"dhcp-no-override",
		"dhcp-ignore=tag:!known",
		"listen-address=" + Gateway(d.subnet).String(),
		"dhcp-range=" + d.subnet.IP.String() + ",static",
		"dhcp-lease-max=" + strconv.Itoa(n),
		"dhcp-option-force=26,1400",
		"user=root", // its files are the agent's
		"",
	}, "\n")
	if err := os.WriteFile(d.file("hosts"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(d.file("conf"), []byte(conf), 0o644)
}

// start writes the files, gives the bridge the gateway address and starts
// dnsmasq (which daemonises and writes its pid file).
func (d *dnsmasq) start(ctx context.Context) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	if err := d.writeFiles(); err != nil {
		return fmt.Errorf("dnsmasq files: %w", err)
	}
	l, err := d.space.h.LinkByIndex(d.bridge.index)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", d.bridge.name, err)
	}
	if err := d.space.h.AddrReplace(l, d.gatewayAddr()); err != nil {
		return fmt.Errorf("gateway address on %s: %w", d.bridge.name, err)
	}
	if err := d.space.run(ctx, "dnsmasq", "--conf-file="+d.file("conf")); err != nil {
		return err
	}
	// dnsmasq writes its pid file before the parent exits; make sure.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := d.pid(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dnsmasq for %s wrote no pid file", d.bridge.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid is the running dnsmasq's pid, from its pid file, checked alive.
func (d *dnsmasq) pid() (int, error) {
	b, err := os.ReadFile(d.file("pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s", d.file("pid"))
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, err
	}
	return pid, nil
}

// attach finds a dnsmasq left running by a previous agent, or restarts it.
func (d *dnsmasq) attach(ctx context.Context) error {
	if _, err := d.pid(); err == nil {
		return nil
	}
	d.stop()
	return d.start(ctx)
}

// stop kills dnsmasq and removes its files and the gateway address.
func (d *dnsmasq) stop() error {
	var errs []error
	if pid, err := d.pid(); err == nil {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ext := range []string{"pid", "conf", "hosts", "leases"} {
		if err := os.Remove(d.file(ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if l, err := d.space.h.LinkByIndex(d.bridge.index); err == nil {
		_ = d.space.h.AddrDel(l, d.gatewayAddr())
	}
	return errors.Join(errs...)
}
