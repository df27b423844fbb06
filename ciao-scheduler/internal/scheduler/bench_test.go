package scheduler

import (
	"fmt"
	"testing"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// BenchmarkStartDecision measures the START path up to the write: decode
// the controller's payload, choose a node under the lock, reserve, and
// take the node's READY that follows (one READY per START, as launchers
// send). The SSNTP write itself is the load tool's business.
func BenchmarkStartDecision(b *testing.B) {
	payload := composedStart(b, "3390740c-dce9-48d6-b83a-a717417072ce", 256, false)
	ready := []byte("node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\nmem_total_mb: 16138\nmem_available_mb: 16138\ndisk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 4\n")
	for _, policy := range []placement.Policy{placement.FirstFit, placement.Spread} {
		for _, n := range []int{10, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				s := &Scheduler{cfg: Config{Policy: policy}, cn: newPool(payloads.ComputeNode), nn: newPool(payloads.NetworkNode)}
				ri, _, _ := decodeReady(ready)
				for i := 0; i < n; i++ {
					id := uuid.Generate()
					s.cn.add(id)
					s.cn.setStatus(id, ssntp.READY, &ri)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					si, _, err := decodeStart(payload)
					if err != nil {
						b.Fatal(err)
					}
					dest, reason := s.place(si.req)
					if reason != placement.OK {
						b.Fatal(reason)
					}
					r, _, _ := decodeReady(ready)
					s.mu.Lock()
					s.cn.setStatus(dest, ssntp.READY, &r)
					s.mu.Unlock()
				}
			})
		}
	}
}
