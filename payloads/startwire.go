package payloads

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	yaml "gopkg.in/yaml.v2"
)

// StartMetadata is the third document of a START payload, the instance
// metadata handed to cloud-init, written as tab-indented JSON.
type StartMetadata struct {
	UUID     string `json:"uuid"`     // instance UUID
	Hostname string `json:"hostname"` // instance UUID, or cnci-<tenant uuid> for a CNCI
}

// ComposeStart builds the START payload the controller sends: three YAML
// documents,
//
//	"---\n" + the marshalled start + "...\n"
//	userData, verbatim (conventionally "---\n#cloud-config\n…\n...\n")
//	"---\n" + meta as tab-indented JSON + "\n...\n"
//
// If userData is non-empty and lacks a final newline one is added, so that
// the metadata's "---" starts a line (the 2016 controller would have glued
// it to the last user-data line).
func ComposeStart(start *Start, userData string, meta StartMetadata) ([]byte, error) {
	doc, err := yaml.Marshal(start)
	if err != nil {
		return nil, fmt.Errorf("payloads: composing start: %w", err)
	}
	js, err := json.MarshalIndent(meta, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("payloads: composing start metadata: %w", err)
	}
	var b bytes.Buffer
	b.Grow(len(doc) + len(userData) + len(js) + 16)
	b.WriteString("---\n")
	b.Write(doc)
	b.WriteString("...\n")
	b.WriteString(userData)
	if userData != "" && userData[len(userData)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString("---\n")
	b.Write(js)
	b.WriteString("\n...\n")
	return b.Bytes(), nil
}

var (
	// startLine marks the START section.
	startLine = regexp.MustCompile(`^start\s*:\s*$`)
	// indented is the launcher's "indented" test: unanchored, so any line
	// containing white space anywhere passes.
	indented = regexp.MustCompile(`\s+`)
)

// span is a document: the half-open range [lo, hi) of line indexes.
type span struct{ lo, hi int }

func (s span) contains(i int) bool { return s.lo <= i && i < s.hi }

// SplitStart splits a START payload the way ciao-launcher does, returning
// the START YAML (to be decoded as Start), the cloud-init user-data and the
// metadata. The pieces are copies made of whole input lines, newlines
// included.
//
// Lines are separated by "\n". A document begins at a line starting with
// "---", together with the "%" directive lines immediately before it, and
// ends after the next line starting with "..." (or at the end of the
// payload); a "---" line inside an open document does not start a new one,
// and lines outside documents are ignored. A payload with no "---" line at
// all is one implicit document starting at its first line. The START
// section is marked by the first line of the payload matching
// ^start\s*:\s*$.
//
//   - 3 or more documents: only the first three count. The one containing
//     the start line is the START YAML, whole; the other two, in order, are
//     the user-data and the metadata.
//   - 2 documents: in the one containing the start line, the START YAML is
//     that line plus the run of lines following it that are empty or
//     contain any white space character (the launcher's quirky unanchored
//     test: "runcmd: [ls]" counts as indented); the document's other lines,
//     less a "..." terminator, are the user-data. The other document is the
//     metadata.
//   - 1 document: split the same way into START YAML and user-data.
//
// When no counted document contains the start line, SplitStart returns
// ErrNoStart, with nothing else for 3 or more documents, with the lines of
// the single document (less its terminator) as user-data for 1, and for 2
// with the first document (less its terminator) as user-data and the second
// as metadata.
func SplitStart(payload []byte) (startYAML, userData, metaData []byte, err error) {
	lines := splitLines(payload)
	docs := findDocuments(lines)
	at := -1
	for i, l := range lines {
		if startLine.Match(trimNewline(l)) {
			at = i
			break
		}
	}
	if len(docs) > 3 {
		docs = docs[:3]
	}
	k := -1
	for i, d := range docs {
		if d.contains(at) {
			k = i
			break
		}
	}

	switch len(docs) {
	case 0:
		return nil, nil, nil, ErrNoStart
	case 1:
		if k < 0 {
			return nil, withoutTerminator(lines, docs[0]), nil, ErrNoStart
		}
		startYAML, userData = splitSection(lines, docs[0], at)
		return startYAML, userData, nil, nil
	case 2:
		if k < 0 {
			return nil, withoutTerminator(lines, docs[0]), join(lines, docs[1]), ErrNoStart
		}
		startYAML, userData = splitSection(lines, docs[k], at)
		return startYAML, userData, join(lines, docs[1-k]), nil
	}
	if k < 0 {
		return nil, nil, nil, ErrNoStart
	}
	var rest []span
	for i, d := range docs {
		if i != k {
			rest = append(rest, d)
		}
	}
	return join(lines, docs[k]), join(lines, rest[0]), join(lines, rest[1]), nil
}

// splitLines cuts b after every "\n"; the last line may lack one. No empty
// line follows a final newline.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		n := bytes.IndexByte(b, '\n') + 1
		if n == 0 {
			n = len(b)
		}
		lines = append(lines, b[:n:n])
		b = b[n:]
	}
	return lines
}

func trimNewline(l []byte) []byte { return bytes.TrimSuffix(l, []byte{'\n'}) }

var (
	docStart = []byte("---")
	docEnd   = []byte("...")
)

// findDocuments returns the documents of lines in order; see SplitStart.
func findDocuments(lines [][]byte) []span {
	hasStart := false
	for _, l := range lines {
		if bytes.HasPrefix(l, docStart) {
			hasStart = true
			break
		}
	}
	if !hasStart {
		if len(lines) == 0 {
			return nil
		}
		return []span{{0, endOf(lines, 0)}}
	}
	var docs []span
	prevEnd := 0
	for i := 0; i < len(lines); {
		if !bytes.HasPrefix(lines[i], docStart) {
			i++
			continue
		}
		lo := i
		for lo > prevEnd && bytes.HasPrefix(lines[lo-1], []byte("%")) {
			lo--
		}
		hi := endOf(lines, i+1)
		docs = append(docs, span{lo, hi})
		prevEnd, i = hi, hi
	}
	return docs
}

// endOf returns the index just past the first line at or after from that
// starts with "...", or len(lines).
func endOf(lines [][]byte, from int) int {
	for j := from; j < len(lines); j++ {
		if bytes.HasPrefix(lines[j], docEnd) {
			return j + 1
		}
	}
	return len(lines)
}

// splitSection splits document d at the start line at into the START YAML
// and the user-data (the rest of d less a "..." terminator).
func splitSection(lines [][]byte, d span, at int) (startYAML, userData []byte) {
	startYAML = append(startYAML, lines[at]...)
	i := at + 1
	for ; i < d.hi; i++ {
		c := trimNewline(lines[i])
		if len(c) != 0 && !indented.Match(c) {
			break
		}
		startYAML = append(startYAML, lines[i]...)
	}
	userData = join(lines, span{d.lo, at})
	userData = append(userData, withoutTerminator(lines, span{i, d.hi})...)
	return startYAML, userData
}

// withoutTerminator joins the lines of d, leaving out a final line that
// starts with "...".
func withoutTerminator(lines [][]byte, d span) []byte {
	if d.hi > d.lo && bytes.HasPrefix(lines[d.hi-1], docEnd) {
		d.hi--
	}
	return join(lines, d)
}

// join returns a copy of the lines of d, nil when d is empty.
func join(lines [][]byte, d span) []byte {
	var b []byte
	for _, l := range lines[d.lo:d.hi] {
		b = append(b, l...)
	}
	return b
}
