package uuid

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseKnownBytes(t *testing.T) {
	// Conformance T1.
	u, err := Parse("4CB19522-1E18-439A-883A-F9B2A3A95F5E")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x4c, 0xb1, 0x95, 0x22, 0x1e, 0x18, 0x43, 0x9a, 0x88, 0x3a, 0xf9, 0xb2, 0xa3, 0xa9, 0x5f, 0x5e}
	if !bytes.Equal(u[:], want) {
		t.Fatalf("bytes = % x, want % x", u[:], want)
	}
	if got := u.String(); got != "4cb19522-1e18-439a-883a-f9b2a3a95f5e" {
		t.Fatalf("String() = %q", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{
		"f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
		"30dedd5c-48d9-45d3-8b44-f973e4f35e48",
		"69e84267-ed01-4738-b15f-b47de06b62e7",
		"e35ed972-c46c-4aad-a1e7-ef103ae079a2",
		"eba04826-62a5-48bd-876f-9119667b1487",
		"ca957444-fa46-11e5-94f9-38607786d9ec",
		"ab68111c-03a6-11e6-87de-001320fb6e31",
	} {
		t.Run(s, func(t *testing.T) {
			u, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != s {
				t.Fatalf("round trip: %q -> %q", s, u.String())
			}
		})
	}
}

func TestRejected(t *testing.T) {
	for _, s := range []string{
		"",
		"48d9-45d3-8b44-f973e4f35e48",
		"69e8426--ed01-4738-b15f-b47de06b62e7",
		"e35ed972-46c-4aad-a1e7-ef103ae079a2",
		"sba04826-62a5-48bd-876f-9119667b1487",
		"ca957444fa4611e594f938607786d9ec0000",
		"ab68111c-03a6-11e6-87de-001320fb6e31a",
		"4cb19522-1e18-439a-883a-f9b2a3a95f5",
		"4cb195221e18439a883af9b2a3a95f5e",
		"{4cb19522-1e18-439a-883a-f9b2a3a95f5e}",
		"urn:uuid:4cb19522-1e18-439a-883a-f9b2a3a95f5e",
	} {
		if _, err := Parse(s); !errors.Is(err, ErrUUIDInvalid) {
			t.Errorf("Parse(%q) err = %v, want ErrUUIDInvalid", s, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	seen := map[UUID]bool{}
	for i := 0; i < 100; i++ {
		u := Generate()
		if u[6]&0xf0 != 0x40 || u[8]&0xc0 != 0x80 {
			t.Fatalf("not a v4 RFC 4122 uuid: %s", u)
		}
		s := u.String()
		if s[14] != '4' {
			t.Fatalf("version digit of %s", s)
		}
		p, err := Parse(s)
		if err != nil || p != u {
			t.Fatalf("round trip of %s: %v", s, err)
		}
		if seen[u] {
			t.Fatalf("duplicate %s", u)
		}
		seen[u] = true
	}
}

func TestFromBytesAndNil(t *testing.T) {
	if !Nil.IsNil() || Nil.String() != "00000000-0000-0000-0000-000000000000" {
		t.Fatal("nil uuid")
	}
	if _, err := FromBytes(make([]byte, 15)); !errors.Is(err, ErrUUIDInvalid) {
		t.Fatalf("short slice accepted: %v", err)
	}
	u := Generate()
	v, err := FromBytes(u[:])
	if err != nil || v != u {
		t.Fatalf("FromBytes: %v", err)
	}
}

func TestText(t *testing.T) {
	u := Generate()
	b, _ := u.MarshalText()
	var v UUID
	if err := v.UnmarshalText(b); err != nil || v != u {
		t.Fatalf("text round trip: %v", err)
	}
	if err := v.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("bad text accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("4cb19522-1e18-439a-883a-f9b2a3a95f5e")
	f.Add("")
	f.Add("ca957444fa4611e594f938607786d9ec0000")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		// Anything accepted must be canonical modulo case.
		v, err := Parse(u.String())
		if err != nil || v != u {
			t.Fatalf("re-parse of %q: %v", u.String(), err)
		}
	})
}

func BenchmarkString(b *testing.B) {
	u := Generate()
	for b.Loop() {
		_ = u.String()
	}
}

func BenchmarkParse(b *testing.B) {
	s := Generate().String()
	for b.Loop() {
		_, _ = Parse(s)
	}
}
