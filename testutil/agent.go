package testutil

import (
	"slices"
	"sync"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	yaml "gopkg.in/yaml.v2"
)

// Instance is an instance a FakeAgent runs, or ran: a stopped instance
// stays, exited, until it is deleted.
type Instance struct {
	UUID        string
	Tenant      string
	State       string // payloads.InstanceActive or payloads.InstanceExited
	VCPUs       int
	MemMB       int
	DiskMB      int
	NetworkNode bool              // a CNCI
	Volumes     []string          // attached volumes, oldest first
	Start       payloads.StartCmd // the START that created it
}

func (in *Instance) clone() Instance {
	c := *in
	c.Volumes = append([]string{}, in.Volumes...)
	return c
}

// stat is the instance's STATS entry: a fake VM uses all it asked for.
func (in *Instance) stat() payloads.InstanceStat {
	st := payloads.InstanceStat{
		InstanceUUID:  in.UUID,
		State:         in.State,
		MemoryUsageMB: in.MemMB,
		DiskUsageMB:   in.DiskMB,
		CPUUsage:      0,
		Volumes:       append([]string{}, in.Volumes...),
	}
	if in.State != payloads.InstanceActive {
		st.MemoryUsageMB, st.CPUUsage = -1, -1 // as the launcher reports a stopped VM
	}
	return st
}

// FakeAgent is a fake ciao-launcher: an SSNTP client with role AGENT,
// NETAGENT or both that keeps a table of instances and answers commands
// the way a launcher does, failure reasons included:
//
//   - START: records a running instance (or, WithDropStarts, ignores it). Fails with invalid_payload,
//     invalid_data (ValidateForLauncher), already_running, instance_exists
//     (the instance is known but stopped), full_cn (WithAutoReady and too
//     little memory) or the WithStartFailure reason.
//   - STOP: marks the instance exited (no_instance, already_stopped).
//   - RESTART: marks it running again (no_instance, already_running).
//   - DELETE: removes it and sends InstanceDeleted (no_instance), or,
//     WithDropDeletes, ignores it.
//   - AttachVolume / DetachVolume: updates its volumes (already_attached,
//     not_attached; an unknown instance is only logged, as the launcher
//     does).
//   - EVACUATE, CONFIGURE and events: only recorded.
//
// Every failure knob (WithStartFailure...) overrides the checks. Nothing
// happens without a command: a FakeAgent sends READY, FULL and STATS when
// the test asks (SendReady...) or, with WithAutoReady, when a launcher
// would.
//
// mu guards knobs, instances, order, memTotal, memAvail, lastStatus and
// traced. Commands are handled on the SSNTP client's reading goroutine,
// one at a time, in wire order.
type FakeAgent struct {
	*peerClient
	role ssntp.Role

	mu         sync.Mutex
	knobs      agentKnobs
	instances  map[string]*Instance
	order      []string     // instance UUIDs, oldest START first
	memTotal   int          // node memory as last reported (READY)
	memAvail   int          // ditto; computed from the instances with WithAutoReady
	lastStatus ssntp.Status // last status sent, for STATS
	traced     []*ssntp.Frame
}

// NewFakeAgent connects a fake launcher to the server on 127.0.0.1:
// serverPort, with a certificate for role (AGENT, NETAGENT or both), and
// returns once it is connected. It is closed at cleanup. Options: the
// SSNTP ones, WithStartFailure and the other failure knobs,
// WithAutoReady, WithFullBelow.
func NewFakeAgent(tb testing.TB, serverPort int, role ssntp.Role, opts ...Option) *FakeAgent {
	tb.Helper()
	if role == ssntp.UNKNOWN || role&^(ssntp.AGENT|ssntp.NETAGENT) != 0 {
		tb.Fatalf("testutil: NewFakeAgent: role %q, want AGENT, NETAGENT or both", role)
	}
	s := newSettings(kindAgent, opts)
	s.check(tb)
	a := &FakeAgent{
		peerClient: &peerClient{},
		role:       role,
		knobs:      s.agent,
		instances:  make(map[string]*Instance),
		memTotal:   3896, // the 2016 ReadyYaml figures until told otherwise
		memAvail:   3896,
		lastStatus: ssntp.READY,
	}
	if s.agent.autoReady {
		a.memTotal = s.agent.memTotalMB
		a.recomputeLocked() // no callback runs before dial
	}
	a.onConnect = a.connected
	a.onFrame = a.handle
	a.dial(tb, kindAgent, serverPort, role, s)
	return a
}

