// Command net-bench prints the figures of ciao's tenant networking, one
// line each, measured on this machine with nodes modelled as network
// namespaces (nothing leaves the host; everything is removed at exit):
//
//   - VNIC create-and-attach latency on a compute node: the first VNIC of
//     a subnet (bridge + VXLAN tunnel + tap, enslaved, up) and further
//     ones (tap only), median and p99 over -samples;
//   - TCP throughput (iperf3) between two instances on different nodes
//     through their tenant tunnel and CNCI, and between the same kind of
//     endpoints over a plain veth pair, in the same run;
//   - the time to create -vnics VNICs on one node (and to delete them).
//
// It needs root, iperf3, dnsmasq and nsenter.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/ciao-project/ciao/networking"
)

type config struct {
	samples int
	vnics   int
	seconds int
	rounds  int
}

func main() {
	var c config
	flag.IntVar(&c.samples, "samples", 200, "VNICs created for the latency figures")
	flag.IntVar(&c.vnics, "vnics", 1000, "VNICs created on one node for the scale figure")
	flag.IntVar(&c.seconds, "seconds", 5, "duration of each iperf3 run")
	flag.IntVar(&c.rounds, "rounds", 3, "iperf3 runs per path, alternating tunnel and veth; the median is printed")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "net-bench:", err)
		os.Exit(1)
	}
}

// namespaces made by this run, deleted at exit.
var made []string

func cleanup() {
	for i := len(made) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "pids", made[i]).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", p).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", made[i]).Run()
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func in(ns string, args ...string) error {
	return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func newNS(role string) (string, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "ciaobench-" + role + "-" + hex.EncodeToString(b)
	if err := sh("ip", "netns", "add", name); err != nil {
		return "", err
	}
	made = append(made, name)
	return name, in(name, "ip", "link", "set", "lo", "up")
}

// underlay is a bridge in its own namespace; nodes hang off it.
type underlay struct {
	ns   string
	next int
}

func newUnderlay() (*underlay, error) {
	ns, err := newNS("ul")
	if err != nil {
		return nil, err
	}
	u := &underlay{ns: ns, next: 1}
	return u, errors.Join(in(ns, "ip", "link", "add", "ul", "type", "bridge"), in(ns, "ip", "link", "set", "ul", "up"))
}

func (u *underlay) attach(role string) (string, net.IP, error) {
	ns, err := newNS(role)
	if err != nil {
		return "", nil, err
	}
	i := u.next
	u.next++
	ip := fmt.Sprintf("10.78.0.%d", i)
	port := fmt.Sprintf("u%d", i)
	err = errors.Join(
		in(u.ns, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns),
		in(u.ns, "ip", "link", "set", port, "master", "ul", "up"),
		in(ns, "ip", "addr", "add", ip+"/24", "dev", "eth0"),
		in(ns, "ip", "link", "set", "eth0", "up"))
	return ns, net.ParseIP(ip).To4(), err
}

func path(ns string) string { return "/var/run/netns/" + ns }

func computeNode(ns string) (*networking.ComputeNode, error) {
	cfg := networking.DefaultConfig()
	cfg.Netns = path(ns)
	return networking.NewComputeNode(cfg)
}

func vnic(role networking.VnicRole, subnet net.IPNet, host int, cnci net.IP, id string) networking.VnicConfig {
	ip := make(net.IP, 4)
	copy(ip, subnet.IP.To4())
	ip[2] += byte(host >> 8)
	ip[3] += byte(host)
	return networking.VnicConfig{Role: role, VnicIP: ip, VnicMAC: networking.InstanceMAC(ip), Subnet: subnet, ConcIP: cnci,
		VnicID: id, InstanceID: id, TenantID: "bench", SubnetID: subnet.String(), ConcID: "cnci"}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func quantiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[(len(d)*99)/100]
}

func run(ctx context.Context, c config) error {
	defer cleanup()
	for _, tool := range []string{"iperf3", "dnsmasq", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (make deps installs it)", tool)
		}
	}
	u, err := newUnderlay()
	if err != nil {
		return err
	}
	if err := latency(ctx, u, c); err != nil {
		return err
	}
	if err := scale(ctx, u, c); err != nil {
		return err
	}
	return throughput(ctx, u, c)
}

