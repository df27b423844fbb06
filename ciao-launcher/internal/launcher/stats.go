package launcher

import (
	"bytes"

	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/payloads"
)

// STATS encoding. A STATS frame lists every instance every period, and
// encoding the whole list with the YAML library dominated an idle
// launcher's CPU (1000 simulated instances, one STATS a second). Each
// instance's list item is therefore encoded once per change of what it
// reports and kept on its record; a frame is the node part, encoded each
// time, followed by the kept items. The bytes are those yaml.Marshal gives
// for the whole payloads.Stat (tests compare both); an instance whose
// strings could make the YAML library quote or fold them differently
// inside a list falls back to encoding the whole frame the library's way.

// statKey is what an instance's STATS item says besides its id.
type statKey struct {
	state, sshIP           string
	sshPort, mem, disk, cp int
}

// statItem caches an instance's encoded STATS list item.
type statItem struct {
	key  statKey
	yaml []byte // nil: not encoded yet
}

// instanceStat is the record's entry of the STATS instances list.
func (r *instRecord) instanceStat() payloads.InstanceStat {
	mem, cpu := r.sample.memMB, r.sample.cpu
	if r.state != payloads.InstanceActive {
		mem, cpu = -1, -1
	}
	return payloads.InstanceStat{
		InstanceUUID: r.id, State: r.state, SSHIP: r.sshIP, SSHPort: r.sshPort,
		MemoryUsageMB: mem, DiskUsageMB: r.sample.diskMB, CPUUsage: cpu, Volumes: []string{},
	}
}

// statItem returns the record's encoded list item ("- instance_uuid: ..."
// and its indented lines), encoding it only if it changed; ok is false if
// the item cannot be encoded on its own.
func (r *instRecord) statItem() (item []byte, ok bool) {
	is := r.instanceStat()
	k := statKey{is.State, is.SSHIP, is.SSHPort, is.MemoryUsageMB, is.DiskUsageMB, is.CPUUsage}
	if r.stat.yaml != nil && r.stat.key == k {
		return r.stat.yaml, true
	}
	if !plainScalar(is.InstanceUUID) || !plainScalar(is.State) || !plainScalar(is.SSHIP) {
		return nil, false
	}
	b, err := yaml.Marshal(&is)
	if err != nil {
		return nil, false
	}
	r.stat = statItem{key: k, yaml: listItem(b)}
	return r.stat.yaml, true
}

// listItem turns a top-level YAML mapping into an item of a block sequence
// nested in a mapping, as yaml.v2 writes it: "- " before the first line,
// two spaces before the others.
func listItem(b []byte) []byte {
	out := make([]byte, 0, len(b)+2*(bytes.Count(b, []byte("\n"))+1))
	for i, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if i == 0 {
			out = append(out, "- "...)
		} else {
			out = append(out, "  "...)
		}
		out = append(out, line...)
	}
	return out
}

// plainScalar reports whether s is written the same way, on one line,
// wherever it appears: empty (always "") or short, made of letters,
// digits, '.', ':' (not first or last), '-' and '_' (not first), and not
// a word YAML would read as another type. Anything else falls back to the
// library on the whole frame.
func plainScalar(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.':
		case (c == '-' || c == '_') && i > 0:
		case c == ':' && i > 0 && i < len(s)-1 && s[i+1] != ' ':
		default:
			return false
		}
	}
	return true
}

// encodeStats encodes s, whose Instances are ignored, followed by the
// instance list items; with no items, or if any item is missing (nil),
// all comes from yaml.Marshal(full), full being s with its instances.
func encodeStats(s payloads.Stat, items [][]byte, full func() []payloads.InstanceStat) ([]byte, error) {
	slow := len(items) == 0
	for _, it := range items {
		if it == nil {
			slow = true
			break
		}
	}
	if slow {
		s.Instances = full()
		return yaml.Marshal(&s)
	}
	s.Instances = nil
	head, err := yaml.Marshal(&s)
	if err != nil {
		return nil, err
	}
	const empty = "instances: []\n"
	if !bytes.HasSuffix(head, []byte(empty)) {
		// Not the layout this encoder knows (payloads.Stat changed).
		s.Instances = full()
		return yaml.Marshal(&s)
	}
	n := len(head) - len(empty) + len("instances:\n")
	for _, it := range items {
		n += len(it)
	}
	out := make([]byte, 0, n)
	out = append(out, head[:len(head)-len(empty)]...)
	out = append(out, "instances:\n"...)
	for _, it := range items {
		out = append(out, it...)
	}
	return out, nil
}
