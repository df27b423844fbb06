package ssntp

import (
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// fuzzSeedStream is a client stream as a 2016 peer writes it: CONNECT,
// then frames of every shape.
func fuzzSeedStream(tb testing.TB) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	id := uuid.Generate()
	_ = enc.Encode(&ConnectFrame{Minor: 1, Role: AGENT, Source: id[:], Destination: uuid.Nil[:]})
	now := time.Date(2016, 10, 18, 12, 0, 0, 0, time.UTC)
	for _, f := range []*Frame{
		{Minor: 1, Type: STATUS, Operand: uint8(FULL), Origin: id},
		{Minor: 1, Type: COMMAND, Operand: uint8(START), Origin: id, PayloadLength: 4, Payload: []byte("YAML")},
		{Major: 0x80, Minor: 1, Type: COMMAND, Operand: uint8(STATS), Origin: id, PayloadLength: 1, Payload: []byte("Y"),
			Trace: &FrameTrace{Label: []byte("L"), StartTimestamp: now, PathLength: 1,
				Path: []Node{{UUID: id[:], Role: uint32(AGENT), TxTimestamp: now}}}},
	} {
		if err := enc.Encode(f); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzFrameDecoder feeds arbitrary bytes to the receive path (frame
// reader plus gob decoder, as on a live connection). It must never panic
// or allocate past the frame limit, and whatever decodes must survive a
// re-encode and decode unchanged.
func FuzzFrameDecoder(f *testing.F) {
	seed := fuzzSeedStream(f)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := &frameReader{r: bytes.NewReader(data), max: 64 << 10}
		dec := gob.NewDecoder(fr)
		var cf ConnectFrame
		if err := dec.Decode(&cf); err != nil {
			return
		}
		for i := 0; i < 16; i++ {
			var fr Frame
			if err := dec.Decode(&fr); err != nil {
				return
			}
			var buf bytes.Buffer
			if err := gob.NewEncoder(&buf).Encode(&fr); err != nil {
				t.Fatalf("re-encoding a decoded frame: %v", err)
			}
			var again Frame
			if err := gob.NewDecoder(&buf).Decode(&again); err != nil {
				t.Fatalf("decoding a re-encoded frame: %v", err)
			}
			if again.Type != fr.Type || again.Operand != fr.Operand || again.Origin != fr.Origin ||
				!bytes.Equal(again.Payload, fr.Payload) || (again.Trace == nil) != (fr.Trace == nil) {
				t.Fatalf("round trip changed the frame: %+v -> %+v", fr, again)
			}
		}
	})
}

func TestFrameReaderLimit(t *testing.T) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	_ = enc.Encode(&Frame{Minor: 1, Payload: make([]byte, 100)})
	_ = enc.Encode(&Frame{Minor: 1, Payload: make([]byte, 5000)})
	dec := gob.NewDecoder(&frameReader{r: &buf, max: 1000})
	var f Frame
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("small frame: %v", err)
	}
	if err := dec.Decode(&f); err == nil {
		t.Fatal("oversized frame decoded")
	}
}

func TestFrameReaderLimitError(t *testing.T) {
	var buf bytes.Buffer
	_ = gob.NewEncoder(&buf).Encode(&Frame{Minor: 1, Payload: make([]byte, 5000)})
	err := gob.NewDecoder(&frameReader{r: &buf, max: 1000}).Decode(new(Frame))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}

// TestHandshakeEncodersMatchOneStream: the one-shot handshake encoder
// followed by the frame encoder writes exactly the bytes one encoder for
// the whole stream writes, as 2016 peers expect.
func TestHandshakeEncodersMatchOneStream(t *testing.T) {
	id := uuid.MustParse("4cb19522-1e18-439a-883a-f9b2a3a95f5e")
	connect := &ConnectFrame{Minor: 1, Role: AGENT, Source: id[:], Destination: uuid.Nil[:]}
	frames := []*Frame{
		{Minor: 1, Type: STATUS, Operand: uint8(FULL), Origin: id},
		{Minor: 1, Type: COMMAND, Operand: uint8(START), Origin: id, PayloadLength: 4, Payload: []byte("YAML")},
	}
	var want bytes.Buffer
	enc := gob.NewEncoder(&want)
	if err := enc.Encode(connect); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan []byte)
	go func() {
		buf, _ := io.ReadAll(b)
		got <- buf
	}()
	wc := newWireConn(a, 1<<20, time.Second, Node{})
	if err := wc.encode(connect); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := wc.writeFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	wc.drain(time.Second)
	wc.close()
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("stream differs:\n got % x\nwant % x", g, want.Bytes())
	}
}
