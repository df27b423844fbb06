package ssntp

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
)

// frameDecoder reads the post-handshake gob stream of Frames. Gob's own
// decoder allocates a buffer for every message and interprets a compiled
// program per field; at tens of thousands of frames a second that
// allocation is what sets the garbage collector's pace. So frameDecoder
// reads each message into one reused buffer and decodes the common case,
// a Frame laid out exactly as SSNTP defines it and sent without a trace,
// by hand. Everything else (traced frames, other layouts a peer may use,
// anything surprising) goes to encoding/gob, which is given the peer's
// type definitions and the message itself, so the result is always what
// gob would produce. FuzzFrameDecoderMatchesGob holds the two together.
type frameDecoder struct {
	r   io.Reader
	max uint64
	buf []byte // the current message body, reused

	// Type definitions seen on this stream: every message as received
	// (for gob), and by id what the fast path needs to know.
	allDefs   []byte
	defs      map[int64]wireDef
	frameID   int64 // the last value type seen (0: none yet)
	fastFrame bool  // frameID has the standard Frame layout
	validated bool  // gob has decoded a frameID value with these definitions
	one       [1]byte
}

// wireDef is what the fast path needs to know about one defined type.
type wireDef struct {
	kind   int // wireArray, wireStruct or other
	elem   int64
	length int64
	fields []wireField
}

type wireField struct {
	name string
	id   int64
}

const (
	wireOther = iota
	wireArray
	wireStruct
)

// gob's builtin type ids.
const (
	gobUint  = 3
	gobBytes = 5
)

// errSlowPath asks for the message to be decoded by encoding/gob.
var errSlowPath = errors.New("ssntp: frame needs the gob decoder")

// idleReadBuffer is the largest message buffer kept between frames.
const idleReadBuffer = 16 << 10

func newFrameDecoder(r io.Reader, max uint64) *frameDecoder {
	return &frameDecoder{r: r, max: max}
}

// decode reads messages until one holds a Frame value and decodes it.
func (d *frameDecoder) decode() (*Frame, error) {
	for {
		n, err := d.readCount()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: empty message", ErrCorruptStream)
		}
		if n > d.max {
			return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, d.max)
		}
		if uint64(cap(d.buf)) < n {
			d.buf = make([]byte, n)
		}
		body := d.buf[:n]
		if _, err := io.ReadFull(d.r, body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		f, err := d.message(n, body)
		if cap(d.buf) > idleReadBuffer {
			d.buf = nil
		}
		if err == nil && f == nil {
			continue // a type definition
		}
		return f, err
	}
}

// message handles one message; a nil frame and nil error mean it was a
// type definition.
func (d *frameDecoder) message(n uint64, body []byte) (*Frame, error) {
	m := msg{b: body}
	id := m.int()
	if m.err != nil {
		return nil, fmt.Errorf("%w: bad type id", ErrCorruptStream)
	}
	if id < 0 {
		// gob judges every definition as it arrives, as its own decoder
		// would; we only learn what the fast path needs from it.
		def, ok := parseWireType(m.b[m.off:])
		if !ok {
			return nil, fmt.Errorf("%w: bad type definition", ErrCorruptStream)
		}
		d.allDefs = appendMessage(d.allDefs, n, body)
		if _, err := d.gobDecode(nil); err != nil {
			return nil, err
		}
		if d.defs == nil {
			d.defs = make(map[int64]wireDef)
		}
		d.defs[-id] = def
		return nil, nil
	}
	if id != d.frameID {
		d.frameID = id
		d.fastFrame = d.learnFrame(id)
		d.validated = false
	}
	if d.fastFrame && d.validated {
		f, err := decodeFastFrame(m.b[m.off:])
		if err != errSlowPath {
			return f, err
		}
	}
	f, err := d.gobDecode(appendMessage(nil, n, body))
	if err == nil {
		// gob has now checked that the peer's Frame type, trace types
		// included, is one it can decode into ours.
		d.validated = true
	}
	return f, err
}

