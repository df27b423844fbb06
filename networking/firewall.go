package networking

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Floating-IP chains of the nat table (§8.3).
const (
	chainFloatingPre  = "ciao-floating-ip-pre"
	chainFloatingPost = "ciao-floating-ip-post"
)

// firewall programs the CNCI's iptables (§8), always in the CNCI's own
// namespace. Rules are applied in batches through iptables-restore
// --noflush, each only if it is not present yet.
type firewall struct {
	space *space
	ext   string // the external (compute) interface
}

// save lists the rules of a table as iptables-save prints them.
func (f *firewall) save(ctx context.Context, table string) (map[string]bool, error) {
	out, err := f.space.command(ctx, "iptables-save", "-t", table).Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save -t %s: %w", table, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	return have, nil
}

// apply appends (add) or deletes the rules of one table, skipping those
// already in the wanted state. Rules are "-A CHAIN ..." lines.
func (f *firewall) apply(ctx context.Context, table string, add bool, rules []string) error {
	have, err := f.save(ctx, table)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%s\n", table)
	n := 0
	for _, r := range rules {
		if have[r] == add {
			continue
		}
		if !add {
			r = "-D" + strings.TrimPrefix(r, "-A")
		}
		b.WriteString(r + "\n")
		n++
	}
	b.WriteString("COMMIT\n")
	if n == 0 {
		return nil
	}
	cmd := f.space.command(ctx, "iptables-restore", "--noflush")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore (%d rules in %s): %w: %s", n, table, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// init masquerades what leaves through the external interface and turns
// on forwarding (§8.1).
func (f *firewall) init(ctx context.Context) error {
	if err := f.apply(ctx, "nat", true, []string{"-A POSTROUTING -o " + f.ext + " -j MASQUERADE"}); err != nil {
		return err
	}
	return f.space.sysctl("net/ipv4/ip_forward", "1")
}

// shutdown undoes init.
func (f *firewall) shutdown(ctx context.Context) error {
	err := f.apply(ctx, "nat", false, []string{"-A POSTROUTING -o " + f.ext + " -j MASQUERADE"})
	if e := f.space.sysctl("net/ipv4/ip_forward", "0"); err == nil {
		err = e
	}
	return err
}

// sshRules are the per-subnet forwarding and SSH port-forwarding rules
// (§8.2), every host of the subnet (.2 up to the last one, fixing the
// 2016 off-by-one).
func (f *firewall) sshRules(bridge string, subnet net.IPNet) (filter, nat []string) {
	filter = []string{
		"-A FORWARD -i " + f.ext + " -o " + bridge + " -m state --state RELATED,ESTABLISHED -j ACCEPT",
		"-A FORWARD -i " + bridge + " -o " + f.ext + " -j ACCEPT",
	}
	for i := range poolSize(subnet) {
		ip := hostAddr(subnet, i+2)
		port := SSHPort(ip)
		if port == 0 {
			continue
		}
		nat = append(nat, "-A PREROUTING -i "+f.ext+" -p tcp -m tcp --dport "+strconv.Itoa(port)+
			" -j DNAT --to-destination "+ip.String()+":22")
	}
	return filter, nat
}

// ssh enables or disables a subnet's forwarding and SSH rules.
func (f *firewall) ssh(ctx context.Context, bridge string, subnet net.IPNet, enable bool) error {
	filter, nat := f.sshRules(bridge, subnet)
	if err := f.apply(ctx, "filter", enable, filter); err != nil {
		return err
	}
	return f.apply(ctx, "nat", enable, nat)
}

// floatingChains creates the floating-IP chains and the jumps to them.
func (f *firewall) floatingChains(ctx context.Context) error {
	have, err := f.save(ctx, "nat")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("*nat\n")
	for _, c := range []string{chainFloatingPre, chainFloatingPost} {
		if !have[":"+c+" - [0:0]"] && !chainDeclared(have, c) {
			b.WriteString(":" + c + " - [0:0]\n")
		}
	}
	if !have["-A PREROUTING -j "+chainFloatingPre] {
		b.WriteString("-I PREROUTING 1 -j " + chainFloatingPre + "\n")
	}
	if !have["-A POSTROUTING -j "+chainFloatingPost] {
		b.WriteString("-I POSTROUTING 1 -j " + chainFloatingPost + "\n")
	}
	b.WriteString("COMMIT\n")
	cmd := f.space.command(ctx, "iptables-restore", "--noflush")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("floating-IP chains: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func chainDeclared(have map[string]bool, chain string) bool {
	for l := range have {
		if strings.HasPrefix(l, ":"+chain+" ") {
			return true
		}
	}
	return false
}

// floating maps a public address to a private one (or removes the map).
func (f *firewall) floating(ctx context.Context, public, private net.IP, add bool) error {
	if add {
		if err := f.floatingChains(ctx); err != nil {
			return err
		}
	}
	return f.apply(ctx, "nat", add, []string{
		"-A " + chainFloatingPre + " -d " + public.String() + "/32 -j DNAT --to-destination " + private.String(),
		"-A " + chainFloatingPost + " -s " + private.String() + "/32 -j SNAT --to-source " + public.String(),
	})
}