// Role is the role the agent's certificate holds.
func (a *FakeAgent) Role() ssntp.Role { return a.role }

// Set changes the agent's knobs mid-test, e.g. WithStartFailure("") to let
// STARTs succeed again. SSNTP options are refused: the agent is already
// connected.
func (a *FakeAgent) Set(tb testing.TB, opts ...Option) {
	tb.Helper()
	a.mu.Lock()
	s := &settings{kind: kindAgent, agent: a.knobs}
	s.apply(opts)
	if len(s.config) > 0 {
		s.errs = append(s.errs, "SSNTP options (WithUUID, WithRole, WithConfig) have no effect once connected")
	}
	if len(s.errs) == 0 {
		if s.agent.autoReady && s.agent.memTotalMB != a.knobs.memTotalMB {
			a.memTotal = s.agent.memTotalMB
		}
		a.knobs = s.agent
		a.recomputeLocked()
	}
	a.mu.Unlock()
	s.check(tb)
}

// Instances returns copies of the agent's instances, oldest START first.
func (a *FakeAgent) Instances() []Instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Instance, 0, len(a.order))
	for _, id := range a.order {
		out = append(out, a.instances[id].clone())
	}
	return out
}

// Instance returns a copy of one instance.
func (a *FakeAgent) Instance(id string) (Instance, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.clone(), true
}

// SendReady sends READY with the given memory; later STATS report it too
// (until WithAutoReady accounting replaces it).
func (a *FakeAgent) SendReady(tb testing.TB, memTotalMB, memAvailMB int) {
	tb.Helper()
	a.mu.Lock()
	a.memTotal, a.memAvail, a.lastStatus = memTotalMB, memAvailMB, ssntp.READY
	a.mu.Unlock()
	a.SendStatus(tb, ssntp.READY, ReadyPayload(a.id.String(), memTotalMB, memAvailMB))
}

// SendFull sends FULL (no payload); later STATS say FULL.
func (a *FakeAgent) SendFull(tb testing.TB) {
	tb.Helper()
	a.mu.Lock()
	a.lastStatus = ssntp.FULL
	a.mu.Unlock()
	a.SendStatus(tb, ssntp.FULL, nil)
}

// SendStats sends STATS describing the agent's instances.
func (a *FakeAgent) SendStats(tb testing.TB) {
	tb.Helper()
	a.SendCommand(tb, ssntp.STATS, a.statsPayload())
}

// SendTenantAdded says the agent opened a tunnel for tenant to the CNCI
// concentrator, which the scheduler routes on.
func (a *FakeAgent) SendTenantAdded(tb testing.TB, tenant, concentrator string) {
	tb.Helper()
	a.SendEvent(tb, ssntp.TenantAdded, TenantAddedPayload(a.id.String(), tenant, concentrator))
}

// SendTenantRemoved says the agent closed its tunnel for tenant.
func (a *FakeAgent) SendTenantRemoved(tb testing.TB, tenant, concentrator string) {
	tb.Helper()
	a.SendEvent(tb, ssntp.TenantRemoved, TenantRemovedPayload(a.id.String(), tenant, concentrator))
}

// SendInstanceDeleted sends InstanceDeleted for instance without touching
// the agent's table, as a launcher reports an instance that vanished.
func (a *FakeAgent) SendInstanceDeleted(tb testing.TB, instance string) {
	tb.Helper()
	a.SendEvent(tb, ssntp.InstanceDeleted, InstanceDeletedPayload(instance))
}

