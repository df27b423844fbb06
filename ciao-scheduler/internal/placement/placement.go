// Package placement chooses the node that runs a new instance. It is a
// pure function over a slice of node values: no SSNTP, no locks, no
// clocks, so it can be tested table by table and benchmarked alone. The
// caller owns the node slice and whatever lock guards it, and applies the
// speculative reservation (Reserve) to the chosen node.
//
// A node fits a request when its last status was READY and its last
// reported available memory covers the request (the 2016 rule; vcpus and
// disk are carried but, as in the original, not checked: vcpus are
// over-committed and the launcher enforces its own disk water-marks).
//
// Three policies:
//
//   - FirstFit (default, faithful to ciao-project/ciao@74c1e8d4): a
//     circular scan starting just after the last node used; the first node
//     that fits wins. O(1) when the cluster has room, O(n) at worst.
//   - Spread: the fitting node with the most available memory (least
//     loaded). Always O(n).
//   - Pack: the fitting node with the least available memory that still
//     fits (best fit, fullest first). Always O(n).
//
// Spread and Pack scan in the same circular order as FirstFit and keep the
// first of equal candidates, so ties rotate instead of always landing on
// the first node.
package placement

import (
	"fmt"
	"strings"
)

// Node is what placement knows of one node: the figures of its last READY
// and whether that was its last status.
type Node struct {
	// Ready is true when the node's most recent status was READY: only
	// such nodes request work.
	Ready       bool
	MemTotalMB  int
	MemAvailMB  int
	DiskTotalMB int
	DiskAvailMB int
	Load        int
	CPUs        int
}

// Request is what a START asks for.
type Request struct {
	MemMB       int
	VCPUs       int
	DiskMB      int
	NetworkNode bool // place on a network node (a CNCI) rather than a compute node
}

// Policy selects how a node is chosen among those that fit.
type Policy uint8

// Policies.
const (
	FirstFit Policy = iota
	Spread
	Pack
)

var policyNames = [...]string{FirstFit: "firstfit", Spread: "spread", Pack: "pack"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy accepts the names printed by String ("first-fit" too).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "firstfit", "first-fit", "first_fit", "":
		return FirstFit, nil
	case "spread":
		return Spread, nil
	case "pack":
		return Pack, nil
	}
	return FirstFit, fmt.Errorf("placement: unknown policy %q (want firstfit, spread or pack)", s)
}

// Reason says why nothing was chosen.
type Reason uint8

// Reasons. The scheduler maps them to START failure reasons: for compute
// nodes NoNodes is no_cn and NoFit full_cloud; for network nodes both are
// no_net_cn.
const (
	OK      Reason = iota // a node was chosen
	NoNodes               // the pool is empty
	NoFit                 // no node is READY with room for the request
)

func (r Reason) String() string {
	switch r {
	case OK:
		return "ok"
	case NoNodes:
		return "no nodes"
	case NoFit:
		return "no node fits"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Fits reports whether n can take r now.
func Fits(n *Node, r Request) bool {
	return n.Ready && n.MemAvailMB >= r.MemMB
}

// Reserve accounts for an instance placed on n until the node's next READY
// overwrites the figures: it protects back-to-back STARTs that arrive
// between two READYs from all landing on a node that has room for one.
func Reserve(n *Node, r Request) {
	n.MemAvailMB -= r.MemMB
}

// Pick chooses a node of nodes for r. last is the index of the node chosen
// last time (-1 for none, or when it has gone); the scan starts just after
// it and wraps around, so the last node is examined last. It returns the
// chosen index, or -1 and the reason.
func Pick(nodes []Node, r Request, p Policy, last int) (int, Reason) {
	n := len(nodes)
	if n == 0 {
		return -1, NoNodes
	}
	start := last + 1
	if start < 0 || start >= n {
		start = 0
	}
	if p == Spread || p == Pack {
		return best(nodes, r, start, p == Spread)
	}
	// Two plain loops rather than a modulo per step: this is the hot path
	// of every START.
	for i := start; i < n; i++ {
		if Fits(&nodes[i], r) {
			return i, OK
		}
	}
	for i := 0; i < start; i++ {
		if Fits(&nodes[i], r) {
			return i, OK
		}
	}
	return -1, NoFit
}

// best scans every node once, circularly from start, and keeps the
// fitting node with the most (most) or least available memory; the first
// of equal candidates in scan order wins.
func best(nodes []Node, r Request, start int, most bool) (int, Reason) {
	n := len(nodes)
	chosen, mem := -1, 0
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		nd := &nodes[i]
		if !Fits(nd, r) {
			continue
		}
		if chosen < 0 || (most && nd.MemAvailMB > mem) || (!most && nd.MemAvailMB < mem) {
			chosen, mem = i, nd.MemAvailMB
		}
	}
	if chosen < 0 {
		return -1, NoFit
	}
	return chosen, OK
}
