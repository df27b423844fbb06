package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/cnci"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/process"
	qemudrv "github.com/ciao-project/ciao/ciao-launcher/internal/driver/qemu"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/sim"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// ErrRole: the certificate does not make the launcher an AGENT or NETAGENT.
var ErrRole = errors.New("launcher: invalid certificate role")

// ErrNoClusterConfig: the scheduler sent no cluster configuration.
var ErrNoClusterConfig = errors.New("launcher: no cluster configuration")

// Launcher is one run of the agent. Its fields after "owned by loop" belong
// to the main loop goroutine; the rest is set before any goroutine starts and
// read-only afterwards.
type Launcher struct {
	cfg     Config
	drivers driver.Registry
	client  *ssntp.Client
	nodeID  string
	inbox   *mailbox[message]
	events  chan instEvent
	wg      sync.WaitGroup // instance goroutines
	net     *netState      // set by loadClusterConfig

	// owned by loop
	instances   map[string]*instRecord
	connected   bool
	maintenance bool
	diskLimit   bool
	memLimit    bool
	memAvail    int // MB, by the §9.3 formula; −1 unknown
	diskAvail   int
	lastStatus  ssntp.Status
	lastSentAt  time.Time        // when the last status frame was sent
	statusDue   <-chan time.Time // fires when a coalesced status is due (nil: none)
	statusTimer *time.Timer      // statusDue's timer
	traces      []*ssntp.Frame   // succeeded path-traced STARTs not yet reported (trace.go)
}

// instRecord is the main loop's view of an instance.
type instRecord struct {
	id       string
	kind     string
	box      *mailbox[instCmd]
	state    string // payloads.InstancePending, InstanceActive, InstanceExited
	vcpus    int
	memMB    int
	diskMB   int
	sample   sample
	deleting bool
	sshIP    string
	sshPort  int
	trace    *ssntp.Frame // the path-traced START, until it succeeds
	stat     statItem     // its STATS list item, encoded (stats.go)
}

// message is what the SSNTP notifier queues for the main loop.
type message struct {
	connected, disconnected bool
	cmd                     ssntp.Command
	frame                   *ssntp.Frame
}

// notifier queues SSNTP callbacks for the main loop; it never blocks.
type notifier struct{ box *mailbox[message] }

func (n notifier) ConnectNotify()    { n.box.put(message{connected: true}) }
func (n notifier) DisconnectNotify() { n.box.put(message{disconnected: true}) }
func (n notifier) StatusNotify(s ssntp.Status, _ *ssntp.Frame) {
	glog.V(2).Infof("launcher: STATUS %s from the scheduler ignored", s)
}
func (n notifier) CommandNotify(c ssntp.Command, f *ssntp.Frame) {
	n.box.put(message{cmd: c, frame: f})
}
func (n notifier) EventNotify(e ssntp.Event, _ *ssntp.Frame) {
	glog.V(2).Infof("launcher: EVENT %s ignored", e)
}
func (n notifier) ErrorNotify(e ssntp.Error, _ *ssntp.Frame) {
	glog.Warningf("launcher: ERROR %s from the scheduler", e)
}

// Drivers builds the driver registry cfg asks for: the simulator for every
// kind with Simulation, else the process driver (if allowed) and Docker.
// Docker is registered without asking the engine, so that a launcher
// started before dockerd still comes up: its container STARTs then fail
// with launch_failure and a log naming the engine that does not answer.
// Release the registry with closeDrivers.
func Drivers(cfg Config) driver.Registry {
	if cfg.Drivers != nil {
		return cfg.Drivers
	}
	r := driver.Registry{}
	if cfg.CNCI.Agent != "" {
		nc, _ := netConfig(cfg, nil, nil)
		r[driver.KindCNCI] = cnci.New(cnci.Config{
			Agent: cfg.CNCI.Agent, CACert: cfg.CNCI.CACert, Cert: cfg.CNCI.Cert, Server: cfg.Server, Port: cfg.Port,
			Node: nc, Pool: cfg.CNCI.Pool, Prefix: cfg.CNCI.Prefix, Gateway: cfg.CNCI.Gateway, StopGrace: cfg.StopGrace,
			ProcRoot: cfg.ProcRoot,
		})
	}
	if cfg.Simulation {
		r[driver.KindSim] = sim.New()
		return r
	}
	if cfg.Process {
		r[driver.KindProcess] = process.New(processConfig(cfg))
	}
	r[driver.KindQEMU] = qemudrv.New(qemuConfig(cfg))
	dc := docker.DefaultConfig()
	dc.StopGrace = cfg.StopGrace
	if d, err := docker.New(dc); err != nil {
		glog.Errorf("launcher: no Docker driver, container STARTs will fail: %v", err)
	} else {
		r[driver.KindDocker] = d
	}
	return r
}