// SendTraceReport reports the path-traced STARTs received since the last
// report (an empty report if none), as the launcher does.
func (a *FakeAgent) SendTraceReport(tb testing.TB) {
	tb.Helper()
	a.mu.Lock()
	frames := a.traced
	a.traced = nil
	a.mu.Unlock()
	a.SendEvent(tb, ssntp.TraceReport, TraceReportPayload(frames...))
}

// recomputeLocked applies WithAutoReady accounting: what every known
// instance reserved is not available, running or not.
func (a *FakeAgent) recomputeLocked() {
	if !a.knobs.autoReady {
		return
	}
	avail := a.memTotal
	for _, in := range a.instances {
		avail -= in.MemMB
	}
	a.memAvail = avail
	a.lastStatus = ssntp.READY
	if avail < a.knobs.fullBelowMB {
		a.lastStatus = ssntp.FULL
	}
}

// statusLocked is the status frame an auto-reporting agent sends now.
func (a *FakeAgent) statusLocked() (ssntp.Status, []byte) {
	if a.lastStatus != ssntp.READY {
		return a.lastStatus, nil
	}
	return ssntp.READY, ReadyPayload(a.id.String(), a.memTotal, a.memAvail)
}

func (a *FakeAgent) statsPayload() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	stats := make([]payloads.InstanceStat, 0, len(a.order))
	for _, id := range a.order {
		stats = append(stats, a.instances[id].stat())
	}
	st := StatsCmd(a.id.String(), AgentHostname, stats...)
	st.Status = a.lastStatus.String()
	st.MemTotalMB, st.MemAvailableMB = a.memTotal, a.memAvail
	return mustMarshal(st)
}

// sendStatus sends the auto-reporting status from a callback.
func (a *FakeAgent) sendStatus(cl *ssntp.Client) {
	a.mu.Lock()
	st, payload := a.statusLocked()
	a.mu.Unlock()
	a.reply(cl.SendStatus(st, payload), ssntp.STATUS, uint8(st))
}

// connected reports status and STATS at once, like a launcher, when
// auto-reporting.
func (a *FakeAgent) connected(cl *ssntp.Client) {
	a.mu.Lock()
	auto := a.knobs.autoReady
	a.mu.Unlock()
	if !auto {
		return
	}
	a.sendStatus(cl)
	a.reply(cl.SendCommand(ssntp.STATS, a.statsPayload()), ssntp.COMMAND, uint8(ssntp.STATS))
}

func (a *FakeAgent) handle(cl *ssntp.Client, f *ssntp.Frame) {
	if f.Type != ssntp.COMMAND {
		return
	}
	switch f.Command() {
	case ssntp.START:
		a.start(cl, f)
	case ssntp.STOP:
		a.stop(cl, f)
	case ssntp.RESTART:
		a.restart(cl, f)
	case ssntp.DELETE:
		a.delete(cl, f)
	case ssntp.AttachVolume:
		a.attach(cl, f)
	case ssntp.DetachVolume:
		a.detach(cl, f)
	}
}

func (a *FakeAgent) fail(cl *ssntp.Client, e ssntp.Error, payload any) {
	a.reply(cl.SendError(e, mustMarshal(payload)), ssntp.ERROR, uint8(e))
}

