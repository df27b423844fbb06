package launcher

import (
	"bytes"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/payloads"
)

// statsFrame encodes the STATS of recs the way report does.
func statsFrame(t testing.TB, s payloads.Stat, recs []*instRecord) []byte {
	sort.Slice(recs, func(i, j int) bool { return recs[i].id < recs[j].id })
	items := make([][]byte, len(recs))
	for i, r := range recs {
		items[i], _ = r.statItem()
	}
	b, err := encodeStats(s, items, func() []payloads.InstanceStat {
		all := make([]payloads.InstanceStat, 0, len(recs))
		for _, r := range recs {
			all = append(all, r.instanceStat())
		}
		return all
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// libraryFrame is the reference: the whole Stat through yaml.Marshal.
func libraryFrame(t testing.TB, s payloads.Stat, recs []*instRecord) []byte {
	s.Instances = []payloads.InstanceStat{}
	for _, r := range recs {
		s.Instances = append(s.Instances, r.instanceStat())
	}
	b, err := yaml.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testNode() payloads.Stat {
	return payloads.Stat{
		NodeUUID: "5c4a1a7e-0000-4000-8000-000000000001", Status: "READY",
		MemTotalMB: 7900, MemAvailableMB: 5000, DiskTotalMB: 100000, DiskAvailableMB: 90000,
		Load: 1, CpusOnline: 2, NodeHostName: "node-1",
		Networks: []payloads.NetworkStat{{NodeIP: "192.168.1.10", NodeMAC: "02:00:00:00:00:01"}},
	}
}

// TestStatsEncodingMatchesLibrary: the STATS bytes built from cached
// per-instance items are those yaml.Marshal gives for the whole payload
// (payloads.md §3.x is the library's layout), for random instance tables
// whose records change between frames, including strings the cache must
// not handle (spaces, quotes, newlines, long values), zero instances and
// a node with no networks; and they decode back to the same payload.
func TestStatsEncodingMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	odd := []string{"", "10.0.0.1", "a b", "'q'", "x\ny", "true", "123", "- dash", "a: b", "#h",
		string(bytes.Repeat([]byte("long words "), 12)), "ümlaut", "null", "~"}
	states := []string{payloads.InstancePending, payloads.InstanceActive, payloads.InstanceExited}
	node := testNode()
	for round := 0; round < 200; round++ {
		n := rng.Intn(6)
		if round%50 == 0 {
			n = 0
		}
		if round%7 == 0 {
			node.Networks = nil
		}
		recs := make([]*instRecord, n)
		for i := range recs {
			recs[i] = &instRecord{
				id:    fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012d", rng.Intn(1000)),
				state: states[rng.Intn(3)], sshIP: "10.0.0.1", sshPort: 33000 + i,
				sample: sample{rng.Intn(50) - 1, rng.Intn(50) - 1, rng.Intn(101) - 1},
			}
			if rng.Intn(4) == 0 {
				recs[i].sshIP = odd[rng.Intn(len(odd))]
			}
			if rng.Intn(10) == 0 {
				recs[i].id = odd[rng.Intn(len(odd))]
			}
		}
		// Several frames per table: samples and states change in between.
		for frame := 0; frame < 3; frame++ {
			got, want := statsFrame(t, node, recs), libraryFrame(t, node, recs)
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d frame %d: cached encoding differs:\n got:\n%s\nwant:\n%s", round, frame, got, want)
			}
			var back payloads.Stat
			if err := yaml.Unmarshal(got, &back); err != nil || len(back.Instances) != n {
				t.Fatalf("round %d: decoding the frame: %v, %d instances of %d", round, err, len(back.Instances), n)
			}
			for _, r := range recs {
				if rng.Intn(2) == 0 {
					r.sample.cpu = rng.Intn(101)
					r.state = states[rng.Intn(3)]
				}
			}
		}
	}
}

// TestStatItemCached: an unchanged record reuses its encoded item; a
// change of sample or state re-encodes it.
func TestStatItemCached(t *testing.T) {
	r := &instRecord{id: "0a1b2c3d-0000-4000-8000-000000000001", state: payloads.InstanceActive, sample: sample{3, 4, 5}}
	a, ok := r.statItem()
	if !ok {
		t.Fatal("plain record not cacheable")
	}
	if b, _ := r.statItem(); &b[0] != &a[0] {
		t.Error("unchanged record re-encoded")
	}
	r.sample.cpu = 6
	if b, _ := r.statItem(); !bytes.Contains(b, []byte("cpu_usage: 6\n")) {
		t.Errorf("changed sample not re-encoded:\n%s", b)
	}
	r.state = payloads.InstanceExited
	if b, _ := r.statItem(); !bytes.Contains(b, []byte("state: exited\n")) || !bytes.Contains(b, []byte("cpu_usage: -1\n")) {
		t.Errorf("changed state not re-encoded:\n%s", b)
	}
}

// BenchmarkSTATS encodes the STATS of 100 active instances whose samples
// do not change (the steady state between resource samples): "library" is
// yaml.Marshal of the whole payload (the encoding before the cache),
// "cached" is what report does now.
func BenchmarkSTATS(b *testing.B) {
	recs := make([]*instRecord, 100)
	for i := range recs {
		recs[i] = &instRecord{id: fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012d", i), state: payloads.InstanceActive,
			sshIP: "192.168.1.1", sshPort: 33000 + i, sample: sample{3, 10, 10}}
	}
	node := testNode()
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			libraryFrame(b, node, recs)
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			statsFrame(b, node, recs)
		}
	})
}