// closeDrivers releases what the drivers of a registry built by Drivers
// hold (engine connections); the instances are not touched. Drivers given
// in cfg.Drivers belong to the caller.
func closeDrivers(cfg Config, r driver.Registry) {
	if cfg.Drivers != nil {
		return
	}
	for _, d := range r {
		if c, ok := d.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
}

// qemuConfig is the QEMU driver's configuration: the image cache and
// accelerator come from the flags; the auto accelerator verdict is kept
// next to the instances so that a restarted launcher remembers it.
func qemuConfig(cfg Config) qemudrv.Config {
	qc := qemudrv.DefaultConfig()
	if cfg.ImageDir != "" {
		qc.ImageDir = cfg.ImageDir
	}
	qc.Accel = cfg.Accel
	qc.AccelFile = filepath.Join(cfg.StateDir, ".qemu-accel")
	qc.ProcRoot = cfg.ProcRoot
	qc.StopGrace = cfg.StopGrace
	return qc
}

func processConfig(cfg Config) process.Config {
	pc := process.DefaultConfig()
	pc.CgroupRoot = cfg.CgroupRoot
	pc.ProcRoot = cfg.ProcRoot
	pc.StopGrace = cfg.StopGrace
	return pc
}

// HardReset stops and deletes every instance under cfg.StateDir and removes
// their directories. It needs no scheduler.
func HardReset(ctx context.Context, cfg Config) error {
	drivers := Drivers(cfg)
	// Whatever the flags, clean up instances of every local kind.
	if _, ok := drivers[driver.KindProcess]; !ok {
		drivers[driver.KindProcess] = process.New(processConfig(cfg))
	}
	if _, ok := drivers[driver.KindSim]; !ok {
		drivers[driver.KindSim] = sim.New()
	}
	if _, ok := drivers[driver.KindQEMU]; !ok {
		drivers[driver.KindQEMU] = qemudrv.New(qemuConfig(cfg))
	}
	defer closeDrivers(cfg, drivers)
	err := hardReset(ctx, cfg, drivers)
	if cfg.Network {
		// Links made by ciao (names sbr_, svn_, svp_, svc_, sgt_ or ciao
		// aliases), after the instances that used them.
		nc, nerr := netConfig(cfg, nil, nil)
		if nerr == nil {
			_, nerr = networking.ResetNetwork(nc)
		}
		err = errors.Join(err, nerr)
	}
	return err
}

// Run runs the launcher until ctx ends (a clean exit, nil) or a fatal error.
// Ending it stops watching the instances but leaves them running.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if cfg.LockFile != "" && !cfg.Simulation {
		lf, err := lockFile(cfg.LockFile)
		if err != nil {
			return err
		}
		defer lf.Close()
	}
	role, err := certRoles(cfg.Cert)
	if err != nil {
		return fmt.Errorf("reading certificate: %w", err)
	}
	if role == 0 || role&^(ssntp.AGENT|ssntp.NETAGENT) != 0 {
		return fmt.Errorf("%w: certificate roles %q, want AGENT and/or NETAGENT", ErrRole, role)
	}
	id, err := nodeUUID(cfg.UUIDDir, role)
	if err != nil {
		return err
	}
	l := &Launcher{
		cfg:        cfg,
		drivers:    Drivers(cfg),
		nodeID:     id.String(),
		inbox:      newMailbox[message](),
		events:     make(chan instEvent),
		instances:  make(map[string]*instRecord),
		memAvail:   -1,
		diskAvail:  -1,
		lastStatus: ssntp.READY,
	}
	defer closeDrivers(cfg, l.drivers) // after run has waited for the instance goroutines
	if _, err := os.Stat(cfg.MaintenanceFile); cfg.MaintenanceFile != "" && err == nil {
		l.maintenance = true
		glog.Infof("launcher: node is in maintenance (evacuated); remove %s or run with -restore to take work again", cfg.MaintenanceFile)
	}
	glog.Infof("launcher: node %s, role %s, drivers %v, state in %s", l.nodeID, role, l.drivers.Kinds(), cfg.StateDir)

	sc := ssntp.Config{UUID: id, CAcert: cfg.CACert, Cert: cfg.Cert, Role: role, URI: cfg.Server, Port: cfg.Port}
	dctx := ctx
	if cfg.DialTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, cfg.DialTimeout)
		defer cancel()
	}
	client, err := ssntp.Dial(dctx, sc, notifier{l.inbox})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connecting to the scheduler: %w", err)
	}
	defer client.Close()
	l.client = client

	if err := l.loadClusterConfig(); err != nil {
		return err
	}
	defer l.net.close()
	return l.run(ctx)
}

