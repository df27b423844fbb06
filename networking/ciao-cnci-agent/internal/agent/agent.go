// Package agent is the core of ciao-cnci-agent, the SSNTP client (role
// CNCIAGENT) that runs a tenant's concentrator (CNCI, networking spec §6).
//
// It builds the CNCI's networking (networking.Cnci, rebuilt from the kernel
// when the agent restarts in a running CNCI), connects to the scheduler and,
// on every (re)connection, announces itself with ConcentratorInstanceAdded
// {instance_uuid: its SSNTP UUID, tenant_uuid, concentrator_ip and
// concentrator_mac: its compute address and that link's MAC}. The
// controller matches the MAC to the tenant's CNCI and records the IP.
//
// The scheduler forwards it the TenantAdded / TenantRemoved events whose
// concentrator_uuid is its UUID: each is validated (subnet, agent_ip, and
// subnet_key = the subnet's little-endian key) and applied in arrival order
// by one worker goroutine (the 2016 agent used a goroutine per event, which
// could apply a removal before its addition). AssignPublicIP and
// ReleasePublicIP commands map public addresses (answered with
// PublicIPAssigned).
//
// Stopping the agent leaves the CNCI's bridges, tunnels, dnsmasq and rules
// in place: the next agent rebuilds from them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// ErrConfig: an invalid configuration.
var ErrConfig = errors.New("cnci-agent: invalid configuration")

// Config is the agent's configuration. Start from DefaultConfig.
type Config struct {
	// CACert and Cert are the SSNTP CA and the CNCIAGENT certificate.
	CACert, Cert string
	// Server is the scheduler host ("" = the CA certificate's names,
	// then localhost); Port 0 = 8888.
	Server string
	Port   int
	// UUID is the agent's SSNTP UUID, which must be the CNCI instance's
	// uuid (what launchers put in TenantAdded as concentrator_uuid).
	UUID string
	// Tenant is reported in ConcentratorInstanceAdded (may be empty: the
	// controller matches the MAC).
	Tenant string
	// Network configures the CNCI's networking (namespace, compute
	// network, tunnel kind, dnsmasq directory, firewall = -ssh).
	Network networking.CnciConfig
	// InitRetries are the waits between failed attempts to set up the
	// network (the CNCI's address may come late from DHCP).
	InitRetries []time.Duration
}

// DefaultConfig is a CNCI with VXLAN tunnels, NAT and SSH forwarding, and
// the 2016 retry schedule.
func DefaultConfig() Config {
	return Config{
		Network:     networking.CnciConfig{Config: networking.DefaultConfig(), Firewall: true},
		InitRetries: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second},
	}
}

// Validate checks the configuration without touching the system.
func (c *Config) Validate() error {
	if c.CACert == "" || c.Cert == "" {
		return fmt.Errorf("%w: -cacert and -cert are required", ErrConfig)
	}
	if _, err := uuid.Parse(c.UUID); err != nil {
		return fmt.Errorf("%w: agent UUID %q (the CNCI instance uuid): %v", ErrConfig, c.UUID, err)
	}
	return c.Network.Validate()
}

// Agent is one run of the CNCI agent.
type Agent struct {
	cfg    Config
	id     uuid.UUID
	cnci   *networking.Cnci
	client *ssntp.Client

	mu      sync.Mutex     // guards queue
	queue   []*ssntp.Frame // nil: (re)connected, announce
	wake    chan struct{}
	applied chan struct{} // a frame was handled (tests)
}

// Run sets up the CNCI, connects and serves until ctx ends (nil) or a fatal
// error. It leaves the CNCI's networking in place.
func Run(ctx context.Context, cfg Config) error {
	a, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx)
}

// Start sets up the networking (retrying per InitRetries) and connects to
// the scheduler. Serve then handles what arrives; Close ends it.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id, _ := uuid.Parse(cfg.UUID)
	a := &Agent{cfg: cfg, id: id, wake: make(chan struct{}, 1), applied: make(chan struct{}, 64)}
	var err error
	for i := 0; ; i++ {
		a.cnci, err = networking.NewCnci(ctx, cfg.Network)
		if err == nil {
			break
		}
		if i >= len(cfg.InitRetries) {
			return nil, fmt.Errorf("setting up the CNCI network: %w", err)
		}
		glog.Warningf("cnci-agent: network not ready (%v), retrying in %v", err, cfg.InitRetries[i])
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(cfg.InitRetries[i]):
		}
	}
	addr := a.cnci.ComputeAddr()
	glog.Infof("cnci-agent: CNCI %s on %s %v (MAC %v)", id, addr.Link, addr.IP, addr.MAC)
	sc := ssntp.Config{UUID: id, CAcert: cfg.CACert, Cert: cfg.Cert, Role: ssntp.CNCIAGENT, URI: cfg.Server, Port: cfg.Port}
	a.client, err = ssntp.Dial(ctx, sc, notifier{a})
	if err != nil {
		a.cnci.Close()
		return nil, fmt.Errorf("connecting to the scheduler: %w", err)
	}
	return a, nil
}

