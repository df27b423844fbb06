package networking

import (
	"net"
	"testing"
)

// FuzzSubnetAndAliases: any text either fails ParseSubnet or gives a
// subnet whose key is a valid VNI and whose CNCI aliases parse back to it;
// parseCnciAlias never panics.
func FuzzSubnetAndAliases(f *testing.F) {
	for _, s := range []string{"172.16.0.0/24", "10.2.0.0/16", "172.16.0.128/25", "bogus", "br_172.16.0.0+24##1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseCnciAlias(s, aliasBridge)
		parseCnciAlias(s, aliasTunnel)
		n, err := ParseSubnet(s)
		if err != nil {
			return
		}
		if k := SubnetKey(n); k == 0 || k >= maxVNI {
			t.Fatalf("%s accepted with key %#x", s, k)
		}
		got, _, ok := parseCnciAlias(cnciBridgeAlias(n), aliasBridge)
		if !ok || got.String() != n.String() {
			t.Fatalf("bridge alias of %v parsed back as %v (%v)", n.String(), got.String(), ok)
		}
		cn := net.ParseIP("10.0.0.5")
		got, ip, ok := parseCnciAlias(cnciGRETunnelAlias(n, cn), aliasTunnel)
		if !ok || got.String() != n.String() || !ip.Equal(cn) {
			t.Fatalf("GRE alias of %v parsed back as %v %v (%v)", n.String(), got.String(), ip, ok)
		}
	})
}
