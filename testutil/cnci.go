package testutil

import (
	"sync"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// FakeCNCIAgent is a fake ciao-cnci-agent: an SSNTP client with role
// CNCIAGENT whose UUID is its CNCI's instance id, which is what launchers
// put in TenantAdded as concentrator_uuid and the scheduler routes on.
// Like the real agent it announces itself with ConcentratorInstanceAdded
// (tenant, CNCIIP, CNCIMAC) on every connection, and it keeps the tunnels
// that TenantAdded and TenantRemoved describe.
//
// mu guards tunnels, which the SSNTP client's reading goroutine updates.
type FakeCNCIAgent struct {
	*peerClient
	tenant string

	mu      sync.Mutex
	tunnels []payloads.TenantAddedEvent // in TenantAdded order
}

// NewFakeCNCIAgent connects a fake CNCI agent to the server on
// 127.0.0.1:serverPort and returns once it is connected and has sent
// ConcentratorInstanceAdded. Its UUID is CNCIUUID unless WithUUID says
// otherwise; it serves TenantUUID unless WithTenant does. It is closed at
// cleanup.
func NewFakeCNCIAgent(tb testing.TB, serverPort int, opts ...Option) *FakeCNCIAgent {
	tb.Helper()
	opts = append([]Option{WithUUID(uuid.MustParse(CNCIUUID))}, opts...)
	s := newSettings(kindCNCI, opts)
	s.check(tb)
	c := &FakeCNCIAgent{peerClient: &peerClient{}, tenant: TenantUUID}
	if s.tenant != "" {
		c.tenant = s.tenant
	}
	c.onConnect = c.connected
	c.onFrame = c.handle
	c.dial(tb, kindCNCI, serverPort, ssntp.CNCIAGENT, s)
	return c
}

// Tenant is the tenant the CNCI serves.
func (c *FakeCNCIAgent) Tenant() string { return c.tenant }

// Tunnels returns the tunnels added and not removed since, oldest first.
func (c *FakeCNCIAgent) Tunnels() []payloads.TenantAddedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]payloads.TenantAddedEvent(nil), c.tunnels...)
}

func (c *FakeCNCIAgent) connected(cl *ssntp.Client) {
	c.reply(cl.SendEvent(ssntp.ConcentratorInstanceAdded, CNCIAddedPayload(c.id.String(), c.tenant)),
		ssntp.EVENT, uint8(ssntp.ConcentratorInstanceAdded))
}

func (c *FakeCNCIAgent) handle(_ *ssntp.Client, f *ssntp.Frame) {
	if f.Type != ssntp.EVENT {
		return
	}
	switch f.Event() {
	case ssntp.TenantAdded:
		var ev payloads.EventTenantAdded
		if err := yaml.Unmarshal(f.Payload, &ev); err != nil {
			c.log.Warningf("testutil: %s: bad TenantAdded: %v", c.name, err)
			return
		}
		c.mu.Lock()
		c.tunnels = append(c.tunnels, ev.TenantAdded)
		c.mu.Unlock()
	case ssntp.TenantRemoved:
		var ev payloads.EventTenantRemoved
		if err := yaml.Unmarshal(f.Payload, &ev); err != nil {
			c.log.Warningf("testutil: %s: bad TenantRemoved: %v", c.name, err)
			return
		}
		gone := ev.TenantRemoved
		c.mu.Lock()
		for i, t := range c.tunnels {
			if t.AgentUUID == gone.AgentUUID && t.TenantUUID == gone.TenantUUID {
				c.tunnels = append(c.tunnels[:i], c.tunnels[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
}