func (a *FakeAgent) start(cl *ssntp.Client, f *ssntp.Frame) {
	fail := func(id string, r payloads.StartFailureReason) {
		a.fail(cl, ssntp.StartFailure, payloads.ErrorStartFailure{InstanceUUID: id, Reason: r})
	}
	// Split as the launcher does, rather than decode the first document
	// as the scheduler does: a START the launcher cannot split must fail.
	var s payloads.Start
	startYAML, _, _, err := payloads.SplitStart(f.Payload)
	if err == nil {
		err = yaml.Unmarshal(startYAML, &s)
	}
	if err != nil {
		fail("", payloads.StartInvalidPayload)
		return
	}
	cmd := s.Start
	if err := cmd.ValidateForLauncher(); err != nil {
		fail(cmd.InstanceUUID, payloads.StartInvalidData)
		return
	}
	in := &Instance{
		UUID:   cmd.InstanceUUID,
		Tenant: cmd.TenantUUID,
		State:  payloads.InstanceActive,
		Start:  cmd,
	}
	in.VCPUs, _ = cmd.VCPUs()
	in.MemMB, _ = cmd.MemMB()
	in.DiskMB, _ = cmd.DiskMB()
	if nn, err := cmd.NetworkNode(); nn || err != nil {
		in.NetworkNode = true // the launcher takes any non-zero value as yes
	}

	a.mu.Lock()
	if a.knobs.dropStarts > 0 {
		a.knobs.dropStarts--
		a.mu.Unlock()
		a.log.Infof("testutil: %s: START of %s dropped (WithDropStarts)", a.name, in.UUID)
		return
	}
	reason := a.knobs.startFailure
	if old, ok := a.instances[in.UUID]; reason == "" && ok {
		reason = payloads.StartInstanceExists
		if old.State == payloads.InstanceActive {
			reason = payloads.StartAlreadyRunning
		}
	}
	if reason == "" && a.knobs.autoReady && in.MemMB > a.memAvail {
		reason = payloads.StartFullComputeNode
	}
	auto := a.knobs.autoReady
	if reason == "" {
		a.instances[in.UUID] = in
		a.order = append(a.order, in.UUID)
		a.recomputeLocked()
		if f.PathTrace() {
			f.SetEndStamp()
			a.traced = append(a.traced, f)
		}
	}
	a.mu.Unlock()

	if reason != "" {
		fail(in.UUID, reason)
		return
	}
	if auto {
		a.sendStatus(cl)
	}
}

func (a *FakeAgent) stop(cl *ssntp.Client, f *ssntp.Frame) {
	fail := func(id string, r payloads.StopFailureReason) {
		a.fail(cl, ssntp.StopFailure, payloads.ErrorStopFailure{InstanceUUID: id, Reason: r})
	}
	var p payloads.Stop
	if err := yaml.Unmarshal(f.Payload, &p); err != nil {
		fail("", payloads.StopInvalidPayload)
		return
	}
	id := p.Stop.InstanceUUID
	if err := p.Stop.Validate(); err != nil {
		fail(id, payloads.StopInvalidData)
		return
	}
	a.mu.Lock()
	reason := a.knobs.stopFailure
	in, ok := a.instances[id]
	switch {
	case reason != "":
	case !ok:
		reason = payloads.StopNoInstance
	case in.State != payloads.InstanceActive:
		reason = payloads.StopAlreadyStopped
	default:
		in.State = payloads.InstanceExited
	}
	a.mu.Unlock()
	if reason != "" {
		fail(id, reason)
	}
}

func (a *FakeAgent) restart(cl *ssntp.Client, f *ssntp.Frame) {
	fail := func(id string, r payloads.RestartFailureReason) {
		a.fail(cl, ssntp.RestartFailure, payloads.ErrorRestartFailure{InstanceUUID: id, Reason: r})
	}
	var p payloads.Restart
	if err := yaml.Unmarshal(f.Payload, &p); err != nil {
		fail("", payloads.RestartInvalidPayload)
		return
	}
	id := p.Restart.InstanceUUID
	if err := p.Restart.Validate(); err != nil {
		fail(id, payloads.RestartInvalidData)
		return
	}
	a.mu.Lock()
	reason := a.knobs.restartFailure
	in, ok := a.instances[id]
	switch {
	case reason != "":
	case !ok:
		reason = payloads.RestartNoInstance
	case in.State == payloads.InstanceActive:
		reason = payloads.RestartAlreadyRunning
	default:
		in.State = payloads.InstanceActive
	}
	a.mu.Unlock()
	if reason != "" {
		fail(id, reason)
	}
}

