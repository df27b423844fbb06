package scheduler

import (
	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// pool is one kind of node (compute or network) in connection order. The
// node figures live in one slice of values so a placement scan walks
// contiguous memory. The caller holds Scheduler.mu.
//
// A departed node leaves a tombstone (nil id, never READY) that the next
// compaction removes; compaction runs once tombstones are half the slice,
// so removals cost O(1) amortised even when thousands of nodes leave at
// once, and the survivors keep their connection order.
type pool struct {
	kind   payloads.Resource // compute_node or network_node
	nodes  []placement.Node
	ids    []uuid.UUID    // uuid.Nil for a tombstone
	status []ssntp.Status // the last status operand, for the heartbeat
	index  map[uuid.UUID]int
	live   int // nodes that are not tombstones
	// last is the index of the node chosen last, -1 for none: the next
	// first-fit scan starts after it.
	last int
}

func newPool(kind payloads.Resource) pool {
	return pool{kind: kind, index: make(map[uuid.UUID]int), last: -1}
}

// add appends a node in state CONNECTED with no resources: it is not
// eligible until its first READY. It reports false for a duplicate.
func (p *pool) add(id uuid.UUID) bool {
	if _, dup := p.index[id]; dup {
		return false
	}
	p.index[id] = len(p.nodes)
	p.nodes = append(p.nodes, placement.Node{})
	p.ids = append(p.ids, id)
	p.status = append(p.status, ssntp.CONNECTED)
	p.live++
	return true
}

// remove forgets a node. If it was the last one used, the next scan
// starts from the first node, as in 2016.
func (p *pool) remove(id uuid.UUID) bool {
	i, ok := p.index[id]
	if !ok {
		return false
	}
	delete(p.index, id)
	p.nodes[i] = placement.Node{}
	p.ids[i] = uuid.Nil
	p.status[i] = ssntp.OFFLINE
	p.live--
	if p.last == i {
		p.last = -1
	}
	if dead := len(p.ids) - p.live; dead*2 > len(p.ids) || p.live == 0 {
		p.compact()
	}
	return true
}

// compact drops the tombstones, keeping order and the last-used node.
func (p *pool) compact() {
	j := 0
	last := -1
	for i, id := range p.ids {
		if id == uuid.Nil {
			continue
		}
		if i == p.last {
			last = j
		}
		p.ids[j], p.nodes[j], p.status[j] = id, p.nodes[i], p.status[i]
		p.index[id] = j
		j++
	}
	clear(p.ids[j:])
	p.ids, p.nodes, p.status = p.ids[:j], p.nodes[:j], p.status[:j]
	p.last = last
}

// members lists the live nodes in order.
func (p *pool) members() []uuid.UUID {
	out := make([]uuid.UUID, 0, p.live)
	for _, id := range p.ids {
		if id != uuid.Nil {
			out = append(out, id)
		}
	}
	return out
}

// node returns the figures of a node, or nil.
func (p *pool) node(id uuid.UUID) (*placement.Node, int) {
	i, ok := p.index[id]
	if !ok {
		return nil, -1
	}
	return &p.nodes[i], i
}

// setStatus records a STATUS: only READY makes the node eligible, and only
// READY carries figures (r, when the payload decoded).
func (p *pool) setStatus(id uuid.UUID, st ssntp.Status, r *readyInfo) {
	n, i := p.node(id)
	if n == nil {
		return
	}
	p.status[i] = st
	n.Ready = st == ssntp.READY
	if r != nil {
		n.MemTotalMB = r.memTotal
		n.MemAvailMB = r.memAvail
		n.DiskTotalMB = r.diskTotal
		n.DiskAvailMB = r.diskAvail
		n.Load = r.load
		n.CPUs = r.cpus
	}
}

// pick chooses a node for r and reserves the request on it.
func (p *pool) pick(r placement.Request, policy placement.Policy) (uuid.UUID, placement.Reason) {
	if p.live == 0 {
		return uuid.Nil, placement.NoNodes
	}
	i, reason := placement.Pick(p.nodes, r, policy, p.last)
	if reason != placement.OK {
		return uuid.Nil, reason
	}
	placement.Reserve(&p.nodes[i], r)
	p.last = i
	return p.ids[i], placement.OK
}