// loadClusterConfig reads the launcher section of the cluster configuration.
func (l *Launcher) loadClusterConfig() error {
	raw := l.client.ClusterConfiguration()
	if len(raw) == 0 {
		return ErrNoClusterConfig
	}
	var c payloads.Configure
	c.InitDefaults()
	c.Configure.Launcher.DiskLimit, c.Configure.Launcher.MemoryLimit = true, true
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%w: %v", ErrNoClusterConfig, err)
	}
	l.diskLimit = c.Configure.Launcher.DiskLimit
	l.memLimit = c.Configure.Launcher.MemoryLimit
	nc, err := netConfig(l.cfg, c.Configure.Launcher.ComputeNetwork, c.Configure.Launcher.ManagementNetwork)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoClusterConfig, err)
	}
	l.net = &netState{cfg: nc}
	glog.Infof("launcher: cluster configuration: disk_limit %v, mem_limit %v, compute_net %v, mgmt_net %v",
		l.diskLimit, l.memLimit, c.Configure.Launcher.ComputeNetwork, c.Configure.Launcher.ManagementNetwork)
	return nil
}

// run adopts the instances on disk and runs the main loop until ctx ends,
// then waits for the instance goroutines (not the instances) to stop.
func (l *Launcher) run(ctx context.Context) error {
	ictx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		l.wg.Wait()
	}()
	l.adoptAll(ictx)
	l.refreshAvailable()
	l.loop(ctx, ictx)
	return nil
}

// adoptAll creates an instance goroutine for every instance directory.
func (l *Launcher) adoptAll(ctx context.Context) {
	found, bad, err := scanInstances(l.cfg.StateDir)
	if err != nil {
		glog.Errorf("launcher: scanning %s: %v", l.cfg.StateDir, err)
		return
	}
	for _, dir := range bad {
		glog.Warningf("launcher: not adopting %s (see above); -hard-reset removes it", dir)
	}
	for _, f := range found {
		d, err := l.drivers.Lookup(f.state.Kind)
		if err != nil {
			glog.Errorf("launcher: cannot adopt instance %s: %v", f.id, err)
			continue
		}
		rec := l.addRecord(f.req, f.state.Kind)
		rec.deleting = f.deleting
		in := &instance{l: l, id: f.id, dir: f.dir, drv: d, st: f.state, req: f.req, box: rec.box, resumeDelete: f.deleting}
		glog.Infof("launcher: adopting instance %s (%s), deletion begun %v", f.id, f.state.Kind, f.deleting)
		l.wg.Add(1)
		go in.run(ctx, false)
	}
}

// addRecord enters an instance into the table and its reservations into
// the accounting.
func (l *Launcher) addRecord(req *startRequest, kind string) *instRecord {
	vcpus, _ := req.cmd.VCPUs()
	mem, _ := req.cmd.MemMB()
	disk, _ := req.cmd.DiskMB()
	rec := &instRecord{
		id: req.id, kind: kind, box: newMailbox[instCmd](), state: payloads.InstancePending,
		vcpus: vcpus, memMB: mem, diskMB: disk, sample: sample{-1, -1, -1},
	}
	if kind != driver.KindProcess {
		rec.sshIP, rec.sshPort = sshAddress(req.cmd)
	}
	l.instances[req.id] = rec
	return rec
}

// sshAddress is where to reach an instance's SSH (§4.2): through the CNCI,
// on a port derived from the private IP.
func sshAddress(c payloads.StartCmd) (string, int) {
	nn, _ := c.NetworkNode()
	ip := parseIPv4(c.Networking.PrivateIP)
	if nn || ip == nil {
		return trimID(c.Networking.ConcentratorIP), 0
	}
	port := 33000 + int(ip[2])<<8 + int(ip[3])
	if port >= 65535 {
		port = 0
	}
	return trimID(c.Networking.ConcentratorIP), port
}

