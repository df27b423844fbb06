package agent

import (
	"errors"
	"testing"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
)

func TestParseTunnel(t *testing.T) {
	good := payloads.TenantAddedEvent{AgentIP: "10.0.0.5", TenantSubnet: "172.16.0.0/24", SubnetKey: 4268}
	if tn, err := parseTunnel(good); err != nil || tn.key != 4268 || tn.cnIP.String() != "10.0.0.5" {
		t.Fatalf("good event: %+v %v", tn, err)
	}
	for _, c := range []struct {
		name string
		mod  func(*payloads.TenantAddedEvent)
		want error
	}{
		{"wrong key", func(e *payloads.TenantAddedEvent) { e.SubnetKey = 8 }, networking.ErrKeyMismatch},
		{"negative key", func(e *payloads.TenantAddedEvent) { e.SubnetKey = -1 }, networking.ErrKeyMismatch},
		{"bad subnet", func(e *payloads.TenantAddedEvent) { e.TenantSubnet = "172.16.0.0/33" }, networking.ErrBadConfig},
		{"no subnet", func(e *payloads.TenantAddedEvent) { e.TenantSubnet = "" }, networking.ErrBadConfig},
		{"bad agent_ip", func(e *payloads.TenantAddedEvent) { e.AgentIP = "node-5" }, networking.ErrBadConfig},
	} {
		e := good
		c.mod(&e)
		if _, err := parseTunnel(e); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.CACert, c.Cert = "ca", "cert"
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("no UUID: %v", err)
	}
	c.UUID = "7e84c2d6-5a84-4f9b-98e3-38980f722d1b"
	if err := c.Validate(); err != nil {
		t.Errorf("valid: %v", err)
	}
	c.Cert = ""
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("no cert: %v", err)
	}
}
