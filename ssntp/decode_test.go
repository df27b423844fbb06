package ssntp

import (
	"bytes"
	"encoding/gob"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// frameStream is what a peer writes after the handshake: Frame
// definitions with the first value, then values.
func frameStream(tb testing.TB, frames ...any) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for _, f := range frames {
		if err := enc.Encode(f); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decodeBoth decodes up to n frames from data with the fast decoder and
// with encoding/gob, and fails unless they agree frame by frame.
func decodeBoth(t *testing.T, data []byte, n int) (fast []*Frame) {
	t.Helper()
	fd := newFrameDecoder(bytes.NewReader(data), 1<<20)
	gd := gob.NewDecoder(&frameReader{r: bytes.NewReader(data), max: 1 << 20})
	for i := 0; i < n; i++ {
		f, ferr := fd.decode()
		var g Frame
		gerr := gd.Decode(&g)
		if (ferr == nil) != (gerr == nil) {
			t.Fatalf("frame %d: fast decoder err %v, gob err %v", i, ferr, gerr)
		}
		if ferr != nil {
			return fast
		}
		if !reflect.DeepEqual(*f, g) {
			t.Fatalf("frame %d differs:\nfast %+v\n gob %+v", i, *f, g)
		}
		fast = append(fast, f)
	}
	return fast
}

func TestFastDecoderMatchesGob(t *testing.T) {
	id := uuid.Generate()
	now := time.Date(2016, 10, 18, 12, 0, 0, 0, time.UTC)
	traced := &Frame{Major: 0x80, Minor: 1, Type: COMMAND, Operand: uint8(START), Origin: id, PayloadLength: 1,
		Payload: []byte("x"), Trace: &FrameTrace{Label: []byte("l"), StartTimestamp: now, PathLength: 1,
			Path: []Node{{UUID: id[:], Role: uint32(Controller), TxTimestamp: now}}}}
	cases := map[string][]any{
		"plain": {
			&Frame{Minor: 1, Type: STATUS, Operand: uint8(FULL), Origin: id},
			&Frame{Minor: 1, Type: COMMAND, Operand: uint8(START), Origin: id, PayloadLength: 4, Payload: []byte("YAML")},
			&Frame{Major: 200, Minor: 255, Type: 7, Operand: 42, Origin: id, PayloadLength: 1 << 31},
		},
		"traced first": {traced, &Frame{Minor: 1, Origin: id, Payload: []byte("after")}},
		"traced later": {&Frame{Minor: 1, Origin: id}, traced, &Frame{Minor: 1, Origin: id, Payload: []byte("p")}},
		"no trace field": {
			&frameNoTraceField{Minor: 1, Type: 1, Operand: 1, Origin: id, PayloadLength: 2, Payload: []byte("ok")},
			&frameNoTraceField{Minor: 1, Type: 3, Origin: id},
		},
	}
	for name, frames := range cases {
		t.Run(name, func(t *testing.T) {
			got := decodeBoth(t, frameStream(t, frames...), len(frames)+1)
			if len(got) != len(frames) {
				t.Fatalf("decoded %d of %d frames", len(got), len(frames))
			}
		})
	}
}

type frameNoTraceField struct {
	Major, Minor  uint8
	Type          uint8
	Operand       uint8
	Origin        [16]uint8
	PayloadLength uint32
	Payload       []byte
}

func TestFastPathTaken(t *testing.T) {
	id := uuid.Generate()
	fd := newFrameDecoder(bytes.NewReader(frameStream(t, &Frame{Minor: 1, Origin: id, Payload: []byte("a")})), 1<<20)
	f, err := fd.decode()
	if err != nil || string(f.Payload) != "a" {
		t.Fatalf("decode: %v %+v", err, f)
	}
	if !fd.fastFrame || !fd.validated {
		t.Fatal("the stream's Frame type was not recognised as standard")
	}
	// The first frame is checked by gob; the ones after take the fast path.
	fd = newFrameDecoder(bytes.NewReader(frameStream(t, &Frame{Minor: 1, Origin: id},
		&Frame{Minor: 1, Origin: id, Payload: []byte("b"), PayloadLength: 1},
		&Frame{Minor: 1, Origin: id, Payload: []byte("b"), PayloadLength: 1})), 1<<20)
	if _, err := fd.decode(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1, func() {
		if f, err := fd.decode(); err != nil || string(f.Payload) != "b" {
			t.Fatalf("second frame: %v %+v", err, f)
		}
	})
	if allocs > 2 {
		t.Fatalf("second frame took %v allocations: not the fast path", allocs)
	}
}

func TestFastDecoderRefusals(t *testing.T) {
	good := frameStream(t, &Frame{Minor: 1, Payload: []byte("x")})
	cases := map[string][]byte{
		"garbage definition": {0x05, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty message":      {0x00},
		"bad prefix":         {0xf0},
		"oversized":          {0xfc, 0x10, 0x00, 0x00, 0x00},
		"truncated":          good[:len(good)-3],
		"duplicate type":     append(append([]byte{}, good...), good...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			fd := newFrameDecoder(bytes.NewReader(data), 1<<20)
			var err error
			for i := 0; i < 4 && err == nil; i++ {
				_, err = fd.decode()
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	fd := newFrameDecoder(bytes.NewReader([]byte{0xfc, 0x10, 0x00, 0x00, 0x00}), 1<<20)
	if _, err := fd.decode(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

// FuzzFrameDecoderMatchesGob: on any byte stream the fast decoder returns
// exactly what encoding/gob returns, frame by frame, and fails where gob
// fails.
func FuzzFrameDecoderMatchesGob(f *testing.F) {
	id := uuid.Generate()
	now := time.Date(2016, 10, 18, 12, 0, 0, 0, time.UTC)
	f.Add(frameStream(f, &Frame{Minor: 1, Type: STATUS, Operand: 2, Origin: id},
		&Frame{Minor: 1, Payload: []byte("YAML"), PayloadLength: 4}))
	f.Add(frameStream(f, &Frame{Major: 0x80, Minor: 1, Origin: id, Trace: &FrameTrace{Label: []byte("L"),
		StartTimestamp: now, PathLength: 1, Path: []Node{{UUID: id[:], TxTimestamp: now}}}}))
	f.Add(frameStream(f, &frameNoTraceField{Minor: 1, Origin: id, Payload: []byte("p")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeBoth(t, data, 8)
	})
}

// BenchmarkDecode compares the fast decoder with encoding/gob on a stream
// of 1 KiB STATS frames.
func BenchmarkDecode(b *testing.B) {
	id := uuid.Generate()
	frames := make([]any, 1000)
	for i := range frames {
		frames[i] = &Frame{Minor: 1, Operand: uint8(STATS), Origin: id, PayloadLength: 1024, Payload: make([]byte, 1024)}
	}
	data := frameStream(b, frames...)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += len(frames) {
			fd := newFrameDecoder(bytes.NewReader(data), 1<<20)
			for range frames {
				if _, err := fd.decode(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("gob", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += len(frames) {
			gd := gob.NewDecoder(&frameReader{r: bytes.NewReader(data), max: 1 << 20})
			for range frames {
				var f Frame
				if err := gd.Decode(&f); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
