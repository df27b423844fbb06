package scheduler

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	yaml "gopkg.in/yaml.v2"
)

// Decoding a START with yaml.v2 costs tens of microseconds and hundreds of
// allocations, more than the rest of a placement together. The scheduler
// needs four numbers and one string from it, so the fast path below reads
// them straight from the bytes. It accepts only a strict subset of YAML:
// the block style that yaml.v2 and the 2016 controller and test fixtures
// write (plain lower-case keys of the known schema, each once; single-line
// plain or escape-free quoted scalars; "- " sequences at any consistent
// indentation; an ASCII payload). Anything outside that subset, and any
// START it would have to reject, goes to yaml.v2, which stays the judge of
// what the payload means: FuzzStartFastPath checks that the two agree
// whenever the fast path answers, and the slow_path_decodings_total metric
// counts the payloads that took the slow path. READY gets the same
// treatment (FuzzReadyFastPath).

// startInfo is what the scheduler takes from a START.
type startInfo struct {
	// instance is the instance_uuid, a slice of the payload (no copy).
	instance []byte
	req      placement.Request
}

// decodeStart returns what placement needs from a START payload, by the
// fast path when it can and by yaml.v2 otherwise. Errors wrap
// payloads.ErrInvalidPayload (undecodable) or payloads.ErrInvalidData
// (no positive mem_mb, network_node not 0 or 1); the returned instance is
// set whenever the payload decoded, so the failure can name it.
func decodeStart(p []byte) (startInfo, bool, error) {
	if si, ok := fastStart(p); ok {
		return si, true, nil
	}
	si, err := slowStart(p)
	return si, false, err
}

// slowStart is the 2016 decoding: yaml.v2 on the whole payload, which
// reads the first document only.
func slowStart(p []byte) (startInfo, error) {
	s, err := payloads.DecodeStart(p)
	if err != nil {
		return startInfo{}, err
	}
	c := &s.Start
	si := startInfo{instance: []byte(c.InstanceUUID)}
	if err := c.ValidateForScheduler(); err != nil {
		return si, err
	}
	si.req.MemMB, _ = c.MemMB()
	si.req.VCPUs, _ = c.VCPUs()
	si.req.DiskMB, _ = c.DiskMB()
	si.req.NetworkNode, _ = c.NetworkNode()
	return si, nil
}

// readyInfo is a READY payload's figures; −1 where a key is missing, as
// the 2016 receivers initialised them.
type readyInfo struct {
	memTotal, memAvail, diskTotal, diskAvail, load, cpus int
}

// decodeReady reads a READY payload, by the fast path when it can.
func decodeReady(p []byte) (readyInfo, bool, error) {
	if ri, ok := fastReady(p); ok {
		return ri, true, nil
	}
	ri, err := slowReady(p)
	return ri, false, err
}

func slowReady(p []byte) (readyInfo, error) {
	var r payloads.Ready
	r.Init()
	if err := yaml.Unmarshal(p, &r); err != nil {
		return readyInfo{}, fmt.Errorf("%w: ready: %w", payloads.ErrInvalidPayload, err)
	}
	return readyInfo{r.MemTotalMB, r.MemAvailableMB, r.DiskTotalMB, r.DiskAvailableMB, r.Load, r.CpusOnline}, nil
}