// latency: first VNIC of a subnet (bridge + tunnel + tap) vs a tap on an
// existing subnet.
func latency(ctx context.Context, u *underlay, c config) error {
	ns, _, err := u.attach("lat")
	if err != nil {
		return err
	}
	cn, err := computeNode(ns)
	if err != nil {
		return err
	}
	defer cn.Close()
	cnci := net.ParseIP("10.78.0.250")
	var first, next []time.Duration
	for i := 0; i < c.samples; i++ {
		sub, _ := networking.ParseSubnet(fmt.Sprintf("172.%d.%d.0/24", 16+i/256, i%256))
		vc := vnic(networking.TenantVM, sub, 2, cnci, fmt.Sprintf("a%d", i))
		t0 := time.Now()
		if _, _, err := cn.CreateVnic(ctx, vc); err != nil {
			return err
		}
		first = append(first, time.Since(t0))
		if _, err := cn.DestroyVnic(ctx, vc); err != nil {
			return err
		}
	}
	sub, _ := networking.ParseSubnet("172.20.0.0/24")
	base := vnic(networking.TenantVM, sub, 2, cnci, "base")
	if _, _, err := cn.CreateVnic(ctx, base); err != nil {
		return err
	}
	for i := 0; i < c.samples; i++ {
		vc := vnic(networking.TenantVM, sub, 3, cnci, "b")
		t0 := time.Now()
		if _, _, err := cn.CreateVnic(ctx, vc); err != nil {
			return err
		}
		next = append(next, time.Since(t0))
		if _, err := cn.DestroyVnic(ctx, vc); err != nil {
			return err
		}
	}
	if _, err := cn.DestroyVnic(ctx, base); err != nil {
		return err
	}
	p50, p99 := quantiles(first)
	fmt.Printf("vnic-create-attach first-of-subnet (bridge+vxlan+tap): p50 %v p99 %v (n=%d)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond), len(first))
	p50, p99 = quantiles(next)
	fmt.Printf("vnic-create-attach existing-subnet (tap): p50 %v p99 %v (n=%d)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond), len(next))
	return nil
}

// scale creates c.vnics taps on one node, spread over subnets of 250.
func scale(ctx context.Context, u *underlay, c config) error {
	ns, _, err := u.attach("scale")
	if err != nil {
		return err
	}
	cn, err := computeNode(ns)
	if err != nil {
		return err
	}
	defer cn.Close()
	cnci := net.ParseIP("10.78.0.250")
	var vcs []networking.VnicConfig
	for i := 0; i < c.vnics; i++ {
		sub, _ := networking.ParseSubnet(fmt.Sprintf("172.21.%d.0/24", i/250))
		vcs = append(vcs, vnic(networking.TenantVM, sub, 2+i%250, cnci, fmt.Sprintf("s%d", i)))
	}
	t0 := time.Now()
	for _, vc := range vcs {
		if _, _, err := cn.CreateVnic(ctx, vc); err != nil {
			return err
		}
	}
	created := time.Since(t0)
	t0 = time.Now()
	for _, vc := range vcs {
		if _, err := cn.DestroyVnic(ctx, vc); err != nil {
			return err
		}
	}
	deleted := time.Since(t0)
	fmt.Printf("vnics-on-one-node: %d created in %v (%v each, %d subnets), deleted in %v\n",
		c.vnics, created.Round(time.Millisecond), (created / time.Duration(c.vnics)).Round(time.Microsecond),
		(c.vnics+249)/250, deleted.Round(time.Millisecond))
	return nil
}

// throughput: instance on node 1 → instance on node 2 through the tenant
// tunnel and the CNCI, vs the same endpoints over a plain veth pair.
func throughput(ctx context.Context, u *underlay, c config) error {
	n1, _, err := u.attach("cn1")
	if err != nil {
		return err
	}
	n2, _, err := u.attach("cn2")
	if err != nil {
		return err
	}
	cnciNS, cnciIP, err := u.attach("cnci")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "net-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ccfg := networking.CnciConfig{Config: networking.DefaultConfig(), RunDir: dir}
	ccfg.Netns = path(cnciNS)
	cnci, err := networking.NewCnci(ctx, ccfg)
	if err != nil {
		return err
	}
	defer func() { _ = cnci.Shutdown(ctx); cnci.Close() }()
	sub, _ := networking.ParseSubnet("172.22.0.0/24")
	var insts []string
	for i, node := range []string{n1, n2} {
		cn, err := computeNode(node)
		if err != nil {
			return err
		}
		vc := vnic(networking.TenantContainer, sub, 2+i, cnciIP, fmt.Sprintf("t%d", i))
		v, ev, err := cn.CreateVnic(ctx, vc)
		cn.Close()
		if err != nil {
			return err
		}
		if _, err := cnci.AddRemoteSubnet(ctx, ev.Subnet, ev.SubnetKey, ev.CnIP); err != nil {
			return err
		}
		inst, err := newNS("inst")
		if err != nil {
			return err
		}
		if err := errors.Join(
			in(node, "ip", "link", "set", v.PeerName, "netns", inst),
			in(inst, "ip", "link", "set", v.PeerName, "name", "eth0"),
			in(inst, "ip", "addr", "add", vc.VnicIP.String()+"/24", "dev", "eth0"),
			in(inst, "ip", "link", "set", "eth0", "up")); err != nil {
			return err
		}
		insts = append(insts, inst)
	}
	// The same pair of endpoints over a plain veth.
	a, err := newNS("va")
	if err != nil {
		return err
	}
	b, err := newNS("vb")
	if err != nil {
		return err
	}
	if err := errors.Join(
		in(a, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b),
		in(a, "ip", "addr", "add", "192.168.77.1/24", "dev", "eth0"), in(a, "ip", "link", "set", "eth0", "up"),
		in(b, "ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"), in(b, "ip", "link", "set", "eth0", "up")); err != nil {
		return err
	}
	// Alternate the two paths so that load from elsewhere on the machine
	// hits both alike; report the medians.
	var tunnels, veths []float64
	for i := 0; i < c.rounds; i++ {
		t, err := iperf(insts[0], insts[1], "172.22.0.3", c.seconds)
		if err != nil {
			return fmt.Errorf("tunnel: %w", err)
		}
		v, err := iperf(a, b, "192.168.77.2", c.seconds)
		if err != nil {
			return fmt.Errorf("veth: %w", err)
		}
		tunnels, veths = append(tunnels, t), append(veths, v)
	}
	tunnel, veth := median(tunnels), median(veths)
	fmt.Printf("throughput instance-to-instance across nodes (vxlan via CNCI, inner MTU %d): median %.2f Gbit/s of %d runs of %ds\n",
		networking.ContainerMTU, tunnel/1e9, c.rounds, c.seconds)
	fmt.Printf("throughput plain veth pair (MTU 1500), same run, interleaved: median %.2f Gbit/s (tunnel = %.0f%% of veth)\n", veth/1e9, 100*tunnel/veth)
	return nil
}

// iperf runs an iperf3 server in srv and a client in cli for seconds and
// returns the received bits per second.
func iperf(cli, srv, addr string, seconds int) (float64, error) {
	server := exec.Command("ip", "netns", "exec", srv, "iperf3", "-s", "-1")
	if err := server.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	var (
		r struct {
			Error string `json:"error"`
			End   struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		out []byte
		err error
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// iperf3 -J may exit 0 with an "error" member (server not
		// listening yet): retry until the deadline.
		out, err = exec.Command("ip", "netns", "exec", cli, "iperf3", "-c", addr, "-t", fmt.Sprint(seconds), "-J").Output()
		r.Error, r.End.SumReceived.BitsPerSecond = "", 0
		if jerr := json.Unmarshal(out, &r); err == nil && jerr == nil && r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("iperf3 client: %v %s: %s", err, r.Error, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}
