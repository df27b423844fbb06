// Package uuid provides the 16-byte identifier Ciao puts on the wire and in
// storage: SSNTP endpoints, instances, tenants, workloads and images are all
// named by one.
//
// Generation is RFC 4122 version 4 from crypto/rand (through
// github.com/google/uuid). Parsing is deliberately stricter than that
// library: only the canonical 8-4-4-4-12 hex form is accepted, as the 2016
// SSNTP peers require; braces, "urn:uuid:" prefixes and undashed forms are
// rejected. Formatting is always lower case, because the scheduler routes
// frames by exact string match on the lower-case form.
package uuid

import (
	"errors"
	"fmt"

	guuid "github.com/google/uuid"
)

// UUID is an RFC 4122 identifier in network byte order. The zero value is
// the nil UUID.
type UUID [16]byte

// Nil is the all-zero UUID, used as the CONNECT destination and as the
// origin of handshake failure frames.
var Nil UUID

// ErrUUIDInvalid is returned by Parse for any string that is not a
// canonical 8-4-4-4-12 hex UUID.
var ErrUUIDInvalid = errors.New("uuid: invalid uuid")

// Generate returns a new random (version 4) UUID. It panics only if the
// operating system's random source fails, which leaves nothing safe to do.
func Generate() UUID {
	return UUID(guuid.New())
}

// Parse decodes the canonical text form. Upper- and lower-case hex digits
// are accepted; any UUID version is accepted.
func Parse(s string) (UUID, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return Nil, fmt.Errorf("%w: %q", ErrUUIDInvalid, s)
	}
	var u UUID
	for j, i := range hexOffsets {
		hi, ok1 := fromHex(s[i])
		lo, ok2 := fromHex(s[i+1])
		if !ok1 || !ok2 {
			return Nil, fmt.Errorf("%w: %q", ErrUUIDInvalid, s)
		}
		u[j] = hi<<4 | lo
	}
	return u, nil
}

// MustParse is Parse for constants in tests and tables; it panics on error.
func MustParse(s string) UUID {
	u, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// FromBytes copies a 16-byte slice into a UUID. Any other length is an
// error: the 2016 peers crash on short UUIDs, so we refuse them at the edge.
func FromBytes(b []byte) (UUID, error) {
	var u UUID
	if len(b) != len(u) {
		return Nil, fmt.Errorf("%w: %d bytes, want 16", ErrUUIDInvalid, len(b))
	}
	copy(u[:], b)
	return u, nil
}

// IsNil reports whether u is the all-zero UUID.
func (u UUID) IsNil() bool { return u == Nil }

const hexDigits = "0123456789abcdef"

// hexOffsets are where each byte's two digits start in the text form.
var hexOffsets = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// String returns the lower-case 8-4-4-4-12 form.
func (u UUID) String() string {
	var buf [36]byte
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j] = hexDigits[b>>4]
		buf[j+1] = hexDigits[b&0x0f]
		j += 2
	}
	return string(buf[:])
}

// MarshalText implements encoding.TextMarshaler so UUIDs read naturally in
// YAML and JSON.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse's rules.
func (u *UUID) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*u = p
	return nil
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Bytes returns the 16 bytes as a new slice.
func (u UUID) Bytes() []byte { return append([]byte(nil), u[:]...) }
