// Package loadtool drives a ciao-scheduler with simulated launchers and one
// controller and measures it: agent connections set up per second,
// placements per second flat out, latency from the controller's send to
// the agent's receipt (p50/p99) at full speed and at a fixed rate, how
// evenly the STARTs spread over the agents, the failures by reason, the
// scheduler's CPU per placement and peak RSS, and the tool's own CPU per
// placement (a tool that needs more CPU than the scheduler on the same
// cores cannot measure it).
//
// Everything on the hot path is pre-encoded: the controller rewrites eight
// hex digits of one START payload (the instance_uuid, which carries the
// sequence number) and resends the same frame; agents read the sequence
// number at a fixed offset and rewrite one number in their READY.
package loadtool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// Config is one load run.
type Config struct {
	// Addr is the scheduler, host:port.
	Addr string
	// SchedulerPID, if not zero, is read for CPU time and peak RSS.
	SchedulerPID int

	// CACert trusts the scheduler; AgentCert and ControllerCert are
	// certificate-and-key PEMs with roles AGENT and Controller.
	CACert, AgentCert, ControllerCert []byte

	// Agents is the number of simulated launchers.
	Agents int
	// Starts is the number of STARTs per phase.
	Starts int
	// Rate, if not zero, adds a phase sending Starts STARTs at this many
	// per second after the flat-out one.
	Rate int
	// SkipFlat leaves out the flat-out phase.
	SkipFlat bool
	// MemMB is what each START asks for.
	MemMB int
	// AgentMemMB is each agent's memory; zero sizes the agents so every
	// phase fits with a quarter to spare.
	AgentMemMB int
	// StatusPeriod is how often each agent sends READY and STATS besides
	// after STARTs (ciao-launcher: 6 s).
	StatusPeriod time.Duration
	// Dialers is how many agents connect at once.
	Dialers int
	// FlatProcs, if not zero, is this process's GOMAXPROCS during the
	// flat-out phase: one P saves the Go runtime's cross-thread wake-ups,
	// a third of the tool's CPU per placement, leaving more of the machine
	// to the scheduler. The fixed-rate phase keeps the default: there the
	// tool has CPU to spare and a single P would delay the agents' receipt
	// (a collection of the tool's own heap holds the only P for
	// milliseconds), which the latency figures would wrongly blame on the
	// scheduler.
	FlatProcs int
	// PhaseTimeout bounds the wait for every START's outcome.
	PhaseTimeout time.Duration

	// Out receives the figures, one line each.
	Out io.Writer
	// Log receives the SSNTP clients' logs.
	Log ssntp.Logger
}

