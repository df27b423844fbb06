// Package cnci is ciao-launcher's network-node backend for CNCIs hosted as
// network namespaces rather than VMs (a dev cluster's cheap CNCI): an
// instance is a namespace holding a macvlan of the node's compute link
// (the tenant's CNCI MAC, an address from the configured pool) and a
// ciao-cnci-agent process, with the instance uuid as its SSNTP uuid, that
// runs the CNCI in that namespace.
//
// The agent process runs in the launcher's own namespace (it reaches the
// scheduler as the launcher does) in its own session, so it outlives the
// launcher; a new launcher re-adopts it by pid and start time. Stop ends the
// agent and keeps the namespace (a restarted agent rebuilds the CNCI from
// it); Delete removes both.
package cnci

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
)

// Config configures the driver.
type Config struct {
	// Agent is the ciao-cnci-agent binary.
	Agent string
	// CACert and Cert are the SSNTP CA and a CNCIAGENT certificate for
	// the agents; Server and Port the scheduler.
	CACert, Cert string
	Server       string
	Port         int
	// Node is the network node's networking (namespace, compute link).
	Node networking.Config
	// Pool holds the CNCIs' addresses; Prefix is their prefix length on
	// the compute network; Gateway, if set, their default route.
	Pool    net.IPNet
	Prefix  int
	Gateway net.IP
	// StopGrace is how long an agent has to exit after SIGTERM.
	StopGrace time.Duration
	// ProcRoot is where procfs is mounted.
	ProcRoot string
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Agent == "":
		return errors.New("cnci: no ciao-cnci-agent binary")
	case c.CACert == "" || c.Cert == "":
		return errors.New("cnci: the CNCI agents need a CA and a CNCIAGENT certificate")
	case c.Pool.IP.To4() == nil:
		return errors.New("cnci: no IPv4 address pool for CNCIs")
	case c.Prefix < 1 || c.Prefix > 30:
		return fmt.Errorf("cnci: prefix length %d", c.Prefix)
	}
	return nil
}

// Driver runs CNCIs as namespaces. mu guards used.
type Driver struct {
	cfg Config

	mu   sync.Mutex
	used map[string]string // CNCI address → instance
}

// New returns a driver.
func New(cfg Config) *Driver {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	return &Driver{cfg: cfg, used: map[string]string{}}
}

// handleData is what a handle keeps besides the agent's pid.
type handleData struct {
	Namespace string `json:"namespace"`
	IP        string `json:"ip"`
	Dir       string `json:"dir"`
}

func decode(h driver.Handle) handleData {
	var d handleData
	_ = json.Unmarshal(h.Data, &d)
	return d
}

// nsName is the namespace of a CNCI instance.
func nsName(id string) string { return "ciao-cnci-" + id }

// allocate reserves a free pool address for instance id.
func (d *Driver) allocate(id string) (net.IP, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ip, owner := range d.used {
		if owner == id {
			return net.ParseIP(ip).To4(), nil
		}
	}
	ones, bits := d.cfg.Pool.Mask.Size()
	base := binary.BigEndian.Uint32(d.cfg.Pool.IP.To4())
	for i := uint32(0); i < 1<<(bits-ones); i++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+i)
		if _, ok := d.used[ip.String()]; !ok {
			d.used[ip.String()] = id
			return ip, nil
		}
	}
	return nil, fmt.Errorf("%w: the CNCI address pool %v is exhausted", driver.ErrLaunch, d.cfg.Pool.String())
}

func (d *Driver) release(ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.used, ip)
}

// Start makes the CNCI's namespace and starts its agent.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Handle, error) {
	if err := d.cfg.Validate(); err != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
	}
	mac, err := net.ParseMAC(spec.VnicMAC)
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: CNCI vnic_mac %q", driver.ErrBadSpec, spec.VnicMAC)
	}
	ip, err := d.allocate(spec.InstanceUUID)
	if err != nil {
		return driver.Handle{}, err
	}
	tenant := spec.Tenant
	if tenant == "" {
		tenant = "unknown"
	}
	ns := networking.CnciNamespace{Name: nsName(spec.InstanceUUID), TenantID: tenant, VnicID: spec.InstanceUUID,
		MAC: mac, Addr: net.IPNet{IP: ip, Mask: net.CIDRMask(d.cfg.Prefix, 32)}, Gateway: d.cfg.Gateway}
	if err := networking.CreateCnciNamespace(d.cfg.Node, ns); err != nil {
		d.release(ip.String())
		return driver.Handle{}, fmt.Errorf("%w: CNCI namespace: %v", driver.ErrLaunch, err)
	}
	data, _ := json.Marshal(handleData{Namespace: ns.Name, IP: ip.String(), Dir: spec.Dir})
	h := driver.Handle{Driver: "cnci", Data: data}
	pid, ticks, err := d.startAgent(spec, ns, ip)
	if err != nil {
		_ = networking.DestroyCnciNamespace(ns.Name)
		d.release(ip.String())
		return driver.Handle{}, fmt.Errorf("%w: starting ciao-cnci-agent: %v", driver.ErrLaunch, err)
	}
	h.PID, h.StartTicks = pid, ticks
	glog.Infof("cnci: CNCI %s in namespace %s at %v (MAC %v), agent pid %d", spec.InstanceUUID, ns.Name, ip, mac, pid)
	return h, nil
}

