package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// errNoTenantNet: a START carries no tenant networking (no VNIC made).
var errNoTenantNet = errors.New("launcher: no tenant networking in START")

// netState is the node's tenant networking (launcher spec §10). It is set
// up on first use — the first START carrying a networking section — and
// rebuilt from the kernel then, so that a launcher whose instances have
// no tenant networking never touches the host's links.
//
// mu guards cn and the first set-up; the ComputeNode serialises its own
// operations.
type netState struct {
	cfg networking.Config

	mu sync.Mutex
	cn *networking.ComputeNode
}

// node returns the compute node's networking, setting it up if needed.
func (n *netState) node() (*networking.ComputeNode, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cn != nil {
		return n.cn, nil
	}
	cn, err := networking.NewComputeNode(n.cfg)
	if err != nil {
		return nil, fmt.Errorf("setting up tenant networking: %w", err)
	}
	addr := cn.ComputeAddr()
	glog.Infof("launcher: tenant networking on %s %v (%s tunnels, %d subnets, %d VNICs rebuilt)",
		addr.Link, addr.IP, n.cfg.Tunnel, cn.Subnets(), cn.Vnics())
	n.cn = cn
	return cn, nil
}

// stats is the node's compute address for STATS (none before set-up).
func (n *netState) stats() []payloads.NetworkStat {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cn == nil {
		return []payloads.NetworkStat{}
	}
	a := n.cn.ComputeAddr()
	return []payloads.NetworkStat{{NodeIP: a.IP.String(), NodeMAC: a.MAC.String()}}
}

func (n *netState) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cn != nil {
		n.cn.Close()
		n.cn = nil
	}
}

// netConfig is the networking configuration of the node: the launcher's
// flags plus the cluster configuration's compute_net / mgmt_net.
func netConfig(cfg Config, compute, mgmt []string) (networking.Config, error) {
	nc := networking.DefaultConfig()
	nc.Netns, nc.Tunnel, nc.ComputeIP = cfg.NetNS, cfg.Tunnel, cfg.ComputeIP
	nc.Logger = glogNet{}
	parse := func(list []string) ([]net.IPNet, error) {
		var out []net.IPNet
		for _, s := range list {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !strings.Contains(s, "/") {
				s += "/32"
			}
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				return nil, fmt.Errorf("unable to parse CIDR %q", s)
			}
			out = append(out, *n)
		}
		return out, nil
	}
	var err error
	if nc.ComputeNets, err = parse(compute); err != nil {
		return nc, err
	}
	nc.MgmtNets, err = parse(mgmt)
	return nc, err
}

type glogNet struct{}

func (glogNet) Infof(f string, a ...any)    { glog.V(1).Infof(f, a...) }
func (glogNet) Warningf(f string, a ...any) { glog.Warningf(f, a...) }

// vnicConfig is the VNIC of a compute-node instance from its START (§10.2),
// or errNoTenantNet when the START has no networking section. The subnet
// key is recomputed from the subnet (subnet_key is ignored, as in 2016).
func vnicConfig(req *startRequest, kind string) (networking.VnicConfig, error) {
	n := req.cmd.Networking
	if nn, _ := req.cmd.NetworkNode(); nn {
		return networking.VnicConfig{}, errNoTenantNet
	}
	if strings.TrimSpace(n.PrivateIP) == "" && strings.TrimSpace(n.VnicMAC) == "" &&
		strings.TrimSpace(n.ConcentratorIP) == "" && strings.TrimSpace(n.Subnet) == "" {
		return networking.VnicConfig{}, errNoTenantNet
	}
	vc := networking.VnicConfig{
		Role: networking.TenantContainer, VnicIP: parseIPv4(n.PrivateIP), ConcIP: parseIPv4(n.ConcentratorIP),
		VnicID: trimID(n.VnicUUID), InstanceID: req.id, TenantID: trimID(req.cmd.TenantUUID),
		ConcID: trimID(n.ConcentratorUUID),
	}
	if kind == driver.KindQEMU {
		vc.Role = networking.TenantVM
	}
	mac, err := net.ParseMAC(strings.TrimSpace(n.VnicMAC))
	if err != nil {
		return vc, fmt.Errorf("%w: vnic_mac %q", networking.ErrBadConfig, n.VnicMAC)
	}
	vc.VnicMAC = mac
	if vc.Subnet, err = networking.ParseSubnet(n.Subnet); err != nil {
		return vc, err
	}
	vc.SubnetID = vc.Subnet.String()
	if vc.VnicID == "" {
		vc.VnicID = req.id // the 2016 controller always sent one
	}
	return vc, vc.Validate()
}

