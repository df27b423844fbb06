package payloads

import (
	"testing"

	yaml "gopkg.in/yaml.v2"
)

func BenchmarkStartDecode(b *testing.B) {
	wire := readGolden(b, "start_wire.txt")
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStart(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatEncode(b *testing.B) {
	var s Stat
	if err := yaml.Unmarshal(readGolden(b, "stats.yaml"), &s); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := yaml.Marshal(&s); err != nil {
			b.Fatal(err)
		}
	}
}