func (a *FakeAgent) delete(cl *ssntp.Client, f *ssntp.Frame) {
	fail := func(id string, r payloads.DeleteFailureReason) {
		a.fail(cl, ssntp.DeleteFailure, payloads.ErrorDeleteFailure{InstanceUUID: id, Reason: r})
	}
	var p payloads.Delete
	if err := yaml.Unmarshal(f.Payload, &p); err != nil {
		fail("", payloads.DeleteInvalidPayload)
		return
	}
	id := p.Delete.InstanceUUID
	if err := p.Delete.Validate(); err != nil {
		fail(id, payloads.DeleteInvalidData)
		return
	}
	a.mu.Lock()
	if a.knobs.dropDeletes > 0 {
		a.knobs.dropDeletes--
		a.mu.Unlock()
		a.log.Infof("testutil: %s: DELETE of %s dropped (WithDropDeletes)", a.name, id)
		return
	}
	reason := a.knobs.deleteFailure
	_, ok := a.instances[id]
	if reason == "" && !ok {
		reason = payloads.DeleteNoInstance
	}
	auto := a.knobs.autoReady
	if reason == "" {
		delete(a.instances, id)
		a.order = slices.DeleteFunc(a.order, func(o string) bool { return o == id })
		a.recomputeLocked()
	}
	a.mu.Unlock()
	if reason != "" {
		fail(id, reason)
		return
	}
	a.reply(cl.SendEvent(ssntp.InstanceDeleted, InstanceDeletedPayload(id)), ssntp.EVENT, uint8(ssntp.InstanceDeleted))
	if auto {
		a.sendStatus(cl)
	}
}

func (a *FakeAgent) attach(cl *ssntp.Client, f *ssntp.Frame) {
	var p payloads.AttachVolume
	if err := yaml.Unmarshal(f.Payload, &p); err != nil {
		a.fail(cl, ssntp.AttachVolumeFailure, payloads.ErrorAttachVolumeFailure{Reason: payloads.AttachVolumeInvalidPayload})
		return
	}
	c := p.Attach
	fail := func(r payloads.AttachVolumeFailureReason) {
		a.fail(cl, ssntp.AttachVolumeFailure, payloads.ErrorAttachVolumeFailure{InstanceUUID: c.InstanceUUID, VolumeUUID: c.VolumeUUID, Reason: r})
	}
	if err := c.Validate(); err != nil {
		fail(payloads.AttachVolumeInvalidData)
		return
	}
	a.mu.Lock()
	reason := a.knobs.attachFailure
	in, ok := a.instances[c.InstanceUUID]
	switch {
	case reason != "":
	case !ok:
	case slices.Contains(in.Volumes, c.VolumeUUID):
		reason = payloads.AttachVolumeAlreadyAttached
	default:
		in.Volumes = append(in.Volumes, c.VolumeUUID)
	}
	a.mu.Unlock()
	if reason != "" {
		fail(reason)
	} else if !ok {
		a.log.Warningf("testutil: %s: AttachVolume for unknown instance %s ignored, as the launcher does", a.name, c.InstanceUUID)
	}
}

func (a *FakeAgent) detach(cl *ssntp.Client, f *ssntp.Frame) {
	var p payloads.DetachVolume
	if err := yaml.Unmarshal(f.Payload, &p); err != nil {
		a.fail(cl, ssntp.DetachVolumeFailure, payloads.ErrorDetachVolumeFailure{Reason: payloads.DetachVolumeInvalidPayload})
		return
	}
	c := p.Detach
	fail := func(r payloads.DetachVolumeFailureReason) {
		a.fail(cl, ssntp.DetachVolumeFailure, payloads.ErrorDetachVolumeFailure{InstanceUUID: c.InstanceUUID, VolumeUUID: c.VolumeUUID, Reason: r})
	}
	if err := c.Validate(); err != nil {
		fail(payloads.DetachVolumeInvalidData)
		return
	}
	a.mu.Lock()
	reason := a.knobs.detachFailure
	in, ok := a.instances[c.InstanceUUID]
	switch {
	case reason != "":
	case !ok:
	case !slices.Contains(in.Volumes, c.VolumeUUID):
		reason = payloads.DetachVolumeNotAttached
	default:
		in.Volumes = slices.DeleteFunc(in.Volumes, func(v string) bool { return v == c.VolumeUUID })
	}
	a.mu.Unlock()
	if reason != "" {
		fail(reason)
	} else if !ok {
		a.log.Warningf("testutil: %s: DetachVolume for unknown instance %s ignored, as the launcher does", a.name, c.InstanceUUID)
	}
}