// createVnic makes the VNIC of an instance and reports a new tunnel with
// TenantAdded. The START failure reason says how a failure is answered.
func (l *Launcher) createVnic(ctx context.Context, req *startRequest, kind string) (*networking.Vnic, *networking.VnicConfig, payloads.StartFailureReason, error) {
	if !l.cfg.Network {
		return nil, nil, "", nil
	}
	if nn, _ := req.cmd.NetworkNode(); nn && kind == driver.KindQEMU {
		v, err := l.cnciVnic(req)
		if err != nil {
			return nil, nil, payloads.StartNetworkFailure, err
		}
		return v, nil, "", nil
	}
	vc, err := vnicConfig(req, kind)
	if errors.Is(err, errNoTenantNet) {
		return nil, nil, "", nil
	}
	if err != nil {
		if errors.Is(err, networking.ErrNoConcentrator) {
			return nil, nil, payloads.StartNetworkFailure, err
		}
		return nil, nil, payloads.StartInvalidData, err
	}
	cn, err := l.net.node()
	if err != nil {
		return nil, nil, payloads.StartNetworkFailure, err
	}
	v, ev, err := cn.CreateVnic(ctx, vc)
	if err != nil {
		return nil, nil, payloads.StartNetworkFailure, err
	}
	l.sendTunnelEvent(ev)
	return v, &vc, "", nil
}

// destroyVnic removes an instance's VNIC, if it has one, and reports a
// removed tunnel with TenantRemoved.
func (l *Launcher) destroyVnic(ctx context.Context, req *startRequest, kind string) {
	if nn, _ := req.cmd.NetworkNode(); nn && kind == driver.KindQEMU && l.cfg.Network {
		tenant, vnic := cnciIDs(req)
		if err := networking.DestroyCnciVnic(l.net.cfg, tenant, vnic); err != nil {
			glog.Errorf("launcher: CNCI %s: removing its macvtap: %v", req.id, err)
		}
		return
	}
	vc, err := vnicConfig(req, kind)
	if err != nil || !l.cfg.Network {
		return
	}
	cn, err := l.net.node()
	if err != nil {
		glog.Errorf("launcher: instance %s: cannot remove its VNIC: %v", req.id, err)
		return
	}
	ev, err := cn.DestroyVnic(ctx, vc)
	if err != nil {
		glog.Errorf("launcher: instance %s: removing its VNIC: %v", req.id, err)
	}
	l.sendTunnelEvent(ev)
}

// sendTunnelEvent sends TenantAdded / TenantRemoved for a tunnel event.
func (l *Launcher) sendTunnelEvent(ev *networking.TunnelEvent) {
	if ev == nil {
		return
	}
	te := payloads.TenantAddedEvent{
		AgentUUID: l.nodeID, AgentIP: ev.CnIP.String(), TenantUUID: ev.TenantID, TenantSubnet: ev.Subnet.String(),
		ConcentratorUUID: ev.ConcID, ConcentratorIP: ev.CnciIP.String(), SubnetKey: int(ev.SubnetKey),
	}
	var (
		b   []byte
		err error
		e   = ssntp.TenantAdded
	)
	if ev.Added {
		b, err = yaml.Marshal(payloads.EventTenantAdded{TenantAdded: te})
	} else {
		e = ssntp.TenantRemoved
		b, err = yaml.Marshal(payloads.EventTenantRemoved{TenantRemoved: te})
	}
	if err == nil {
		err = l.client.SendEvent(e, b)
	}
	if err != nil {
		glog.Warningf("launcher: sending %s for subnet %s: %v", e, te.TenantSubnet, err)
		return
	}
	glog.Infof("launcher: %s: subnet %s of tenant %s, CNCI %s at %s", e, te.TenantSubnet, te.TenantUUID, te.ConcentratorUUID, te.ConcentratorIP)
}

// cnciIDs are the tenant and VNIC ids of a CNCI START's macvtap alias.
func cnciIDs(req *startRequest) (tenant, vnic string) {
	tenant, vnic = trimID(req.cmd.TenantUUID), trimID(req.cmd.Networking.VnicUUID)
	if tenant == "" {
		tenant = "unknown"
	}
	if vnic == "" {
		vnic = req.id
	}
	return tenant, vnic
}

// cnciVnic makes the macvtap of a CNCI VM (network node, §12 of the
// launcher spec): no tunnel, no TenantAdded.
func (l *Launcher) cnciVnic(req *startRequest) (*networking.Vnic, error) {
	mac, err := net.ParseMAC(strings.TrimSpace(req.cmd.Networking.VnicMAC))
	if err != nil {
		return nil, fmt.Errorf("%w: CNCI vnic_mac %q", networking.ErrBadConfig, req.cmd.Networking.VnicMAC)
	}
	tenant, vnic := cnciIDs(req)
	v, err := networking.CreateCnciVnic(l.net.cfg, tenant, vnic, mac)
	if err != nil {
		return nil, err
	}
	return &networking.Vnic{Name: v.Name, Alias: v.Alias, TapDevice: v.TapDevice()}, nil
}
