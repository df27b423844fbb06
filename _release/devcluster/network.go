package devcluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
)

// Tenant networking on one machine: the two nodes' tenant networks live in
// network namespaces of their own (launcher -net-namespace), joined by an
// underlay, a bridge in a third namespace, as separate machines would be by
// their compute network:
//
//	<prefix>-ul:  bridge "ul", UnderlayPrefix.254/24
//	<prefix>-cn:  eth0 UnderlayPrefix.1/24   (compute node)
//	<prefix>-nn:  eth0 UnderlayPrefix.2/24   (network node; CNCI namespaces
//	              take UnderlayPrefix.200/29)
//
// The launchers themselves stay in the host's namespace, so they (and the
// CNCI agents they start) reach the scheduler on loopback. Nothing is
// routed to or from the host's interfaces.

// UnderlayPrefix is the /24 of the underlay (TEST-NET-2, documentation
// only; it exists inside the cluster's namespaces alone).
const UnderlayPrefix = "198.51.100"

// Namespace is the name of one of the cluster's network namespaces: "ul",
// "cn" or "nn" after the configured prefix.
func (c Config) Namespace(role string) string { return c.NetPrefix + "-" + role }

func nsPath(name string) string { return filepath.Join("/run/netns", name) }

// nodeIP is a node's address on the underlay.
func nodeIP(kind string) string {
	if kind == ComputeNode {
		return UnderlayPrefix + ".1"
	}
	return UnderlayPrefix + ".2"
}

// networkArgs are the launcher flags of tenant networking.
func (c Config) networkArgs(kind string) []string {
	role := "cn"
	if kind == NetworkNode {
		role = "nn"
	}
	args := []string{"-net-namespace", nsPath(c.Namespace(role)), "-compute-ip", nodeIP(kind)}
	if kind == NetworkNode {
		args = append(args, "-cnci-agent", c.Bin("ciao-cnci-agent"), "-cnci-cacert", c.caCert(),
			"-cnci-cert", c.roleCert("cnciagent"), "-cnci-ips", UnderlayPrefix+".200/29",
			"-cnci-prefix", "24", "-cnci-gateway", UnderlayPrefix+".254")
	}
	return args
}

// setupNetwork makes the namespaces and the underlay (idempotent: an
// existing node namespace is kept). It returns the namespaces, for the
// manifest.
func (c Config) setupNetwork(ctx context.Context) ([]string, error) {
	ul, cn, nn := c.Namespace("ul"), c.Namespace("cn"), c.Namespace("nn")
	names := []string{ul, cn, nn}
	if exists(nsPath(cn)) && exists(nsPath(nn)) && exists(nsPath(ul)) {
		return names, nil
	}
	ip := func(args ...string) error { return c.run(ctx, "/", "ip", args...) }
	steps := [][]string{
		{"netns", "add", ul},
		{"-n", ul, "link", "set", "lo", "up"},
		{"-n", ul, "link", "add", "ul", "type", "bridge"},
		{"-n", ul, "addr", "add", UnderlayPrefix + ".254/24", "dev", "ul"},
		{"-n", ul, "link", "set", "ul", "up"},
	}
	for i, node := range []struct{ ns, ip string }{{cn, nodeIP(ComputeNode)}, {nn, nodeIP(NetworkNode)}} {
		port := "u" + strconv.Itoa(i+1)
		steps = append(steps,
			[]string{"netns", "add", node.ns},
			[]string{"-n", node.ns, "link", "set", "lo", "up"},
			[]string{"-n", ul, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.ns},
			[]string{"-n", ul, "link", "set", port, "master", "ul", "up"},
			[]string{"-n", node.ns, "addr", "add", node.ip + "/24", "dev", "eth0"},
			[]string{"-n", node.ns, "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return names, fmt.Errorf("underlay: %w", err)
		}
	}
	return names, nil
}

// teardownNetwork deletes the namespaces (and with them the underlay's
// links).
func (c Config) teardownNetwork(ctx context.Context, names []string) error {
	var first error
	for _, n := range names {
		if !exists(nsPath(n)) {
			continue
		}
		if err := c.run(ctx, "/", "ip", "netns", "del", n); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// namespacesLeft lists the cluster's namespaces and its instances' CNCI
// namespaces that still exist.
func namespacesLeft(names, instances []string) []string {
	var left []string
	for _, n := range names {
		if exists(nsPath(n)) {
			left = append(left, "network namespace "+n)
		}
	}
	for _, id := range instances {
		if exists(nsPath("ciao-cnci-" + id)) {
			left = append(left, "network namespace ciao-cnci-"+id)
		}
	}
	return left
}

// underlayNet is the compute and management network of the cluster
// configuration with networking on.
func underlayNet() string {
	_, n, _ := net.ParseCIDR(UnderlayPrefix + ".0/24")
	return n.String()
}