// plainText reports whether every byte is one the YAML reader accepts
// without question: printable ASCII, tab, CR or LF. yaml.v2 decodes its
// input a window at a time, so a bad byte shortly after the first document
// can still fail the decoding; requiring the whole payload to be plain
// ASCII keeps the fast path away from that. It also returns the offset of
// the first tab or carriage return (len(p) if none), which the fast path
// refuses inside the documents it reads.
func plainText(p []byte) (ok bool, tabOrCR int) {
	// Eight bytes at a time: any byte with the top bit set, any 0x7f and
	// any control byte sends the word to the exact check below, which most
	// words (those without a newline) skip.
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	tabOrCR = len(p)
	i := 0
	for ; i+8 <= len(p); i += 8 {
		w := binary.LittleEndian.Uint64(p[i:])
		if w&hi != 0 {
			return false, 0
		}
		del := w ^ (0x7f * lo)
		if (del-lo)&^del&hi != 0 || (w-0x20*lo)&^w&hi != 0 {
			for k, b := range p[i : i+8] {
				if !plainByte(b) {
					return false, 0
				}
				if (b == '\t' || b == '\r') && tabOrCR == len(p) {
					tabOrCR = i + k
				}
			}
		}
	}
	for k, b := range p[i:] {
		if !plainByte(b) {
			return false, 0
		}
		if (b == '\t' || b == '\r') && tabOrCR == len(p) {
			tabOrCR = i + k
		}
	}
	return true, tabOrCR
}

func plainByte(b byte) bool {
	return (b >= 0x20 && b <= 0x7e) || b == '\t' || b == '\n' || b == '\r'
}

// line is one line of the payload: its indentation, its content after the
// indentation (without the newline) and where the next line starts.
type line struct {
	indent  int
	content []byte
	next    int
	blank   bool // only spaces
}

// lines walks the first document a line at a time.
type lines struct {
	p    []byte
	pos  int
	stop int // offset of the first tab or carriage return
	// The last line peeked, kept because each line is peeked by the loop
	// that ends a block and again by the one that continues.
	cached           line
	cachedAt         int
	cacheOK, cacheOn bool
}

// peek returns the next line (valid until the next peek); ok is false at
// the end of the payload. Tabs and carriage returns fail the line (bad is
// true): in the first document the fast path leaves them to yaml.v2.
func (l *lines) peek() (ln *line, ok, bad bool) {
	if l.pos >= len(l.p) {
		return &l.cached, false, false
	}
	if !l.cacheOn || l.cachedAt != l.pos {
		l.cacheOK = l.scan(&l.cached)
		l.cachedAt, l.cacheOn = l.pos, true
	}
	return &l.cached, true, !l.cacheOK
}

// scan reads the line at pos into ln; false if it holds a tab or CR.
func (l *lines) scan(ln *line) bool {
	rest := l.p[l.pos:]
	n := bytes.IndexByte(rest, '\n')
	next := l.pos + n + 1
	if n < 0 {
		n = len(rest)
		next = len(l.p)
	}
	if l.stop < next {
		return false
	}
	text := rest[:n]
	ind := 0
	for ind < len(text) && text[ind] == ' ' {
		ind++
	}
	ln.indent, ln.content, ln.next, ln.blank = ind, text[ind:], next, ind == len(text)
	return true
}

// peekNonBlank skips blank lines and returns the next other one.
func (l *lines) peekNonBlank() (ln *line, ok, bad bool) {
	for {
		ln, ok, bad = l.peek()
		if !ok || bad || !ln.blank {
			return ln, ok, bad
		}
		l.pos = ln.next
	}
}

// keyValue splits "key: value" or "key:" with a key of lower-case letters,
// digits and underscores; value has its trailing spaces removed.
func keyValue(c []byte) (key, value []byte, ok bool) {
	i := 0
	for i < len(c) && (c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9' || c[i] == '_') {
		i++
	}
	if i == 0 || i >= len(c) || c[i] != ':' {
		return nil, nil, false
	}
	key = c[:i]
	rest := c[i+1:]
	if len(rest) > 0 && rest[0] != ' ' {
		return nil, nil, false
	}
	rest = bytes.TrimLeft(rest, " ")
	rest = bytes.TrimRight(rest, " ")
	return key, rest, true
}