// loop is the main loop. ctx ends it; ictx is the instance goroutines'.
func (l *Launcher) loop(ctx, ictx context.Context) {
	tick := time.NewTicker(l.cfg.StatsInterval)
	defer tick.Stop()
	defer func() {
		if l.statusTimer != nil {
			l.statusTimer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.inbox.signal():
			for _, m := range l.inbox.take() {
				if ctx.Err() != nil {
					return // a flood of commands must not delay exit
				}
				l.handle(ictx, m)
			}
		case ev := <-l.events:
			l.handleEvent(ev)
		case <-l.statusDue:
			l.statusDue = nil
			l.report(false)
		case <-tick.C:
			if l.connected {
				l.report(true)
			}
		}
	}
}

// handle acts on one message from the scheduler.
func (l *Launcher) handle(ctx context.Context, m message) {
	switch {
	case m.connected:
		glog.Infof("launcher: connected to scheduler %s", l.client.ServerUUID())
		l.connected = true
		l.report(true)
		return
	case m.disconnected:
		glog.Warningf("launcher: lost the scheduler, reconnecting")
		l.connected = false
		return
	}
	p := m.frame.Payload
	glog.V(1).Infof("launcher: COMMAND %s", m.cmd)
	switch m.cmd {
	case ssntp.START:
		l.start(ctx, m.frame)
	case ssntp.STOP:
		l.instanceCommand(p, ssntp.STOP)
	case ssntp.RESTART:
		l.instanceCommand(p, ssntp.RESTART)
	case ssntp.DELETE:
		l.instanceCommand(p, ssntp.DELETE)
	case ssntp.EVACUATE:
		l.evacuate(p)
	default:
		glog.V(2).Infof("launcher: COMMAND %s ignored", m.cmd)
	}
}

// start admits a START and creates its instance goroutine, or refuses it.
// A path-traced START is kept on the record until it succeeds.
func (l *Launcher) start(ctx context.Context, f *ssntp.Frame) {
	req, reason, err := parseStart(f.Payload)
	if err != nil {
		id := ""
		if req != nil && payloads.ValidID(req.id) {
			id = req.id
		}
		glog.Warningf("launcher: refusing START %s: %s: %v", id, reason, err)
		l.sendStartFailure(id, reason)
		return
	}
	if l.maintenance {
		glog.Warningf("launcher: refusing START %s: node in maintenance", req.id)
		l.sendStartFailure(req.id, payloads.StartFullComputeNode)
		return
	}
	if rec, ok := l.instances[req.id]; ok {
		r := payloads.StartInstanceExists
		if rec.state != payloads.InstanceExited && !rec.deleting {
			r = payloads.StartAlreadyRunning
		}
		glog.Warningf("launcher: refusing START %s: %s", req.id, r)
		l.sendStartFailure(req.id, r)
		return
	}
	dir := filepath.Join(l.cfg.StateDir, req.id)
	if _, err := os.Lstat(dir); err == nil {
		glog.Warningf("launcher: refusing START %s: %s exists", req.id, dir)
		l.sendStartFailure(req.id, payloads.StartInstanceExists)
		return
	}
	kind := l.kindOf(req)
	d, err := l.drivers.Lookup(kind)
	if err != nil {
		glog.Errorf("launcher: cannot START %s: %v", req.id, err)
		l.sendStartFailure(req.id, payloads.StartLaunchFailure)
		return
	}
	if why := l.admit(req); why != "" {
		glog.Warningf("launcher: refusing START %s: node full: %s", req.id, why)
		l.sendStartFailure(req.id, payloads.StartFullComputeNode)
		return
	}
	rec := l.addRecord(req, kind)
	if f.PathTrace() {
		rec.trace = f
	}
	l.memAvail -= rec.memMB
	l.diskAvail -= rec.diskMB
	st := &instanceState{Kind: kind, Start: req.raw}
	in := &instance{l: l, id: req.id, dir: dir, drv: d, st: st, req: req, box: rec.box}
	// One Info line per START, "running" (or the failure): the launcher
	// logs thousands of them in a burst.
	glog.V(1).Infof("launcher: starting instance %s (%s)", req.id, kind)
	l.wg.Add(1)
	go in.run(ctx, true)
}

