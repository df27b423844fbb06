package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func ready(mem int) Node { return Node{Ready: true, MemTotalMB: mem, MemAvailMB: mem} }

func TestPick(t *testing.T) {
	full := Node{Ready: false, MemTotalMB: 4096, MemAvailMB: 4096}
	req := Request{MemMB: 256}
	tests := []struct {
		name   string
		nodes  []Node
		req    Request
		policy Policy
		last   int
		want   int
		reason Reason
	}{
		{"no nodes", nil, req, FirstFit, -1, -1, NoNodes},
		{"no nodes spread", nil, req, Spread, -1, -1, NoNodes},
		{"one small node", []Node{ready(200)}, req, FirstFit, -1, -1, NoFit},
		{"two small nodes", []Node{ready(200), ready(200)}, req, FirstFit, -1, -1, NoFit},
		{"big node after two small", []Node{ready(200), ready(200), ready(141312)}, req, FirstFit, -1, 2, OK},
		{"exact fit", []Node{ready(256)}, req, FirstFit, -1, 0, OK},
		{"not ready skipped", []Node{full, ready(4096)}, req, FirstFit, -1, 1, OK},
		{"connected but no READY yet", []Node{{MemAvailMB: 4096}}, req, FirstFit, -1, -1, NoFit},
		{"all not ready", []Node{full, full}, req, FirstFit, -1, -1, NoFit},
		{"starts after last", []Node{ready(4096), ready(4096), ready(4096)}, req, FirstFit, 0, 1, OK},
		{"wraps around", []Node{ready(4096), ready(4096), ready(4096)}, req, FirstFit, 2, 0, OK},
		{"last node chosen again when alone fits", []Node{ready(100), ready(4096), ready(100)}, req, FirstFit, 1, 1, OK},
		{"skips non-fitting after last", []Node{ready(4096), ready(4096), ready(100), ready(100)}, req, FirstFit, 1, 0, OK},
		{"last out of range restarts at 0", []Node{ready(4096), ready(4096)}, req, FirstFit, 42, 0, OK},
		{"negative last restarts at 0", []Node{ready(4096), ready(4096)}, req, FirstFit, -7, 0, OK},
		{"zero memory request fits any READY node", []Node{full, ready(0)}, Request{}, FirstFit, -1, 1, OK},
		{"negative availability never fits", []Node{{Ready: true, MemAvailMB: -1}}, req, FirstFit, -1, -1, NoFit},

		{"spread picks most free", []Node{ready(1000), ready(8000), ready(4000)}, req, Spread, -1, 1, OK},
		{"spread ignores not ready", []Node{ready(1000), {MemAvailMB: 9000}, ready(4000)}, req, Spread, -1, 2, OK},
		{"spread tie rotates", []Node{ready(4000), ready(4000), ready(4000)}, req, Spread, 0, 1, OK},
		{"spread tie wraps", []Node{ready(4000), ready(4000), ready(4000)}, req, Spread, 2, 0, OK},
		{"spread none fits", []Node{ready(100), ready(200)}, req, Spread, -1, -1, NoFit},

		{"pack picks fullest that fits", []Node{ready(1000), ready(8000), ready(300), ready(100)}, req, Pack, -1, 2, OK},
		{"pack tie rotates", []Node{ready(300), ready(300)}, req, Pack, 0, 1, OK},
		{"pack none fits", []Node{ready(100)}, req, Pack, -1, -1, NoFit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := Pick(tc.nodes, tc.req, tc.policy, tc.last)
			if got != tc.want || reason != tc.reason {
				t.Fatalf("Pick = %d, %v; want %d, %v", got, reason, tc.want, tc.reason)
			}
		})
	}
}

// TestOriginalSequence replays the 2016 picker test: growing the cluster
// until something fits, then forcing the last-used index.
func TestOriginalSequence(t *testing.T) {
	req := Request{MemMB: 256, VCPUs: 2, DiskMB: 10000}
	var nodes []Node
	if i, r := Pick(nodes, req, FirstFit, -1); i != -1 || r != NoNodes {
		t.Fatalf("empty: %d %v", i, r)
	}
	nodes = append(nodes, ready(200))
	if i, r := Pick(nodes, req, FirstFit, -1); i != -1 || r != NoFit {
		t.Fatalf("one 200 MB node: %d %v", i, r)
	}
	nodes = append(nodes, ready(200))
	if i, r := Pick(nodes, req, FirstFit, -1); i != -1 || r != NoFit {
		t.Fatalf("two 200 MB nodes: %d %v", i, r)
	}
	nodes = append(nodes, ready(141312))
	if i, r := Pick(nodes, req, FirstFit, -1); i != 2 || r != OK {
		t.Fatalf("141312 MB node: %d %v", i, r)
	}
	for i := 1; i <= 97; i++ {
		nodes = append(nodes, ready(256*i))
	}
	if i, r := Pick(nodes, req, FirstFit, 2); i != 3 || r != OK {
		t.Fatalf("after 97 more: %d %v", i, r)
	}
	if i, r := Pick(nodes, req, FirstFit, 42); i != 43 || r != OK {
		t.Fatalf("last = 42: %d %v", i, r)
	}
}