// Close disconnects and releases the CNCI handles (the networking stays).
func (a *Agent) Close() {
	a.client.Close()
	a.cnci.Close()
}

// Cnci is the agent's concentrator.
func (a *Agent) Cnci() *networking.Cnci { return a.cnci }

// Serve applies the queued frames in order until ctx ends.
func (a *Agent) Serve(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.client.Done():
			return a.client.Err()
		case <-a.wake:
		}
		for {
			a.mu.Lock()
			if len(a.queue) == 0 {
				a.mu.Unlock()
				break
			}
			f := a.queue[0]
			a.queue = a.queue[1:]
			a.mu.Unlock()
			if f == nil {
				a.announce()
			} else {
				a.handle(ctx, f)
			}
			select {
			case a.applied <- struct{}{}:
			default:
			}
		}
	}
}

// Applied is signalled after each handled frame (for tests).
func (a *Agent) Applied() <-chan struct{} { return a.applied }

func (a *Agent) enqueue(f *ssntp.Frame) {
	a.mu.Lock()
	a.queue = append(a.queue, f)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// announce sends ConcentratorInstanceAdded.
func (a *Agent) announce() {
	addr := a.cnci.ComputeAddr()
	b, err := yaml.Marshal(payloads.EventConcentratorInstanceAdded{CNCIAdded: payloads.ConcentratorInstanceAddedEvent{
		InstanceUUID: a.id.String(), TenantUUID: a.cfg.Tenant,
		ConcentratorIP: addr.IP.String(), ConcentratorMAC: addr.MAC.String(),
	}})
	if err == nil {
		err = a.client.SendEvent(ssntp.ConcentratorInstanceAdded, b)
	}
	if err != nil {
		glog.Warningf("cnci-agent: sending ConcentratorInstanceAdded: %v", err)
		return
	}
	glog.Infof("cnci-agent: announced CNCI %s at %v", a.id, addr.IP)
}

// tunnel is a validated TenantAdded / TenantRemoved.
type tunnel struct {
	subnet net.IPNet
	key    uint32
	cnIP   net.IP
}

// parseTunnel validates a tenant event (§6.1).
func parseTunnel(ev payloads.TenantAddedEvent) (tunnel, error) {
	subnet, err := networking.ParseSubnet(ev.TenantSubnet)
	if err != nil {
		return tunnel{}, err
	}
	ip := net.ParseIP(strings.TrimSpace(ev.AgentIP)).To4()
	if ip == nil {
		return tunnel{}, fmt.Errorf("%w: agent_ip %q", networking.ErrBadConfig, ev.AgentIP)
	}
	if ev.SubnetKey < 0 || uint32(ev.SubnetKey) != networking.SubnetKey(subnet) {
		return tunnel{}, fmt.Errorf("%w: subnet %s has key %d, event says %d", networking.ErrKeyMismatch,
			ev.TenantSubnet, networking.SubnetKey(subnet), ev.SubnetKey)
	}
	return tunnel{subnet: subnet, key: uint32(ev.SubnetKey), cnIP: ip}, nil
}

func (a *Agent) handle(ctx context.Context, f *ssntp.Frame) {
	switch {
	case f.Type == ssntp.EVENT && f.Event() == ssntp.TenantAdded:
		var ev payloads.EventTenantAdded
		if err := yaml.Unmarshal(f.Payload, &ev); err != nil {
			glog.Warningf("cnci-agent: bad TenantAdded: %v", err)
			return
		}
		a.tenantEvent(ctx, ev.TenantAdded, true)
	case f.Type == ssntp.EVENT && f.Event() == ssntp.TenantRemoved:
		var ev payloads.EventTenantRemoved
		if err := yaml.Unmarshal(f.Payload, &ev); err != nil {
			glog.Warningf("cnci-agent: bad TenantRemoved: %v", err)
			return
		}
		a.tenantEvent(ctx, ev.TenantRemoved, false)
	case f.Type == ssntp.COMMAND && (f.Command() == ssntp.AssignPublicIP || f.Command() == ssntp.ReleasePublicIP):
		a.publicIP(ctx, f)
	default:
		glog.V(2).Infof("cnci-agent: %s frame ignored", f.Type)
	}
}

func (a *Agent) tenantEvent(ctx context.Context, ev payloads.TenantAddedEvent, added bool) {
	what := "TenantRemoved"
	if added {
		what = "TenantAdded"
	}
	if ev.ConcentratorUUID != "" && !strings.EqualFold(strings.TrimSpace(ev.ConcentratorUUID), a.id.String()) {
		glog.Warningf("cnci-agent: %s for CNCI %s reached CNCI %s; ignored", what, ev.ConcentratorUUID, a.id)
		return
	}
	t, err := parseTunnel(ev)
	if err != nil {
		glog.Warningf("cnci-agent: refusing %s from %s: %v", what, ev.AgentUUID, err)
		return
	}
	if added {
		bridge, err := a.cnci.AddRemoteSubnet(ctx, t.subnet, t.key, t.cnIP)
		if err != nil {
			glog.Errorf("cnci-agent: %s %v from %v: %v", what, t.subnet.String(), t.cnIP, err)
			return
		}
		glog.Infof("cnci-agent: compute node %v (%s) joined subnet %v on bridge %s", t.cnIP, ev.AgentUUID, t.subnet.String(), bridge)
		return
	}
	if err := a.cnci.DelRemoteSubnet(ctx, t.subnet, t.key, t.cnIP); err != nil {
		glog.Errorf("cnci-agent: %s %v from %v: %v", what, t.subnet.String(), t.cnIP, err)
		return
	}
	glog.Infof("cnci-agent: compute node %v (%s) left subnet %v", t.cnIP, ev.AgentUUID, t.subnet.String())
}

func (a *Agent) publicIP(ctx context.Context, f *ssntp.Frame) {
	assign := f.Command() == ssntp.AssignPublicIP
	var cmd payloads.PublicIPCommand
	if assign {
		var p payloads.CommandAssignPublicIP
		if err := yaml.Unmarshal(f.Payload, &p); err != nil {
			glog.Warningf("cnci-agent: bad AssignPublicIP: %v", err)
			return
		}
		cmd = p.AssignIP
	} else {
		var p payloads.CommandReleasePublicIP
		if err := yaml.Unmarshal(f.Payload, &p); err != nil {
			glog.Warningf("cnci-agent: bad ReleasePublicIP: %v", err)
			return
		}
		cmd = p.ReleaseIP
	}
	pub, priv := net.ParseIP(strings.TrimSpace(cmd.PublicIP)), net.ParseIP(strings.TrimSpace(cmd.PrivateIP))
	var err error
	if assign {
		err = a.cnci.AssignPublicIP(ctx, pub, priv)
	} else {
		err = a.cnci.ReleasePublicIP(ctx, pub, priv)
	}
	if err != nil {
		glog.Errorf("cnci-agent: %s %s → %s for instance %s: %v", f.Command(), cmd.PublicIP, cmd.PrivateIP, cmd.InstanceUUID, err)
		return
	}
	glog.Infof("cnci-agent: %s %s → %s for instance %s", f.Command(), cmd.PublicIP, cmd.PrivateIP, cmd.InstanceUUID)
	if !assign {
		return
	}
	b, _ := yaml.Marshal(payloads.EventPublicIPAssigned{AssignedIP: payloads.PublicIPEvent{
		ConcentratorUUID: a.id.String(), InstanceUUID: cmd.InstanceUUID, PublicIP: pub.String(), PrivateIP: priv.String(),
	}})
	if err := a.client.SendEvent(ssntp.PublicIPAssigned, b); err != nil {
		glog.Warningf("cnci-agent: sending PublicIPAssigned: %v", err)
	}
}

// notifier queues frames, and connections, for Serve; it never blocks.
type notifier struct{ a *Agent }

func (n notifier) ConnectNotify()    { n.a.enqueue(nil) } // Serve announces the CNCI
func (n notifier) DisconnectNotify() { glog.Warningf("cnci-agent: lost the scheduler, reconnecting") }
func (n notifier) StatusNotify(s ssntp.Status, _ *ssntp.Frame) {
	glog.V(2).Infof("cnci-agent: STATUS %s ignored", s)
}
func (n notifier) CommandNotify(_ ssntp.Command, f *ssntp.Frame) { n.a.enqueue(f) }
func (n notifier) EventNotify(_ ssntp.Event, f *ssntp.Frame)     { n.a.enqueue(f) }
func (n notifier) ErrorNotify(e ssntp.Error, _ *ssntp.Frame) {
	glog.Warningf("cnci-agent: ERROR %s from the scheduler", e)
}