func (c *Config) defaults() {
	if c.Agents <= 0 {
		c.Agents = 10
	}
	if c.Starts <= 0 {
		c.Starts = 100000
	}
	if c.MemMB <= 0 {
		c.MemMB = 128
	}
	if c.StatusPeriod <= 0 {
		c.StatusPeriod = 6 * time.Second
	}
	if c.Dialers <= 0 {
		c.Dialers = 32
	}
	if c.PhaseTimeout <= 0 {
		c.PhaseTimeout = 2*time.Minute + time.Duration(c.Starts)*100*time.Microsecond
	}
	if c.AgentMemMB <= 0 {
		phases := 2
		if c.Rate == 0 || c.SkipFlat {
			phases = 1
		}
		per := (phases*c.Starts + c.Agents - 1) / c.Agents
		c.AgentMemMB = (per*5/4 + 2) * c.MemMB
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// PhaseResult is what one phase measured.
type PhaseResult struct {
	Name             string
	Sent, Placed     int
	Failures         map[string]int // StartFailure reasons seen by the controller
	Elapsed          time.Duration  // first send to last outcome
	PlacementsPerSec float64
	P50, P99, Max    time.Duration // send → agent receipt, placed STARTs only
	MinPerAgent      int
	MaxPerAgent      int
	ToolCPU          time.Duration // this process, per START
	MachineBusy      float64       // CPUs busy during the phase, all processes (1.0 = one CPU)
	OthersBusy       float64       // CPUs busy with neither the scheduler nor this tool
	SchedulerCPU     time.Duration // the scheduler process, per START (0 if unknown)
	AchievedRate     float64       // STARTs sent per second
	ToolProcs        int           // this process's GOMAXPROCS during the phase
}

// Result is a whole run.
type Result struct {
	Agents          int
	ConnectElapsed  time.Duration // all agents dialled (handshakes done)
	ConnectsPerSec  float64
	RegisterElapsed time.Duration // until the controller had every NodeConnected and first STATS
	IdleRSS         int64         // scheduler VmRSS with every agent connected, bytes
	PeakRSS         int64         // scheduler VmHWM at the end, bytes
	Phases          []PhaseResult
	Disconnects     int64
	SendErrors      int64
}

// tool is the state shared by the controller, the agents and the phases.
type tool struct {
	cfg  Config
	base time.Time

	start  []byte // the START payload, rewritten per send
	seqAt  int    // offset of instance_uuid's first eight hex digits
	marker []byte // what follows them, to recognise our STARTs

	sendNs []int64 // per sequence number
	recvNs []int64 // agent receipt or failure arrival; 0 while pending
	failed []bool
	done   atomic.Int64 // outcomes (placements and failures) so far

	mu      sync.Mutex // guards reasons
	reasons map[string]int

	nodeEvents, stats                atomic.Int64
	foreign, sendErrors, disconnects atomic.Int64
}

func (t *tool) now() int64 { return int64(time.Since(t.base)) }

// instanceTemplate is the instance_uuid of every START; the first eight
// hex digits become the sequence number.
const instanceTemplate = "00000000-0000-4000-8000-00000000feed"

func newTool(cfg Config) (*tool, error) {
	t := &tool{cfg: cfg, base: time.Now(), reasons: map[string]int{}}
	s := payloads.Start{Start: payloads.StartCmd{
		TenantUUID:          "2491851d-dce9-48d6-b83a-a717417072ce",
		InstanceUUID:        instanceTemplate,
		ImageUUID:           "59460b8a-5f53-4e3e-b5ce-b71fed8c7e64",
		FWType:              payloads.FirmwareEFI,
		InstancePersistence: payloads.PersistenceHost,
		VMType:              payloads.HypervisorQEMU,
		RequestedResources: []payloads.RequestedResource{
			{Type: payloads.VCPUs, Value: 2, Mandatory: true},
			{Type: payloads.MemMB, Value: cfg.MemMB, Mandatory: true},
			{Type: payloads.DiskMB, Value: 10000, Mandatory: true},
		},
		EstimatedResources: []payloads.EstimatedResource{{Type: payloads.VCPUs, Value: 1}, {Type: payloads.MemMB, Value: 128}, {Type: payloads.DiskMB, Value: 4096}},
		Networking: payloads.NetworkResources{VnicMAC: "02:00:ac:10:00:02", VnicUUID: "7f49d00d-1995-4156-8c79-5f5ab24ce138",
			ConcentratorUUID: "7e84c2d6-5a84-4f9b-98e3-38980f722d1b", ConcentratorIP: "10.1.2.3",
			Subnet: "172.16.0.0/24", PrivateIP: "172.16.0.2"},
	}}
	p, err := payloads.ComposeStart(&s, "---\n#cloud-config\nruncmd:\n  - [ /bin/true ]\n...\n",
		payloads.StartMetadata{UUID: instanceTemplate, Hostname: instanceTemplate})
	if err != nil {
		return nil, err
	}
	t.start = p
	t.seqAt = bytes.Index(p, []byte("instance_uuid: "+instanceTemplate))
	if t.seqAt < 0 {
		return nil, errors.New("loadtool: instance_uuid not found in the START template")
	}
	t.seqAt += len("instance_uuid: ")
	t.marker = []byte(instanceTemplate[8:])
	n := cfg.Starts
	if cfg.Rate > 0 && !cfg.SkipFlat {
		n *= 2
	}
	t.sendNs = make([]int64, n)
	t.recvNs = make([]int64, n)
	t.failed = make([]bool, n)
	return t, nil
}

// setSeq writes the sequence number into the START payload.
func (t *tool) setSeq(seq int) {
	const hex = "0123456789abcdef"
	b := t.start[t.seqAt : t.seqAt+8]
	for i := 7; i >= 0; i-- {
		b[i] = hex[seq&0xf]
		seq >>= 4
	}
}

// parseSeq reads eight hex digits followed by the template's tail.
func (t *tool) parseSeq(b []byte) (int, bool) {
	if len(b) < 36 || !bytes.Equal(b[8:36], t.marker) {
		return 0, false
	}
	seq := 0
	for _, c := range b[:8] {
		switch {
		case c >= '0' && c <= '9':
			seq = seq<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			seq = seq<<4 | int(c-'a'+10)
		default:
			return 0, false
		}
	}
	if seq >= len(t.sendNs) {
		return 0, false
	}
	return seq, true
}

// seqOf finds the sequence number in a START as the scheduler forwarded
// it: the payload is unchanged, so at the same offset.
func (t *tool) seqOf(p []byte) (int, bool) {
	if len(p) < t.seqAt+36 {
		return 0, false
	}
	return t.parseSeq(p[t.seqAt:])
}

func (t *tool) placed(seq int, at int64) {
	t.recvNs[seq] = at
	t.done.Add(1)
}

// failure records a StartFailure the controller received.
func (t *tool) failure(p []byte, at int64) {
	const key = "instance_uuid: "
	reason := "?"
	if i := bytes.Index(p, []byte("reason: ")); i >= 0 {
		r := p[i+len("reason: "):]
		if j := bytes.IndexByte(r, '\n'); j >= 0 {
			r = r[:j]
		}
		reason = string(r)
	}
	seq, ok := -1, false
	if bytes.HasPrefix(p, []byte(key)) {
		seq, ok = t.parseSeq(p[len(key):])
	}
	t.mu.Lock()
	t.reasons[reason]++
	t.mu.Unlock()
	if !ok {
		t.foreign.Add(1)
		return
	}
	t.failed[seq] = true
	t.recvNs[seq] = at
	t.done.Add(1)
}

// controllerNotifier counts what the scheduler sends the controller.
type controllerNotifier struct{ t *tool }

func (n controllerNotifier) ConnectNotify()                          {}
func (n controllerNotifier) DisconnectNotify()                       { n.t.disconnects.Add(1) }
func (n controllerNotifier) StatusNotify(ssntp.Status, *ssntp.Frame) {}
func (n controllerNotifier) CommandNotify(c ssntp.Command, f *ssntp.Frame) {
	if c == ssntp.STATS {
		n.t.stats.Add(1)
	}
}
func (n controllerNotifier) EventNotify(e ssntp.Event, f *ssntp.Frame) {
	if e == ssntp.NodeConnected {
		n.t.nodeEvents.Add(1)
	}
}
func (n controllerNotifier) ErrorNotify(e ssntp.Error, f *ssntp.Frame) {
	if e == ssntp.StartFailure {
		n.t.failure(f.Payload, n.t.now())
	}
}

// Run connects the controller and the agents, runs the phases, prints the
// figures to cfg.Out and returns them. The agents and the controller are
// closed before it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	t, err := newTool(cfg)
	if err != nil {
		return nil, err
	}
	host, port, err := splitAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	clientConfig := func(cert []byte) ssntp.Config {
		return ssntp.Config{CACertPEM: cfg.CACert, CertPEM: cert, URI: host, Port: port,
			BackoffUnit: 50 * time.Millisecond, Log: cfg.Log}
	}
	out := cfg.Out
	res := &Result{Agents: cfg.Agents}

	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	ctl, err := ssntp.Dial(dctx, clientConfig(cfg.ControllerCert), controllerNotifier{t})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("loadtool: connecting the controller: %w", err)
	}
	defer ctl.Close()

	agents := make([]*agent, cfg.Agents)
	for i := range agents {
		agents[i] = newAgent(t, cfg.AgentMemMB)
	}
	defer closeAll(agents)

	// Connect the agents, Dialers at a time, each reporting at once as a
	// launcher does.
	t0 := time.Now()
	cpu0, busy0 := selfCPU(), machineBusy()
	var sched0 time.Duration
	if cfg.SchedulerPID != 0 {
		sched0, _ = procCPU(cfg.SchedulerPID)
	}
	if err := dialAgents(ctx, agents, clientConfig(cfg.AgentCert), cfg.Dialers); err != nil {
		return nil, err
	}
	res.ConnectElapsed = time.Since(t0)
	res.ConnectsPerSec = float64(cfg.Agents) / res.ConnectElapsed.Seconds()
	fmt.Fprintf(out, "agents connected               %d in %v: %.0f connections/s\n", cfg.Agents, res.ConnectElapsed.Round(time.Millisecond), res.ConnectsPerSec)
	toolCPU := selfCPU() - cpu0
	var schedCPU time.Duration
	if cfg.SchedulerPID != 0 {
		if s1, err := procCPU(cfg.SchedulerPID); err == nil {
			schedCPU = s1 - sched0
		}
	}
	busy := (machineBusy() - busy0).Seconds() / res.ConnectElapsed.Seconds()
	fmt.Fprintf(out, "connection CPU                 scheduler %.0f µs, load tool %.0f µs per connection; machine busy %.2f of %d CPUs (%.2f neither)\n",
		float64(schedCPU.Microseconds())/float64(cfg.Agents), float64(toolCPU.Microseconds())/float64(cfg.Agents),
		busy, runtime.NumCPU(), max(0, busy-(toolCPU+schedCPU).Seconds()/res.ConnectElapsed.Seconds()))

	// Every agent is placeable once the controller has its NodeConnected
	// and the STATS that followed its first READY (the scheduler reads
	// each agent's frames in order).
	if err := waitUntil(ctx, time.Minute, func() bool {
		return t.nodeEvents.Load() >= int64(cfg.Agents) && t.stats.Load() >= int64(cfg.Agents)
	}); err != nil {
		return nil, fmt.Errorf("loadtool: waiting for the scheduler to register the agents (%d NodeConnected, %d STATS): %w",
			t.nodeEvents.Load(), t.stats.Load(), err)
	}
	res.RegisterElapsed = time.Since(t0)
	fmt.Fprintf(out, "agents registered and READY    after %v\n", res.RegisterElapsed.Round(time.Millisecond))
	if cfg.SchedulerPID != 0 {
		if rss, _, err := procMemory(cfg.SchedulerPID); err == nil {
			res.IdleRSS = rss
			fmt.Fprintf(out, "scheduler RSS, agents idle     %.1f MiB (%.1f KiB per agent)\n", mib(rss), float64(rss)/1024/float64(cfg.Agents))
		}
	}

	reporter := startReporter(agents, cfg.StatusPeriod)
	defer reporter.stop()

	var phases []struct {
		name string
		rate int
	}
	if !cfg.SkipFlat {
		phases = append(phases, struct {
			name string
			rate int
		}{"flat out", 0})
	}
	if cfg.Rate > 0 {
		phases = append(phases, struct {
			name string
			rate int
		}{fmt.Sprintf("%d/s", cfg.Rate), cfg.Rate})
	}
	from := 0
	for _, ph := range phases {
		procs := runtime.GOMAXPROCS(0)
		if ph.rate == 0 && cfg.FlatProcs > 0 {
			procs = cfg.FlatProcs
		}
		prev := runtime.GOMAXPROCS(procs)
		pr, err := t.runPhase(ctx, ctl, agents, ph.name, ph.rate, from, from+cfg.Starts)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			return res, err
		}
		pr.ToolProcs = procs
		res.Phases = append(res.Phases, *pr)
		pr.print(out)
		from += cfg.Starts
	}
	if cfg.SchedulerPID != 0 {
		if _, hwm, err := procMemory(cfg.SchedulerPID); err == nil {
			res.PeakRSS = hwm
			fmt.Fprintf(out, "scheduler peak RSS (VmHWM)     %.1f MiB\n", mib(hwm))
		}
	}
	res.Disconnects = t.disconnects.Load()
	res.SendErrors = t.sendErrors.Load()
	if res.Disconnects != 0 || res.SendErrors != 0 || t.foreign.Load() != 0 {
		fmt.Fprintf(out, "anomalies                      %d disconnects, %d send errors, %d unrecognised frames\n",
			res.Disconnects, res.SendErrors, t.foreign.Load())
	}
	return res, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (pr *PhaseResult) print(out io.Writer) {
	p := func(what, format string, args ...any) {
		fmt.Fprintf(out, "[%s] %-22s "+format+"\n", append([]any{pr.Name, what}, args...)...)
	}
	p("placements", "%d of %d in %v", pr.Placed, pr.Sent, pr.Elapsed.Round(time.Millisecond))
	p("placements/s", "%.0f", pr.PlacementsPerSec)
	if pr.AchievedRate > 0 {
		p("send rate", "%.0f STARTs/s", pr.AchievedRate)
	}
	p("latency p50", "%v", pr.P50.Round(time.Microsecond))
	p("latency p99", "%v", pr.P99.Round(time.Microsecond))
	p("latency max", "%v", pr.Max.Round(time.Microsecond))
	p("spread per agent", "min %d max %d", pr.MinPerAgent, pr.MaxPerAgent)
	if len(pr.Failures) == 0 {
		p("errors", "none")
	} else {
		keys := make([]string, 0, len(pr.Failures))
		for k := range pr.Failures {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b bytes.Buffer
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", k, pr.Failures[k])
		}
		p("errors", "%s", b.String())
	}
	if pr.SchedulerCPU > 0 {
		p("scheduler CPU", "%.1f µs/placement", float64(pr.SchedulerCPU.Nanoseconds())/1e3)
	}
	p("load tool CPU", "%.1f µs/placement (GOMAXPROCS %d)", float64(pr.ToolCPU.Nanoseconds())/1e3, pr.ToolProcs)
	if pr.MachineBusy > 0 {
		p("machine busy", "%.2f of %d CPUs (%.2f neither scheduler nor tool)", pr.MachineBusy, runtime.NumCPU(), pr.OthersBusy)
	}
}