// kindOf chooses the driver kind of a START.
func (l *Launcher) kindOf(req *startRequest) string {
	if nn, _ := req.cmd.NetworkNode(); nn {
		if _, ok := l.drivers[driver.KindCNCI]; ok {
			return driver.KindCNCI
		}
	}
	if l.cfg.Simulation {
		return driver.KindSim
	}
	if process.IsWorkload(req.userData) {
		return driver.KindProcess
	}
	if hv, _ := req.cmd.Hypervisor(); hv == payloads.HypervisorDocker {
		return driver.KindDocker
	}
	return driver.KindQEMU
}

// admit applies the admission limits (§9.3); it returns why a START is
// refused, or "".
func (l *Launcher) admit(req *startRequest) string {
	mem, _ := req.cmd.MemMB()
	disk, _ := req.cmd.DiskMB()
	switch {
	case l.cfg.MaxInstances > 0 && len(l.instances) >= l.cfg.MaxInstances:
		return fmt.Sprintf("%d instances", len(l.instances))
	case l.memLimit && l.memAvail >= 0 && l.memAvail-mem < l.cfg.MemLowWaterMB:
		return fmt.Sprintf("%d MB of memory requested, %d MB available", mem, l.memAvail)
	case l.diskLimit && l.diskAvail >= 0 && l.diskAvail-disk < l.cfg.DiskLowWaterMB:
		return fmt.Sprintf("%d MB of disk requested, %d MB available", disk, l.diskAvail)
	}
	return ""
}

// instanceCommand routes STOP, RESTART and DELETE to their instance.
func (l *Launcher) instanceCommand(p []byte, c ssntp.Command) {
	var sc payloads.StopCmd
	var err error
	switch c {
	case ssntp.STOP:
		var s payloads.Stop
		err = yaml.Unmarshal(p, &s)
		sc = s.Stop
	case ssntp.DELETE:
		var s payloads.Delete
		err = yaml.Unmarshal(p, &s)
		sc = s.Delete
	case ssntp.RESTART:
		var s payloads.Restart
		err = yaml.Unmarshal(p, &s)
		sc = payloads.StopCmd{InstanceUUID: s.Restart.InstanceUUID}
	}
	if err != nil {
		glog.Warningf("launcher: bad %s payload: %v", c, err)
		l.sendFailure(c, "", reasonInvalidPayload)
		return
	}
	if err := sc.Validate(); err != nil {
		glog.Warningf("launcher: bad %s payload: %v", c, err)
		l.sendFailure(c, "", reasonInvalidData)
		return
	}
	id := trimID(sc.InstanceUUID)
	rec, ok := l.instances[id]
	if ok && rec.deleting && c == ssntp.DELETE {
		// A re-sent DELETE (the controller re-sends unconfirmed ones):
		// InstanceDeleted answers it once the deletion under way ends.
		// no_instance would tell the controller the instance is gone
		// while it is still being torn down.
		glog.Infof("launcher: DELETE of %s: its deletion is under way", id)
		return
	}
	if !ok || rec.deleting {
		glog.Warningf("launcher: %s of unknown instance %s", c, id)
		l.sendFailure(c, id, reasonNoInstance)
		return
	}
	switch c {
	case ssntp.STOP:
		rec.box.put(instCmd{op: opStop})
	case ssntp.RESTART:
		rec.box.put(instCmd{op: opRestart})
	case ssntp.DELETE:
		rec.deleting = true
		rec.box.put(instCmd{op: opDelete})
	}
}

