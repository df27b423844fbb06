package ssntp

import (
	"bytes"
	"encoding/gob"
	"testing"

	"github.com/ciao-project/ciao/uuid"
)

// gobValue is the second value message a gob encoder writes for f, after
// a first value has carried the type definitions.
func gobValue(tb testing.TB, f *Frame) (msg []byte, id int64) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	if err := enc.Encode(&Frame{}); err != nil {
		tb.Fatal(err)
	}
	id = lastValueTypeID(buf.Bytes())
	first := buf.Len()
	if err := enc.Encode(f); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()[first:], id
}

func TestAppendFrameMatchesGob(t *testing.T) {
	id := uuid.MustParse("4cb19522-1e18-439a-883a-f9b2a3a95f5e")
	for name, f := range map[string]*Frame{
		"FULL":      {Minor: 1, Type: STATUS, Operand: uint8(FULL), Origin: id},
		"START":     {Minor: 1, Operand: uint8(START), Origin: id, PayloadLength: 4, Payload: []byte("YAML")},
		"zero":      {},
		"big":       {Major: 0x7f, Minor: 255, Type: 200, Operand: 128, Origin: id, PayloadLength: 1 << 31, Payload: make([]byte, 70000)},
		"nil UUID":  {Minor: 1, Payload: []byte("p")},
		"trace bit": {Major: 0x80, Minor: 1, Origin: id},
	} {
		t.Run(name, func(t *testing.T) {
			want, fid := gobValue(t, f)
			if fid <= 0 {
				t.Fatalf("no type id learnt: %d", fid)
			}
			if got := appendFrame(nil, fid, f); !bytes.Equal(got, want) {
				t.Fatalf("hand-encoded % x\n         gob % x", got[:min(len(got), 64)], want[:min(len(want), 64)])
			}
		})
	}
}

func FuzzFrameEncoderMatchesGob(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint8(1), uint8(2), []byte{0x4c, 0xb1}, uint32(4), []byte("YAML"))
	f.Add(uint8(0x80), uint8(255), uint8(3), uint8(200), []byte{}, uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, major, minor, typ, op uint8, origin []byte, plen uint32, payload []byte) {
		fr := &Frame{Major: major, Minor: minor, Type: Type(typ), Operand: op, PayloadLength: plen, Payload: payload}
		copy(fr.Origin[:], origin)
		want, fid := gobValue(t, fr)
		if got := appendFrame(nil, fid, fr); !bytes.Equal(got, want) {
			t.Fatalf("hand-encoded % x\n         gob % x", got, want)
		}
	})
}
