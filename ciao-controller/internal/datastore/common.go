package datastore

import (
	"fmt"
	"sort"
	"time"
)

// now is the store clock: UTC without a monotonic reading, so values
// compare equal after a round trip through storage.
func now() time.Time { return time.Now().UTC().Round(0) }

func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t.UTC().Round(0)
}

// request returns what one instance of w asks for (spec §4.5).
func request(w Workload) map[string]int {
	req := map[string]int{ResInstances: 1}
	for _, d := range w.Defaults {
		if d.Type == ResInstances {
			continue
		}
		req[d.Type] += d.Value
	}
	return req
}

// overLimit applies the admission rule: a resource is over limit iff
// limit > 0 and usage + request > limit.
func overLimit(limits, usage, req map[string]int) (string, bool) {
	names := make([]string, 0, len(req))
	for n := range req {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if l, ok := limits[n]; ok && l > 0 && usage[n]+req[n] > l {
			return n, true
		}
	}
	return "", false
}

func quotaList(limits, usage map[string]int) []Quota {
	seen := map[string]bool{}
	var out []Quota
	add := func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		l, ok := limits[n]
		if !ok {
			l = -1
		}
		out = append(out, Quota{Resource: n, Limit: l, Usage: usage[n]})
	}
	for _, n := range Resources {
		add(n)
	}
	var extra []string
	for n := range limits {
		extra = append(extra, n)
	}
	for n := range usage {
		extra = append(extra, n)
	}
	sort.Strings(extra)
	for _, n := range extra {
		add(n)
	}
	return out
}

func checkRequests(reqs []InstanceRequest) error {
	if len(reqs) == 0 {
		return fmt.Errorf("create instances: no instances requested: %w", ErrInvalid)
	}
	seen := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		if r.ID == "" || r.TenantID == "" || r.WorkloadID == "" {
			return fmt.Errorf("create instances: id, tenant and workload are required: %w", ErrInvalid)
		}
		if seen[r.ID] {
			return fmt.Errorf("create instances: duplicate id %s: %w", r.ID, ErrExists)
		}
		seen[r.ID] = true
	}
	return nil
}

// page applies marker/offset/limit to ids sorted ascending; it returns
// the index range and the total (spec §6.2.2).
func page(ids []string, q InstanceQuery) (lo, hi, total int, err error) {
	lo = 0
	if q.Marker != "" {
		i := sort.SearchStrings(ids, q.Marker)
		if i == len(ids) || ids[i] != q.Marker {
			return 0, 0, 0, fmt.Errorf("list instances: marker %s: %w", q.Marker, ErrNotFound)
		}
		lo = i + 1
	} else if q.Offset > 0 {
		lo = q.Offset
	}
	total = len(ids)
	if q.Marker != "" {
		total = len(ids) - lo
	}
	if lo > len(ids) {
		lo = len(ids)
	}
	hi = len(ids)
	if q.Limit > 0 && lo+q.Limit < hi {
		hi = lo + q.Limit
	}
	return lo, hi, total, nil
}

func copyUsage(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
