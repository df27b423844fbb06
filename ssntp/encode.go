package ssntp

// The send side's counterpart of frameDecoder: once gob has written the
// Frame type definitions on a connection (with its first frame), later
// untraced frames are encoded by hand straight into the pending buffer,
// byte for byte what gob would write (FuzzFrameEncoderMatchesGob checks),
// without gob's intermediate buffer, copy and reflection.

// appendFrame appends f as one gob value message of type id frameID.
// It must not be used for traced frames.
func appendFrame(dst []byte, frameID int64, f *Frame) []byte {
	n := frameBodyLen(frameID, f)
	dst = appendUint(dst, uint64(n))
	dst = appendUint(dst, uint64(frameID)<<1) // a non-negative gob int
	last := -1
	field := func(i int) {
		dst = appendUint(dst, uint64(i-last))
		last = i
	}
	if f.Major != 0 {
		field(0)
		dst = appendUint(dst, uint64(f.Major))
	}
	if f.Minor != 0 {
		field(1)
		dst = appendUint(dst, uint64(f.Minor))
	}
	if f.Type != 0 {
		field(2)
		dst = appendUint(dst, uint64(f.Type))
	}
	if f.Operand != 0 {
		field(3)
		dst = appendUint(dst, uint64(f.Operand))
	}
	field(4) // arrays are always sent, even all zero
	dst = append(dst, 16)
	for _, b := range f.Origin {
		dst = appendUint(dst, uint64(b))
	}
	if f.PayloadLength != 0 {
		field(5)
		dst = appendUint(dst, uint64(f.PayloadLength))
	}
	if len(f.Payload) > 0 {
		field(7)
		dst = appendUint(dst, uint64(len(f.Payload)))
		dst = append(dst, f.Payload...)
	}
	return append(dst, 0)
}

// frameBodyLen is the length of the message appendFrame writes, after
// its length prefix.
func frameBodyLen(frameID int64, f *Frame) int {
	n := uintLen(uint64(frameID)<<1) + 1 // type id … terminator
	for _, v := range []uint64{uint64(f.Major), uint64(f.Minor), uint64(f.Type), uint64(f.Operand)} {
		if v != 0 {
			n += 1 + uintLen(v) // deltas are always small
		}
	}
	n += 2 // Origin's delta and length
	for _, b := range f.Origin {
		n += uintLen(uint64(b))
	}
	if f.PayloadLength != 0 {
		n += 1 + uintLen(uint64(f.PayloadLength))
	}
	if len(f.Payload) > 0 {
		n += 1 + uintLen(uint64(len(f.Payload))) + len(f.Payload)
	}
	return n
}

func uintLen(v uint64) int {
	if v < 0x80 {
		return 1
	}
	n := 1
	for v > 0 {
		n++
		v >>= 8
	}
	return n
}

// lastValueTypeID returns the type id of the last message in b, which
// holds whole gob messages (definitions then one value), or 0.
func lastValueTypeID(b []byte) int64 {
	m := msg{b: b}
	var id int64
	for m.off < len(m.b) && m.err == nil {
		n := m.uint()
		if m.err != nil || n > uint64(len(m.b)-m.off) {
			return 0
		}
		body := msg{b: m.b[m.off : m.off+int(n)]}
		id = body.int()
		m.off += int(n)
	}
	if m.err != nil || id <= 0 {
		return 0
	}
	return id
}