func (d *Driver) startAgent(spec driver.Spec, ns networking.CnciNamespace, ip net.IP) (int, uint64, error) {
	args := []string{"-uuid", spec.InstanceUUID, "-tenant", spec.Tenant, "-netns", ns.Path(), "-compute-ip", ip.String(),
		"-cacert", d.cfg.CACert, "-cert", d.cfg.Cert, "-run-dir", spec.Dir, "-logtostderr"}
	if d.cfg.Server != "" {
		args = append(args, "-server", d.cfg.Server)
	}
	if d.cfg.Port != 0 {
		args = append(args, "-port", strconv.Itoa(d.cfg.Port))
	}
	if d.cfg.Node.Tunnel == networking.TunnelGRE {
		args = append(args, "-tunnel", "gre")
	}
	logf, err := os.OpenFile(filepath.Join(spec.Dir, "cnci-agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(d.cfg.Agent, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it if it ends while we run
	ticks, err := startTicks(d.cfg.ProcRoot, pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return 0, 0, err
	}
	return pid, ticks, nil
}

// procInfo reads a process's start time (field 22 of /proc/<pid>/stat)
// and whether it is a zombie.
func procInfo(procRoot string, pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false, fmt.Errorf("bad stat of pid %d", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("short stat of pid %d", pid)
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	return ticks, f[0] == "Z" || f[0] == "X", err
}

func startTicks(procRoot string, pid int) (uint64, error) {
	t, _, err := procInfo(procRoot, pid)
	return t, err
}

// Running says whether the CNCI's agent runs.
func (d *Driver) Running(_ context.Context, h driver.Handle) (bool, error) {
	if h.PID <= 0 {
		return false, nil
	}
	t, zombie, err := procInfo(d.cfg.ProcRoot, h.PID)
	if err != nil {
		return false, nil
	}
	return !zombie && t == h.StartTicks, nil
}

// Stop ends the agent (SIGTERM, then SIGKILL after StopGrace); the
// namespace and the CNCI in it stay.
func (d *Driver) Stop(ctx context.Context, h driver.Handle) error {
	if ok, _ := d.Running(ctx, h); !ok {
		return driver.ErrNotRunning
	}
	_ = syscall.Kill(h.PID, syscall.SIGTERM)
	deadline := time.Now().Add(d.cfg.StopGrace)
	for {
		if ok, _ := d.Running(ctx, h); !ok {
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(h.PID, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Delete stops the agent and removes the namespace with its CNCI.
func (d *Driver) Delete(ctx context.Context, h driver.Handle) error {
	if err := d.Stop(ctx, h); err != nil && !errors.Is(err, driver.ErrNotRunning) {
		return err
	}
	hd := decode(h)
	if hd.Namespace != "" {
		if err := networking.DestroyCnciNamespace(hd.Namespace); err != nil {
			return err
		}
	}
	d.release(hd.IP)
	return nil
}

// Adopt takes a CNCI over after a launcher restart (its address stays
// reserved).
func (d *Driver) Adopt(ctx context.Context, h driver.Handle, spec driver.Spec) (bool, error) {
	if hd := decode(h); hd.IP != "" {
		d.mu.Lock()
		d.used[hd.IP] = spec.InstanceUUID
		d.mu.Unlock()
	}
	return d.Running(ctx, h)
}

// Stats reports nothing measurable yet.
func (d *Driver) Stats(ctx context.Context, h driver.Handle) (driver.Stats, error) {
	ok, _ := d.Running(ctx, h)
	if !ok {
		return driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}, driver.ErrNotRunning
	}
	return driver.Stats{MemMB: -1, DiskMB: 0, CPUTime: -1}, nil
}
