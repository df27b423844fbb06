package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

func hbID(n int) string { return fmt.Sprintf("%08d-0000-0000-0000-000000000000", n) }

// TestHeartbeatLine checks the §11 heartbeat strings.
func TestHeartbeatLine(t *testing.T) {
	master := hbController{id: hbID(1), master: true}
	backup2 := hbController{id: hbID(2)}
	var nodes []hbNode
	for i, mem := range []int{16138, 256, 10000, 42} {
		nodes = append(nodes, hbNode{id: hbID(i + 1), status: ssntp.READY, memAvail: mem, memTotal: mem})
	}
	wantNodes := "node-00000001:READY:16138/16138,0, node-00000002:READY:256/256,0, node-00000003:READY:10000/10000,0, node-00000004:READY:42/42,0"
	tests := []struct {
		name  string
		iter  int
		ctls  []hbController
		nodes []hbNode
		want  string
	}{
		{"idle", 0, nil, nil, "** idle / disconnected **\n"},
		{"no controller", 0, nil, nodes[:1], " -no Controller- \t\t\t\t\tnode-00000001:READY:16138/16138,0"},
		{"master only", 0, []hbController{master}, nil, "controller-00000001:MASTER\t\t\t\t -no Compute Nodes-"},
		{"master and backup", 0, []hbController{master, backup2}, nodes, "controller-00000001:MASTER, controller-00000002:BACKUP\t\t" + wantNodes},
		{"header on the 22nd", 21, []hbController{master}, nodes, "Controllers\t\t\t\t\tCompute Nodes\ncontroller-00000001:MASTER\t\t\t\t" + wantNodes},
		{"two masters", 0, []hbController{master, {id: hbID(2), master: true}}, nodes, "ERROR multiple controller masters"},
		{"mru and status", 0, []hbController{master}, []hbNode{{id: hbID(5), status: ssntp.FULL, mru: true, memAvail: 1, memTotal: 2, load: 3}},
			"controller-00000001:MASTER\t\t\t\tnode-00000005:FULL*:1/2,3"},
		{"short id does not panic", 0, []hbController{{id: "abc", master: true}}, nil, "controller-abc:MASTER\t\t\t\t -no Compute Nodes-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := heartbeatLine(tc.iter, tc.ctls, tc.nodes); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPool checks connection order, the last-used index across removals
// and status handling.
func TestPool(t *testing.T) {
	p := newPool(payloads.ComputeNode)
	ids := make([]uuid.UUID, 4)
	for i := range ids {
		ids[i] = uuid.Generate()
		if !p.add(ids[i]) {
			t.Fatal("add failed")
		}
	}
	if p.add(ids[0]) {
		t.Fatal("duplicate added")
	}
	req := placement.Request{MemMB: 100}
	if _, r := p.pick(req, placement.FirstFit); r != placement.NoFit {
		t.Fatalf("CONNECTED nodes must not be chosen: %v", r)
	}
	ready := readyInfo{memTotal: 1000, memAvail: 1000}
	for _, id := range ids {
		p.setStatus(id, ssntp.READY, &ready)
	}
	if id, _ := p.pick(req, placement.FirstFit); id != ids[0] {
		t.Fatal("first pick should be node 0")
	}
	if id, _ := p.pick(req, placement.FirstFit); id != ids[1] {
		t.Fatal("second pick should be node 1")
	}
	// Removing a node before the last used keeps the index on node 1.
	p.remove(ids[0])
	if id, _ := p.pick(req, placement.FirstFit); id != ids[2] {
		t.Fatal("after removing node 0, the next pick should be node 2")
	}
	// Removing the last used restarts the scan at the beginning.
	p.remove(ids[2])
	if p.last != -1 {
		t.Fatalf("last = %d after removing the last used", p.last)
	}
	if id, _ := p.pick(req, placement.FirstFit); id != ids[1] {
		t.Fatal("scan should restart at the first node")
	}
	// FULL makes a node ineligible and keeps its figures.
	p.setStatus(ids[3], ssntp.FULL, nil)
	n, _ := p.node(ids[3])
	if n.Ready || n.MemAvailMB != 1000 {
		t.Fatalf("FULL node: %+v", *n)
	}
	if id, _ := p.pick(req, placement.FirstFit); id != ids[1] {
		t.Fatal("only node 1 is READY")
	}
	n, _ = p.node(ids[1])
	if n.MemAvailMB != 700 { // three placements of 100 MB
		t.Fatalf("reservations not applied: %d", n.MemAvailMB)
	}
	if !p.remove(ids[1]) || p.remove(ids[1]) {
		t.Fatal("remove twice")
	}
	if len(p.nodes) != 1 || len(p.ids) != 1 || len(p.status) != 1 || len(p.index) != 1 || p.index[ids[3]] != 0 {
		t.Fatalf("inconsistent pool: %+v", p)
	}
}

// TestPayloadShortcuts checks the hand-written payloads against yaml.v2.
func TestPayloadShortcuts(t *testing.T) {
	id := uuid.Generate()
	for _, kind := range []payloads.Resource{payloads.ComputeNode, payloads.NetworkNode} {
		want, _ := yaml.Marshal(&payloads.NodeConnected{Connected: payloads.NodeConnectedEvent{NodeUUID: id.String(), NodeType: kind}})
		if got := nodeEventPayload("node_connected", id, kind); string(got) != string(want) {
			t.Errorf("NodeConnected:\n%s\nwant\n%s", got, want)
		}
		want, _ = yaml.Marshal(&payloads.NodeDisconnected{Disconnected: payloads.NodeConnectedEvent{NodeUUID: id.String(), NodeType: kind}})
		if got := nodeEventPayload("node_disconnected", id, kind); string(got) != string(want) {
			t.Errorf("NodeDisconnected:\n%s\nwant\n%s", got, want)
		}
	}
	for _, inst := range []string{id.String(), "", "123", "not a uuid: really", "2016-10-18"} {
		for _, r := range []payloads.StartFailureReason{payloads.StartFullCloud, payloads.StartNoComputeNodes, payloads.StartNoNetworkNodes, payloads.StartInvalidData} {
			want, _ := yaml.Marshal(&payloads.ErrorStartFailure{InstanceUUID: inst, Reason: r})
			if got := startFailurePayload([]byte(inst), r); string(got) != string(want) {
				t.Errorf("StartFailure %q %s:\n%s\nwant\n%s", inst, r, got, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := NewConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"no cert":    func(c *Config) { c.Cert = "" },
		"no ca":      func(c *Config) { c.CACert = "" },
		"bad listen": func(c *Config) { c.Listen = "8888" },
		"bad port":   func(c *Config) { c.Listen = ":99999" },
		"bad policy": func(c *Config) { c.Policy = 9 },
	} {
		c := NewConfig()
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPoolChurn checks that tombstones and compaction keep the pool equal
// to a plain ordered list with a last-used pointer.
func TestPoolChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := newPool(payloads.ComputeNode)
	var order []uuid.UUID // reference: live nodes in connection order
	var last uuid.UUID    // reference: last node used, Nil for none
	ready := readyInfo{memTotal: 1 << 20, memAvail: 1 << 20}
	for step := 0; step < 20000; step++ {
		switch op := rng.IntN(10); {
		case op < 4 || len(order) == 0:
			id := uuid.Generate()
			p.add(id)
			p.setStatus(id, ssntp.READY, &ready)
			order = append(order, id)
		case op < 7:
			k := rng.IntN(len(order))
			id := order[k]
			p.remove(id)
			order = append(order[:k], order[k+1:]...)
			if id == last {
				last = uuid.Nil
			}
		default:
			got, reason := p.pick(placement.Request{MemMB: 1}, placement.FirstFit)
			want := order[0]
			for k, id := range order {
				if id == last && k+1 < len(order) {
					want = order[k+1]
				}
			}
			if reason != placement.OK || got != want {
				t.Fatalf("step %d: picked %v (%v), want %v", step, got, reason, want)
			}
			last = got
		}
		if p.live != len(order) || len(p.index) != len(order) {
			t.Fatalf("step %d: live %d, index %d, want %d", step, p.live, len(p.index), len(order))
		}
		if step%97 != 0 {
			continue
		}
		if got := p.members(); fmt.Sprint(got) != fmt.Sprint(order) {
			t.Fatalf("step %d: members out of order", step)
		}
		for id, i := range p.index {
			if p.ids[i] != id {
				t.Fatalf("step %d: index of %v points at %v", step, id, p.ids[i])
			}
		}
	}
	for _, id := range order {
		p.remove(id)
	}
	if len(p.ids) != 0 || p.live != 0 {
		t.Fatalf("empty pool keeps %d slots", len(p.ids))
	}
	if _, r := p.pick(placement.Request{}, placement.FirstFit); r != placement.NoNodes {
		t.Fatalf("empty pool: %v", r)
	}
}
