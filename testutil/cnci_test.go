package testutil

import (
	"testing"

	"github.com/ciao-project/ciao/ssntp"
)

func TestCNCIAgent(t *testing.T) {
	srv := NewFakeServer(t)
	c := NewFakeCNCIAgent(t, srv.Port())
	if c.UUID().String() != CNCIUUID || c.Tenant() != TenantUUID {
		t.Errorf("identity %s, tenant %s", c.UUID(), c.Tenant())
	}
	if rec := srv.NextConnect(t); rec.Role != ssntp.CNCIAGENT {
		t.Errorf("advertised %q", rec.Role)
	}
	if ev := srv.NextConcentratorAdded(t); ev.InstanceUUID != CNCIUUID || ev.TenantUUID != TenantUUID || ev.ConcentratorIP != CNCIIP || ev.ConcentratorMAC != CNCIMAC {
		t.Errorf("ConcentratorInstanceAdded %+v", ev)
	}

	srv.SendEvent(t, c.UUID(), ssntp.TenantAdded, TenantAddedPayload(AgentUUID, TenantUUID, CNCIUUID))
	srv.SendEvent(t, c.UUID(), ssntp.TenantAdded, TenantAddedPayload(NetAgentUUID, TenantUUID, CNCIUUID))
	c.NextTenantAdded(t)
	c.NextTenantAdded(t)
	if tun := c.Tunnels(); len(tun) != 2 || tun[0].AgentUUID != AgentUUID || tun[1].AgentUUID != NetAgentUUID {
		t.Errorf("tunnels %+v", tun)
	}
	srv.SendEvent(t, c.UUID(), ssntp.TenantRemoved, TenantRemovedPayload(AgentUUID, TenantUUID, CNCIUUID))
	c.NextTenantRemoved(t)
	if tun := c.Tunnels(); len(tun) != 1 || tun[0].AgentUUID != NetAgentUUID {
		t.Errorf("tunnels after removal %+v", tun)
	}
	// A bad payload is logged and recorded, and changes nothing.
	srv.SendEvent(t, c.UUID(), ssntp.TenantAdded, []byte("tenant_added: ["))
	c.NextEvent(t, ssntp.TenantAdded)
	if len(c.Tunnels()) != 1 {
		t.Error("a bad TenantAdded added a tunnel")
	}
}

// Every CNCI announces itself on each connection; WithTenant and WithUUID
// change who it is.
func TestCNCIAgentOptions(t *testing.T) {
	srv := NewFakeServer(t)
	other := "0123"
	c := NewFakeCNCIAgent(t, srv.Port(), WithUUID(testUUID(1)), WithTenant(other))
	if ev := srv.NextConcentratorAdded(t); ev.InstanceUUID != c.UUID().String() || ev.TenantUUID != other {
		t.Errorf("ConcentratorInstanceAdded %+v", ev)
	}
}