// TestRotation checks that first fit with the cursor spreads identical
// requests evenly over identical nodes, and that Reserve makes a node that
// had room for one instance ineligible for the next.
func TestRotation(t *testing.T) {
	for _, p := range []Policy{FirstFit, Spread} {
		t.Run(p.String(), func(t *testing.T) {
			nodes := []Node{ready(1024), ready(1024), ready(1024)}
			req := Request{MemMB: 256}
			count := make([]int, len(nodes))
			last := -1
			for k := 0; k < 12; k++ {
				i, r := Pick(nodes, req, p, last)
				if r != OK {
					t.Fatalf("placement %d: %v", k, r)
				}
				Reserve(&nodes[i], req)
				count[i]++
				last = i
			}
			for i, c := range count {
				if c != 4 {
					t.Fatalf("node %d got %d instances, want 4 each: %v", i, c, count)
				}
			}
			if i, r := Pick(nodes, req, p, last); r != NoFit {
				t.Fatalf("cluster should be full, got %d", i)
			}
		})
	}
	t.Run("pack fills one node first", func(t *testing.T) {
		nodes := []Node{ready(1024), ready(1024)}
		req := Request{MemMB: 256}
		last := -1
		var order []int
		for k := 0; k < 8; k++ {
			i, r := Pick(nodes, req, Pack, last)
			if r != OK {
				t.Fatalf("placement %d: %v", k, r)
			}
			Reserve(&nodes[i], req)
			order = append(order, i)
			last = i
		}
		// The first pick is a tie (rotation picks node 0); from then on
		// node 0 is fuller and keeps winning until it is full.
		want := []int{0, 0, 0, 0, 1, 1, 1, 1}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Fatalf("order %v, want %v", order, want)
		}
	})
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		ok   bool
	}{
		{"", FirstFit, true}, {"firstfit", FirstFit, true}, {"first-fit", FirstFit, true},
		{"Spread", Spread, true}, {"pack", Pack, true}, {"best", FirstFit, false},
	} {
		got, err := ParsePolicy(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePolicy(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "" {
			if back, _ := ParsePolicy(got.String()); back != got {
				t.Errorf("round trip of %v gave %v", got, back)
			}
		}
	}
}

// BenchmarkPick places 256 MB instances on n idle 16138 MB nodes, as the
// 2016 BenchmarkPickComputeNode did, refilling the nodes when the cluster
// is full so every iteration is a successful placement.
func BenchmarkPick(b *testing.B) {
	for _, p := range []Policy{FirstFit, Spread, Pack} {
		for _, n := range []int{10, 100, 1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/%d", p, n), func(b *testing.B) {
				if testing.Short() && n > 1000 {
					b.Skip("large cluster skipped with -short")
				}
				nodes := make([]Node, n)
				for i := range nodes {
					nodes[i] = ready(16138)
				}
				req := Request{MemMB: 256, VCPUs: 2, DiskMB: 10000}
				last := -1
				b.ResetTimer()
				for k := 0; k < b.N; k++ {
					i, r := Pick(nodes, req, p, last)
					if r != OK {
						for j := range nodes {
							nodes[j].MemAvailMB = 16138
						}
						continue
					}
					Reserve(&nodes[i], req)
					last = i
				}
			})
		}
	}
}

// TestPickMatchesReference compares Pick with a direct transcription of
// the policies on random clusters.
func TestPickMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := func(nodes []Node, r Request, p Policy, last int) int {
		n := len(nodes)
		start := last + 1
		if start < 0 || start >= n {
			start = 0
		}
		chosen := -1
		for k := 0; k < n; k++ {
			i := (start + k) % n
			if !nodes[i].Ready || nodes[i].MemAvailMB < r.MemMB {
				continue
			}
			switch {
			case chosen < 0:
				chosen = i
			case p == Spread && nodes[i].MemAvailMB > nodes[chosen].MemAvailMB:
				chosen = i
			case p == Pack && nodes[i].MemAvailMB < nodes[chosen].MemAvailMB:
				chosen = i
			}
			if p == FirstFit {
				break
			}
		}
		return chosen
	}
	for iter := 0; iter < 20000; iter++ {
		nodes := make([]Node, rng.IntN(12))
		for i := range nodes {
			nodes[i] = Node{Ready: rng.IntN(4) != 0, MemAvailMB: rng.IntN(8) * 128}
		}
		req := Request{MemMB: rng.IntN(6) * 128}
		last := rng.IntN(len(nodes)+3) - 2
		p := Policy(rng.IntN(3))
		got, reason := Pick(nodes, req, p, last)
		want := ref(nodes, req, p, last)
		if got != want {
			t.Fatalf("%v on %+v req %d last %d: got %d (%v), want %d", p, nodes, req.MemMB, last, got, reason, want)
		}
		switch {
		case len(nodes) == 0 && reason != NoNodes,
			len(nodes) > 0 && got < 0 && reason != NoFit,
			got >= 0 && reason != OK:
			t.Fatalf("reason %v for result %d on %d nodes", reason, got, len(nodes))
		}
	}
}