// runPhase sends STARTs from..to-1, flat out (rate 0) or paced, and waits
// for every outcome.
func (t *tool) runPhase(ctx context.Context, ctl *ssntp.Client, agents []*agent, name string, rate, from, to int) (*PhaseResult, error) {
	for _, a := range agents {
		a.starts.Store(0)
	}
	t.mu.Lock()
	t.reasons = map[string]int{}
	t.mu.Unlock()
	doneBefore := t.done.Load()
	cpu0 := selfCPU()
	busy0 := machineBusy()
	wall0 := time.Now()
	var sched0 time.Duration
	if t.cfg.SchedulerPID != 0 {
		sched0, _ = procCPU(t.cfg.SchedulerPID)
	}

	f := &ssntp.Frame{Major: ssntp.Major, Minor: ssntp.Minor, Type: ssntp.COMMAND, Operand: uint8(ssntp.START),
		Origin: ctl.UUID(), PayloadLength: uint32(len(t.start)), Payload: t.start}
	start := t.now()
	for i := from; i < to; {
		if rate > 0 {
			due := int((t.now()-start)*int64(rate)/1e9) + 1
			if i-from >= due {
				time.Sleep(100 * time.Microsecond)
				continue
			}
		}
		t.setSeq(i)
		t.sendNs[i] = t.now()
		if err := ctl.SendFrame(f); err != nil {
			return nil, fmt.Errorf("loadtool: sending START %d: %w", i, err)
		}
		i++
	}
	sentIn := time.Duration(t.now() - start)
	want := doneBefore + int64(to-from)
	if err := waitUntil(ctx, t.cfg.PhaseTimeout, func() bool { return t.done.Load() >= want }); err != nil {
		return nil, fmt.Errorf("loadtool: %s: %d of %d STARTs answered: %w", name, t.done.Load()-doneBefore, to-from, err)
	}
	pr := &PhaseResult{Name: name, Sent: to - from}
	toolCPU := selfCPU() - cpu0
	pr.ToolCPU = toolCPU / time.Duration(to-from)
	var schedCPU time.Duration
	if t.cfg.SchedulerPID != 0 {
		if s1, err := procCPU(t.cfg.SchedulerPID); err == nil {
			schedCPU = s1 - sched0
			pr.SchedulerCPU = schedCPU / time.Duration(to-from)
		}
	}
	if busy1 := machineBusy(); busy1 > 0 {
		wall := time.Since(wall0).Seconds()
		pr.MachineBusy = (busy1 - busy0).Seconds() / wall
		pr.OthersBusy = max(0, (busy1-busy0-toolCPU-schedCPU).Seconds()/wall)
	}
	if rate > 0 {
		pr.AchievedRate = float64(to-from) / sentIn.Seconds()
	}
	lat := make([]int64, 0, to-from)
	last := start
	for i := from; i < to; i++ {
		last = max(last, t.recvNs[i])
		if !t.failed[i] {
			lat = append(lat, t.recvNs[i]-t.sendNs[i])
		}
	}
	pr.Placed = len(lat)
	pr.Elapsed = time.Duration(last - start)
	pr.PlacementsPerSec = float64(pr.Placed) / pr.Elapsed.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		pr.P50 = time.Duration(lat[len(lat)/2])
		pr.P99 = time.Duration(lat[min(len(lat)-1, len(lat)*99/100)])
		pr.Max = time.Duration(lat[len(lat)-1])
	}
	pr.MinPerAgent = int(^uint(0) >> 1)
	for _, a := range agents {
		n := int(a.starts.Load())
		pr.MinPerAgent = min(pr.MinPerAgent, n)
		pr.MaxPerAgent = max(pr.MaxPerAgent, n)
	}
	t.mu.Lock()
	pr.Failures = t.reasons
	t.reasons = map[string]int{}
	t.mu.Unlock()
	return pr, nil
}