// scalar returns the text of a single-line scalar value: a plain scalar
// that cannot be read as anything but itself, or a quoted one without
// escapes. ok is false for anything else (flow collections, anchors,
// aliases, tags, block scalars, comments, "a: b" inside the value...).
func scalar(v []byte) (text []byte, ok bool) {
	if len(v) == 0 {
		return nil, false
	}
	switch v[0] {
	case '"':
		if len(v) < 2 || v[len(v)-1] != '"' {
			return nil, false
		}
		in := v[1 : len(v)-1]
		if bytes.IndexByte(in, '"') >= 0 || bytes.IndexByte(in, '\\') >= 0 {
			return nil, false
		}
		return in, true
	case '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' {
			return nil, false
		}
		in := v[1 : len(v)-1]
		if bytes.IndexByte(in, '\'') >= 0 {
			return nil, false
		}
		return in, true
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`':
		return nil, false
	}
	if v[len(v)-1] == ':' {
		return nil, false
	}
	for i := 0; i+1 < len(v); i++ {
		if (v[i] == ':' && v[i+1] == ' ') || (v[i] == ' ' && v[i+1] == '#') {
			return nil, false
		}
	}
	return v, true
}

// isNull reports whether a plain scalar reads as YAML null.
func isNull(v []byte) bool {
	switch string(v) {
	case "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// smallInt parses 0 or a decimal of up to nine digits without a leading
// zero (optionally negative when neg): the only integers the fast path
// takes, since yaml.v2 also reads octal, hex, binary, underscores and
// floats into ints.
func smallInt(v []byte, neg bool) (int, bool) {
	sign := 1
	if neg && len(v) > 1 && v[0] == '-' {
		sign, v = -1, v[1:]
		if v[0] == '0' {
			return 0, false
		}
	}
	if len(v) == 0 || len(v) > 9 || (v[0] == '0' && len(v) > 1) {
		return 0, false
	}
	n := 0
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int(b-'0')
	}
	return sign * n, true
}

// isBool accepts the two spellings yaml.v2 writes.
func isBool(v []byte) bool { return string(v) == "true" || string(v) == "false" }

// Field kinds of the START schema.
const (
	kString = iota // any single-line scalar
	kInt
	kBool
)

// startKeys are the keys of the start mapping, as payloads.StartCmd.
var startKeys = [...]string{
	"tenant_uuid", "instance_uuid", "image_uuid", "docker_image", "fw_type",
	"persistence", "vm_type", "requested_resources", "estimated_resources",
	"networking", "storage",
}

const (
	kTenant = iota
	kInstance
	kImage
	kDocker
	kFW
	kPersistence
	kVMType
	kRequested
	kEstimated
	kNetworking
	kStorage
)

// networkingKeys are payloads.NetworkResources.
var networkingKeys = [...]struct {
	name string
	kind int
}{
	{"vnic_mac", kString}, {"vnic_uuid", kString}, {"concentrator_uuid", kString},
	{"concentrator_ip", kString}, {"subnet", kString}, {"subnet_key", kString},
	{"subnet_uuid", kString}, {"private_ip", kString}, {"public_ip", kBool},
}

// storageKeys are payloads.StorageResources.
var storageKeys = [...]struct {
	name string
	kind int
}{{"id", kString}, {"boot", kBool}}

func lookup(key []byte, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	return -1
}

// fastStart reads a START the yaml.v2 way, or gives up (ok false). It
// never rejects a payload: it answers only for a valid one.
func fastStart(p []byte) (si startInfo, ok bool) {
	ok, stop := plainText(p)
	if !ok {
		return si, false
	}
	l := lines{p: p, stop: stop}
	ln, more, bad := l.peek()
	if !more || bad {
		return si, false
	}
	if string(ln.content) == "---" && ln.indent == 0 {
		l.pos = ln.next
		if ln, more, bad = l.peek(); !more || bad {
			return si, false
		}
	}
	if ln.indent != 0 || string(ln.content) != "start:" {
		return si, false
	}
	l.pos = ln.next
	first, more, bad := l.peekNonBlank()
	if !more || bad || first.indent == 0 {
		return si, false
	}
	indent := first.indent
	var seen uint32
	mem, memSet, nn := 0, false, 0
	for {
		ln, more, bad := l.peekNonBlank()
		if bad {
			return si, false
		}
		if !more || ln.indent < indent {
			break
		}
		if ln.indent > indent {
			return si, false
		}
		key, val, kv := keyValue(ln.content)
		if !kv {
			return si, false
		}
		k := lookup(key, startKeys[:])
		if k < 0 || seen&(1<<k) != 0 {
			return si, false
		}
		seen |= 1 << k
		l.pos = ln.next
		switch k {
		case kRequested, kEstimated:
			if string(val) == "[]" {
				continue
			}
			if len(val) != 0 {
				return si, false
			}
			okSeq := l.sequence(indent, func(typ []byte, value int) {
				if k != kRequested {
					return
				}
				switch string(typ) {
				case "mem_mb":
					mem, memSet = value, true
				case "vcpus":
					si.req.VCPUs = value
				case "disk_mb":
					si.req.DiskMB = value
				case "network_node":
					nn = value
				}
			}, k == kRequested)
			if !okSeq {
				return si, false
			}
		case kNetworking, kStorage:
			if string(val) == "{}" {
				continue
			}
			if len(val) != 0 {
				return si, false
			}
			var okMap bool
			if k == kNetworking {
				okMap = l.flatMapping(indent, networkingKeys[:])
			} else {
				okMap = l.flatMapping(indent, storageKeys[:])
			}
			if !okMap {
				return si, false
			}
		default:
			text, okS := scalar(val)
			if !okS {
				return si, false
			}
			if k == kInstance {
				if val[0] != '"' && val[0] != '\'' && isNull(text) {
					return si, false
				}
				si.instance = text
			}
		}
	}
	// The document must end here: a document marker or the end of the
	// payload. Another top-level key would be more YAML to judge.
	if ln, more, _ := l.peekNonBlank(); more && (ln.indent != 0 || (string(ln.content) != "..." && string(ln.content) != "---")) {
		return si, false
	}
	if !memSet || mem <= 0 || (nn != 0 && nn != 1) {
		return si, false // invalid: let yaml.v2 give the precise error
	}
	si.req.MemMB = mem
	si.req.NetworkNode = nn == 1
	return si, true
}

// flatMapping reads a nested mapping of scalar fields indented more than
// parent. Every key must be known and appear once.
func (l *lines) flatMapping(parent int, keys []struct {
	name string
	kind int
}) bool {
	first, more, bad := l.peekNonBlank()
	if !more || bad || first.indent <= parent {
		return false
	}
	indent := first.indent
	var seen uint32
	for {
		ln, more, bad := l.peekNonBlank()
		if bad {
			return false
		}
		if !more || ln.indent < indent {
			return true
		}
		if ln.indent > indent {
			return false
		}
		key, val, ok := keyValue(ln.content)
		if !ok {
			return false
		}
		k := -1
		for i := range keys {
			if string(key) == keys[i].name {
				k = i
				break
			}
		}
		if k < 0 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if !scalarOfKind(val, keys[k].kind) {
			return false
		}
		l.pos = ln.next
	}
}

func scalarOfKind(val []byte, kind int) bool {
	switch kind {
	case kInt:
		_, ok := smallInt(val, false)
		return ok
	case kBool:
		return isBool(val)
	}
	_, ok := scalar(val)
	return ok
}

// sequence reads a block sequence of resource entries belonging to a key at
// indentation parent: "- " items at one indentation, not less than
// parent's, each a mapping of type, value and (for requested resources)
// mandatory. It calls entry for each item, in order.
func (l *lines) sequence(parent int, entry func(typ []byte, value int), mandatory bool) bool {
	first, more, bad := l.peekNonBlank()
	if !more || bad || first.indent < parent || !isItem(first.content) {
		return false
	}
	indent := first.indent
	for {
		ln, more, bad := l.peekNonBlank()
		if bad {
			return false
		}
		if !more || ln.indent < indent {
			return true
		}
		if ln.indent > indent {
			return false
		}
		if !isItem(ln.content) {
			// Back to the parent mapping: only possible when the items
			// sit at the parent's own indentation.
			return indent == parent
		}
		// The item's mapping starts after "- ", two columns in.
		col := indent + 2
		var typ []byte
		value := 0
		var seen uint32
		c := ln.content[2:]
		for {
			key, val, ok := keyValue(c)
			if !ok {
				return false
			}
			var k int
			switch string(key) {
			case "type":
				k = 0
				t, okS := scalar(val)
				if !okS || (val[0] != '"' && val[0] != '\'' && isNull(t)) {
					return false
				}
				typ = t
			case "value":
				k = 1
				v, okI := smallInt(val, false)
				if !okI {
					return false
				}
				value = v
			case "mandatory":
				k = 2
				if !mandatory || !isBool(val) {
					return false
				}
			default:
				return false
			}
			if seen&(1<<k) != 0 {
				return false
			}
			seen |= 1 << k
			l.pos = ln.next
			ln, more, bad = l.peekNonBlank()
			if bad {
				return false
			}
			if !more || ln.indent < col {
				break
			}
			if ln.indent > col {
				return false
			}
			c = ln.content
		}
		entry(typ, value)
	}
}

// isItem reports a "- x" sequence entry with exactly one space.
func isItem(c []byte) bool {
	return len(c) >= 3 && c[0] == '-' && c[1] == ' ' && c[2] != ' '
}

// readyKeys are payloads.Ready's keys, in wire order.
var readyKeys = [...]string{
	"node_uuid", "mem_total_mb", "mem_available_mb", "disk_total_mb",
	"disk_available_mb", "load", "cpus_online",
}

// fastReady reads a READY payload (a flat mapping) or gives up.
func fastReady(p []byte) (ri readyInfo, ok bool) {
	ri = readyInfo{-1, -1, -1, -1, -1, -1}
	ok, stop := plainText(p)
	if !ok {
		return ri, false
	}
	l := lines{p: p, stop: stop}
	if ln, more, bad := l.peek(); more && !bad && ln.indent == 0 && string(ln.content) == "---" {
		l.pos = ln.next
	}
	var seen uint32
	for {
		ln, more, bad := l.peekNonBlank()
		if bad {
			return ri, false
		}
		if !more {
			// A document with no keys reads as null, which yaml.v2
			// turns into zeroes, unlike no document at all: leave
			// both to it.
			return ri, seen != 0
		}
		if ln.indent != 0 {
			return ri, false
		}
		if string(ln.content) == "..." || string(ln.content) == "---" {
			return ri, seen != 0
		}
		key, val, kv := keyValue(ln.content)
		if !kv {
			return ri, false
		}
		k := lookup(key, readyKeys[:])
		if k < 0 || seen&(1<<k) != 0 {
			return ri, false
		}
		seen |= 1 << k
		if k == 0 {
			if _, okS := scalar(val); !okS {
				return ri, false
			}
		} else {
			v, okI := smallInt(val, true)
			if !okI {
				return ri, false
			}
			switch k {
			case 1:
				ri.memTotal = v
			case 2:
				ri.memAvail = v
			case 3:
				ri.diskTotal = v
			case 4:
				ri.diskAvail = v
			case 5:
				ri.load = v
			case 6:
				ri.cpus = v
			}
		}
		l.pos = ln.next
	}
}

// startReason maps a START decoding error to its failure reason.
func startReason(err error) payloads.StartFailureReason {
	if errors.Is(err, payloads.ErrInvalidData) {
		return payloads.StartInvalidData
	}
	return payloads.StartInvalidPayload
}