// evacuate puts the node in maintenance and deletes every instance; each
// deletion is reported with InstanceDeleted. The node stays in maintenance
// (status MAINTENANCE, STARTs refused with full_cn) until restored.
func (l *Launcher) evacuate(p []byte) {
	var e payloads.Evacuate
	if err := yaml.Unmarshal(p, &e); err != nil {
		glog.Warningf("launcher: bad EVACUATE payload: %v", err)
		return
	}
	glog.Infof("launcher: evacuating the node: deleting %d instances", len(l.instances))
	l.maintenance = true
	if l.cfg.MaintenanceFile != "" {
		err := os.MkdirAll(filepath.Dir(l.cfg.MaintenanceFile), 0o755)
		if err == nil {
			err = writeFileAtomic(l.cfg.MaintenanceFile, []byte("evacuated "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
		}
		if err != nil {
			glog.Errorf("launcher: recording maintenance mode: %v", err)
		}
	}
	for _, rec := range l.instances {
		if !rec.deleting {
			rec.deleting = true
			rec.box.put(instCmd{op: opDelete})
		}
	}
	l.report(false)
}

// Restore takes an evacuated node out of maintenance (used by -restore).
func Restore(cfg Config) error {
	if cfg.MaintenanceFile == "" {
		return nil
	}
	if err := os.Remove(cfg.MaintenanceFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("leaving maintenance: %w", err)
	}
	return nil
}

// handleEvent applies an instance goroutine's report.
func (l *Launcher) handleEvent(ev instEvent) {
	rec, ok := l.instances[ev.id]
	if !ok {
		return
	}
	switch ev.kind {
	case evState:
		rec.state = ev.state
		if ev.state == payloads.InstanceActive && ev.startedNow {
			l.queueTrace(rec, time.Now())
			l.startedStatus()
		}
	case evSample:
		rec.sample = ev.sample
	case evDeleteFailed:
		rec.deleting = false
	case evRemoved, evDeleted:
		delete(l.instances, ev.id)
		if ev.kind == evDeleted {
			glog.Infof("launcher: instance %s deleted", ev.id)
			b, _ := yaml.Marshal(payloads.EventInstanceDeleted{InstanceDeleted: payloads.InstanceDeletedEvent{InstanceUUID: ev.id}})
			l.send("InstanceDeleted", func() error { return l.client.SendEvent(ssntp.InstanceDeleted, b) })
		}
		l.refreshAvailable()
		l.report(false)
	}
	if ev.startFailure != "" {
		l.sendStartFailure(ev.id, ev.startFailure)
	}
}

// refreshAvailable recomputes the memory and disk available to new
// instances (§9.3): what the node has free, plus what the instances already
// use, minus their reservations.
func (l *Launcher) refreshAvailable() nodeStats {
	n := readNodeStats(l.cfg.ProcRoot, l.cfg.StateDir)
	memUsed, diskUsed, memRes, diskRes := 0, 0, 0, 0
	for _, r := range l.instances {
		if r.sample.memMB >= 0 {
			memUsed += min(r.sample.memMB, max(r.memMB, 0))
		}
		if r.sample.diskMB >= 0 {
			diskUsed += r.sample.diskMB
		}
		memRes += r.memMB
		diskRes += r.diskMB
	}
	l.memAvail, l.diskAvail = -1, -1
	if n.MemAvailableMB >= 0 {
		l.memAvail = n.MemAvailableMB + memUsed - memRes
	}
	if n.DiskAvailableMB >= 0 {
		l.diskAvail = n.DiskAvailableMB + diskUsed - diskRes
	}
	return n
}

// status is the node status to report.
func (l *Launcher) status() ssntp.Status {
	switch {
	case l.maintenance:
		return ssntp.MAINTENANCE
	case l.cfg.MaxInstances > 0 && len(l.instances) >= l.cfg.MaxInstances:
		return ssntp.FULL
	case l.diskLimit && l.diskAvail >= 0 && l.diskAvail < l.cfg.DiskHighWaterMB:
		return ssntp.FULL
	case l.memLimit && l.memAvail >= 0 && l.memAvail < l.cfg.MemHighWaterMB:
		return ssntp.FULL
	}
	return ssntp.READY
}

// startedStatus sends the status a successful START owes the scheduler
// (§9.2), coalesced: at once if the last status frame is older than
// cfg.StatusCoalesce, else when it is that old, one frame for every START
// succeeding meanwhile. The scheduler keeps only a node's latest status;
// between two of them its own accounting covers the STARTs it placed
// (scheduler spec §4.6), and the launcher refuses with full_cn what no
// longer fits (§9.3), so a READY sent later loses nothing. A change of
// status (the START made the node FULL, by the launcher's accounting) is
// not delayed: the scheduler must stop placing on the node at once.
func (l *Launcher) startedStatus() {
	if !l.connected {
		return // the connection's report will carry it
	}
	if l.statusDue != nil {
		return // already due
	}
	wait := l.cfg.StatusCoalesce - time.Since(l.lastSentAt)
	if wait <= 0 || l.status() != l.lastStatus {
		l.report(false)
		return
	}
	if l.statusTimer == nil {
		l.statusTimer = time.NewTimer(wait)
	} else {
		l.statusTimer.Reset(wait)
	}
	l.statusDue = l.statusTimer.C
}

// report sends the node status and, with stats, the STATS command. A
// coalesced status not sent yet goes with it.
func (l *Launcher) report(stats bool) {
	if !l.connected {
		return
	}
	if l.statusDue != nil {
		l.statusTimer.Stop()
		l.statusDue = nil
	}
	l.lastSentAt = time.Now()
	n := l.refreshAvailable()
	st := l.status()
	if st != l.lastStatus {
		glog.Infof("launcher: node status %s (memory available %d MB, disk %d MB)", st, l.memAvail, l.diskAvail)
		l.lastStatus = st
	}
	var payload []byte
	if st == ssntp.READY {
		payload, _ = yaml.Marshal(payloads.Ready{
			NodeUUID: l.nodeID, MemTotalMB: n.MemTotalMB, MemAvailableMB: n.MemAvailableMB,
			DiskTotalMB: n.DiskTotalMB, DiskAvailableMB: n.DiskAvailableMB, Load: n.Load, CpusOnline: n.CPUsOnline,
		})
	}
	l.send("status", func() error { return l.client.SendStatus(st, payload) })
	if !stats {
		return
	}
	s := payloads.Stat{
		NodeUUID: l.nodeID, Status: st.String(),
		MemTotalMB: n.MemTotalMB, MemAvailableMB: n.MemAvailableMB,
		DiskTotalMB: n.DiskTotalMB, DiskAvailableMB: n.DiskAvailableMB,
		Load: n.Load, CpusOnline: n.CPUsOnline,
		Networks: l.net.stats(),
	}
	if h, err := os.Hostname(); err == nil {
		s.NodeHostName = h
	}
	ids := make([]string, 0, len(l.instances))
	for id := range l.instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	items := make([][]byte, len(ids))
	for i, id := range ids {
		items[i], _ = l.instances[id].statItem()
	}
	b, err := encodeStats(s, items, func() []payloads.InstanceStat {
		all := make([]payloads.InstanceStat, 0, len(ids))
		for _, id := range ids {
			all = append(all, l.instances[id].instanceStat())
		}
		return all
	})
	if err != nil {
		glog.Errorf("launcher: encoding STATS: %v", err)
		return
	}
	l.send("STATS", func() error { return l.client.SendCommand(ssntp.STATS, b) })
	l.sendTraces()
}

// send sends a frame, logging a failure (frames are only sent while
// connected; a lost one is replaced by the next report).
func (l *Launcher) send(what string, f func() error) {
	if err := f(); err != nil {
		glog.Warningf("launcher: sending %s: %v", what, err)
	}
}

// Failure reasons shared by STOP, RESTART and DELETE failures.
const (
	reasonInvalidPayload = "invalid_payload"
	reasonInvalidData    = "invalid_data"
	reasonNoInstance     = "no_instance"
)

// sendFailure sends the failure error of command c. Instance goroutines
// call it too: it touches no launcher state and the client is safe for
// concurrent use; the main loop never waits on it for them.
func (l *Launcher) sendFailure(c ssntp.Command, id, reason string) {
	var (
		e ssntp.Error
		v any
	)
	switch c {
	case ssntp.START:
		e, v = ssntp.StartFailure, payloads.ErrorStartFailure{InstanceUUID: id, Reason: payloads.StartFailureReason(reason)}
	case ssntp.STOP:
		e, v = ssntp.StopFailure, payloads.ErrorStopFailure{InstanceUUID: id, Reason: payloads.StopFailureReason(reason)}
	case ssntp.RESTART:
		e, v = ssntp.RestartFailure, payloads.ErrorRestartFailure{InstanceUUID: id, Reason: payloads.RestartFailureReason(reason)}
	case ssntp.DELETE:
		e, v = ssntp.DeleteFailure, payloads.ErrorDeleteFailure{InstanceUUID: id, Reason: payloads.DeleteFailureReason(reason)}
	default:
		glog.Errorf("launcher: no failure frame for %s", c)
		return
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		glog.Errorf("launcher: encoding %s: %v", e, err)
		return
	}
	l.send(e.String(), func() error { return l.client.SendError(e, b) })
}

func (l *Launcher) sendStartFailure(id string, r payloads.StartFailureReason) {
	l.sendFailure(ssntp.START, id, string(r))
}