// dialAgents connects every agent, n at a time, and has each report.
func dialAgents(ctx context.Context, agents []*agent, base ssntp.Config, n int) error {
	next := atomic.Int64{}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(agents) {
					return
				}
				a := agents[i]
				cfg := base
				cfg.UUID = a.id
				dctx, cancel := context.WithTimeout(ctx, time.Minute)
				cl, err := ssntp.Dial(dctx, cfg, agentNotifier{a})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("loadtool: connecting agent %d: %w", i, err)
					next.Store(int64(len(agents)))
					return
				}
				a.mu.Lock()
				a.cl = cl
				a.mu.Unlock()
				a.report()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// closeAll closes the agents' connections, several at a time.
func closeAll(agents []*agent) {
	var wg sync.WaitGroup
	ch := make(chan *agent)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range ch {
				a.mu.Lock()
				cl := a.cl
				a.cl = nil
				a.mu.Unlock()
				if cl != nil {
					cl.Close()
				}
			}
		}()
	}
	for _, a := range agents {
		ch <- a
	}
	close(ch)
	wg.Wait()
}

// reporter sends every agent's periodic READY and STATS, spreading the
// agents evenly over the period from one goroutine.
type reporter struct {
	quit chan struct{}
	done chan struct{}
}

func startReporter(agents []*agent, period time.Duration) *reporter {
	r := &reporter{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		step := period / time.Duration(len(agents))
		batch := 1
		for step < time.Millisecond && batch < len(agents) {
			step *= 2
			batch *= 2
		}
		t := time.NewTicker(step)
		defer t.Stop()
		i := 0
		for {
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
			for k := 0; k < batch; k++ {
				agents[i].report()
				i = (i + 1) % len(agents)
			}
		}
	}()
	return r
}

func (r *reporter) stop() {
	close(r.quit)
	<-r.done
}

// waitUntil polls cond every millisecond until it holds, d passes or ctx
// ends.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
