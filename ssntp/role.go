package ssntp

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
)

// Role is the bitmask of SSNTP roles a peer holds. A peer may hold several
// (a launcher on a node that is both compute and network node is
// AGENT|NETAGENT).
type Role uint32

// The role bits, with the values of the 2016 protocol.
const (
	UNKNOWN    Role = 0x00
	SERVER     Role = 0x01
	Controller Role = 0x02
	AGENT      Role = 0x04
	SCHEDULER  Role = 0x08
	NETAGENT   Role = 0x10
	CNCIAGENT  Role = 0x20
)

// roleInfo lists each role in the fixed order used by String and by the
// certificate's EKU list.
var roleInfo = []struct {
	role  Role
	piece string // Role.String() piece
	word  string // ciao-cert -role word
	oid   asn1.ObjectIdentifier
}{
	{SERVER, "Server", "server", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 5}},
	{Controller, "Controller", "controller", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 3}},
	{AGENT, "CNAgent", "agent", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 1}},
	{SCHEDULER, "Scheduler", "scheduler", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 2}},
	{NETAGENT, "NetworkingAgent", "netagent", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 4}},
	{CNCIAGENT, "CNCIAgent", "cnciagent", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 343, 8, 6}},
}

// HasRole reports whether every bit of r is in the mask.
func (mask Role) HasRole(r Role) bool { return mask&r == r }

// String returns the 2016 form: each held role's name followed by a dash,
// in the fixed order Server, Controller, CNAgent, Scheduler,
// NetworkingAgent, CNCIAgent ("CNAgent-NetworkingAgent-" for 0x14, "" for
// 0). This exact text travels inside TraceReport payloads and names
// certificate files.
func (mask Role) String() string {
	var b strings.Builder
	for _, ri := range roleInfo {
		if mask&ri.role != 0 {
			b.WriteString(ri.piece)
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ParseRoles parses a comma-separated list of ciao-cert role words
// ("agent,netagent"). "unknown" adds nothing; any other word is an error.
func ParseRoles(s string) (Role, error) {
	var r Role
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "unknown" {
			continue
		}
		found := false
		for _, ri := range roleInfo {
			if w == ri.word {
				r |= ri.role
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("ssntp: unknown role %q (want one of server, controller, agent, scheduler, netagent, cnciagent)", w)
		}
	}
	return r, nil
}

// OIDs returns the private Extended Key Usage OIDs for the role bits, in
// OID order (.8.1 … .8.6), as certificates carry them.
func (mask Role) OIDs() []asn1.ObjectIdentifier {
	var oids []asn1.ObjectIdentifier
	for n := 1; n <= 6; n++ {
		for _, ri := range roleInfo {
			if ri.oid[len(ri.oid)-1] == n && mask&ri.role != 0 {
				oids = append(oids, ri.oid)
			}
		}
	}
	return oids
}

// RoleFromOIDs ORs the role bits of every OID in the list that names one;
// other OIDs are ignored.
func RoleFromOIDs(oids []asn1.ObjectIdentifier) Role {
	var r Role
	for _, oid := range oids {
		for _, ri := range roleInfo {
			if oid.Equal(ri.oid) {
				r |= ri.role
			}
		}
	}
	return r
}

// RoleFromCert returns the roles a certificate proves: those named by the
// Extended Key Usage OIDs the X.509 library does not itself recognise.
// Only this certificate is examined, never its issuers.
func RoleFromCert(cert *x509.Certificate) Role {
	if cert == nil {
		return UNKNOWN
	}
	return RoleFromOIDs(cert.UnknownExtKeyUsage)
}