// learnFrame decides whether id is a Frame with exactly the standard
// layout, which the fast path can decode.
func (d *frameDecoder) learnFrame(id int64) bool {
	def, ok := d.defs[id]
	if !ok || def.kind != wireStruct {
		return false
	}
	want := []string{"Major", "Minor", "Type", "Operand", "Origin", "PayloadLength", "Trace", "Payload"}
	fields := def.fields
	if len(fields) != len(want) {
		return false
	}
	for i, f := range fields {
		if f.name != want[i] {
			return false
		}
		switch f.name {
		case "Origin":
			a, ok := d.defs[f.id]
			if !ok || a.kind != wireArray || a.elem != gobUint || a.length != 16 {
				return false
			}
		case "Trace":
		case "Payload":
			if f.id != gobBytes {
				return false
			}
		default:
			if f.id != gobUint {
				return false
			}
		}
	}
	return true
}

// gobDecode runs a fresh gob decoder over every definition of the
// stream followed by value (a whole message, or nil to check the
// definitions alone). Keeping no decoder between calls keeps its per-type
// state off idle connections; values that need it (traced frames, and
// the first frame of a stream) are few.
func (d *frameDecoder) gobDecode(value []byte) (*Frame, error) {
	in := bytes.NewBuffer(make([]byte, 0, len(d.allDefs)+len(value)))
	in.Write(d.allDefs)
	in.Write(value)
	f := new(Frame)
	err := gob.NewDecoder(in).Decode(f)
	if value == nil {
		// Definitions alone end in an EOF (unexpected, to gob, after a
		// definition); parseWireType has already checked that each one
		// is complete, so that EOF is the end of our input.
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil
		}
		if err == nil {
			err = fmt.Errorf("%w: value inside a definition", ErrCorruptStream)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readCount reads a message's length prefix one byte at a time, so that
// nothing past this message is consumed from the connection.
func (d *frameDecoder) readCount() (uint64, error) {
	if _, err := io.ReadFull(d.r, d.one[:]); err != nil {
		return 0, err
	}
	b := d.one[0]
	if b < 0x80 {
		return uint64(b), nil
	}
	n := int(-int8(b))
	if n < 1 || n > 8 {
		return 0, fmt.Errorf("%w: bad length prefix 0x%02x", ErrCorruptStream, b)
	}
	var v uint64
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(d.r, d.one[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v = v<<8 | uint64(d.one[0])
	}
	return v, nil
}

func appendMessage(dst []byte, n uint64, body []byte) []byte {
	dst = appendUint(dst, n)
	return append(dst, body...)
}

func appendUint(dst []byte, v uint64) []byte {
	if v < 0x80 {
		return append(dst, byte(v))
	}
	var tmp [8]byte
	i := 8
	for v > 0 {
		i--
		tmp[i] = byte(v)
		v >>= 8
	}
	dst = append(dst, byte(-(8 - i)))
	return append(dst, tmp[i:]...)
}

// msg walks gob-encoded bytes; the first error sticks.
type msg struct {
	b   []byte
	off int
	err error
}

func (m *msg) uint() uint64 {
	if m.err != nil {
		return 0
	}
	if m.off >= len(m.b) {
		m.err = io.ErrUnexpectedEOF
		return 0
	}
	b := m.b[m.off]
	m.off++
	if b < 0x80 {
		return uint64(b)
	}
	n := int(-int8(b))
	if n < 1 || n > 8 || m.off+n > len(m.b) {
		m.err = ErrCorruptStream
		return 0
	}
	var v uint64
	for _, c := range m.b[m.off : m.off+n] {
		v = v<<8 | uint64(c)
	}
	m.off += n
	return v
}

func (m *msg) int() int64 {
	u := m.uint()
	if u&1 != 0 {
		return ^int64(u >> 1)
	}
	return int64(u >> 1)
}

func (m *msg) bytes() []byte {
	n := m.uint()
	if m.err != nil {
		return nil
	}
	if n > uint64(len(m.b)-m.off) {
		m.err = io.ErrUnexpectedEOF
		return nil
	}
	b := m.b[m.off : m.off+int(n)]
	m.off += int(n)
	return b
}

// decodeFastFrame decodes the fields of a standard Frame value. A value
// carrying a trace, or anything it is unsure of, returns errSlowPath so
// that gob decides.
func decodeFastFrame(b []byte) (*Frame, error) {
	m := msg{b: b}
	f := new(Frame)
	field := -1
	for m.off < len(m.b) {
		delta := m.uint()
		if m.err != nil {
			return nil, errSlowPath
		}
		if delta == 0 {
			break
		}
		if delta > 8 {
			return nil, errSlowPath
		}
		field += int(delta)
		switch field {
		case 0, 1, 2, 3:
			v := m.uint()
			if v > 0xff {
				return nil, errSlowPath
			}
			switch field {
			case 0:
				f.Major = uint8(v)
			case 1:
				f.Minor = uint8(v)
			case 2:
				f.Type = Type(v)
			case 3:
				f.Operand = uint8(v)
			}
		case 4:
			if m.uint() != 16 {
				return nil, errSlowPath
			}
			for i := range f.Origin {
				v := m.uint()
				if v > 0xff {
					return nil, errSlowPath
				}
				f.Origin[i] = byte(v)
			}
		case 5:
			v := m.uint()
			if v > 0xffffffff {
				return nil, errSlowPath
			}
			f.PayloadLength = uint32(v)
		case 7:
			p := m.bytes()
			if m.err != nil {
				return nil, errSlowPath
			}
			f.Payload = append([]byte(nil), p...)
		default: // 6 is Trace: gob decodes traced frames
			return nil, errSlowPath
		}
	}
	if m.off != len(m.b) {
		return nil, errSlowPath
	}
	return f, nil
}

// parseWireType reads a gob wireType definition completely (every
// variant, every field, nothing left over), keeping what the fast path
// needs: arrays' element and length, structs' field names and ids.
func parseWireType(b []byte) (wireDef, bool) {
	m := msg{b: b}
	def := wireDef{kind: wireOther}
	ok := walkStruct(&m, 7, func(field int) {
		switch field {
		case 0: // ArrayT
			def.kind = wireArray
			walkStruct(&m, 3, func(f int) {
				switch f {
				case 0:
					walkCommonType(&m)
				case 1:
					def.elem = m.int()
				case 2:
					def.length = m.int()
				}
			})
		case 1: // SliceT
			walkStruct(&m, 2, func(f int) {
				if f == 0 {
					walkCommonType(&m)
				} else {
					m.int()
				}
			})
		case 2: // StructT
			def.kind = wireStruct
			walkStruct(&m, 2, func(f int) {
				if f == 0 {
					walkCommonType(&m)
					return
				}
				n := m.uint()
				if n > uint64(len(m.b)-m.off) {
					m.err = ErrCorruptStream
					return
				}
				for i := uint64(0); i < n && m.err == nil; i++ {
					var wf wireField
					walkStruct(&m, 2, func(ff int) {
						if ff == 0 {
							wf.name = string(m.bytes())
						} else {
							wf.id = m.int()
						}
					})
					def.fields = append(def.fields, wf)
				}
			})
		case 3: // MapT
			walkStruct(&m, 3, func(f int) {
				if f == 0 {
					walkCommonType(&m)
				} else {
					m.int()
				}
			})
		default: // GobEncoderT, BinaryMarshalerT, TextMarshalerT
			walkStruct(&m, 1, func(int) { walkCommonType(&m) })
		}
	})
	return def, ok && m.err == nil && m.off == len(m.b)
}

// walkStruct reads a gob struct of nfields fields, calling read for each
// field present; false if the encoding is malformed.
func walkStruct(m *msg, nfields int, read func(field int)) bool {
	field := -1
	for m.err == nil {
		if m.off == len(m.b) {
			return true // gob lets the message's end close its structs
		}
		delta := m.uint()
		if m.err != nil {
			break
		}
		if delta == 0 {
			return true
		}
		if delta > uint64(nfields) || field+int(delta) >= nfields {
			m.err = ErrCorruptStream
			break
		}
		field += int(delta)
		read(field)
	}
	return false
}

// walkCommonType reads a CommonType {Name string; Id typeId}.
func walkCommonType(m *msg) {
	walkStruct(m, 2, func(f int) {
		if f == 0 {
			m.bytes()
		} else {
			m.int()
		}
	})
}
