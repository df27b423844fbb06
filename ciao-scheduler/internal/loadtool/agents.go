package loadtool

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// agent is one simulated launcher. It behaves as ciao-launcher does for
// the scheduler: READY (or FULL) and STATS on every connection, READY or
// FULL after every START, READY and STATS every status period. Its frames
// and payloads are built once and rewritten in place, so a START costs it
// no allocation of its own (the ssntp library still allocates each
// received frame).
//
// mu guards everything below it; START handling (the client's reading
// goroutine) and the periodic reports (the load tool's ticker) both send.
type agent struct {
	t  *tool
	id uuid.UUID
	cl *ssntp.Client

	mu         sync.Mutex
	memTotal   int
	memAvail   int
	readyHead  []byte // READY payload up to mem_available_mb's value
	readyTail  []byte // the rest of the READY payload
	buf        []byte // READY payload being built
	status     ssntp.Frame
	stats      ssntp.Frame
	failure    ssntp.Frame
	failureBuf []byte
	starts     atomic.Int64 // STARTs received in the current phase
}

func newAgent(t *tool, memTotal int) *agent {
	a := &agent{t: t, id: uuid.Generate(), memTotal: memTotal, memAvail: memTotal}
	a.readyHead = []byte("node_uuid: " + a.id.String() + "\nmem_total_mb: " + strconv.Itoa(memTotal) + "\nmem_available_mb: ")
	a.readyTail = []byte("\ndisk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 32\n")
	a.buf = make([]byte, 0, len(a.readyHead)+len(a.readyTail)+16)
	frame := func(t ssntp.Type, op uint8) ssntp.Frame {
		return ssntp.Frame{Major: ssntp.Major, Minor: ssntp.Minor, Type: t, Operand: op, Origin: a.id}
	}
	a.status = frame(ssntp.STATUS, uint8(ssntp.READY))
	a.stats = frame(ssntp.COMMAND, uint8(ssntp.STATS))
	a.stats.Payload = statsPayload(a.id, memTotal)
	a.stats.PayloadLength = uint32(len(a.stats.Payload))
	a.failure = frame(ssntp.ERROR, uint8(ssntp.StartFailure))
	return a
}

// statsPayload is a node with no instances, as a launcher reports it.
func statsPayload(id uuid.UUID, mem int) []byte {
	b, err := yaml.Marshal(payloads.Stat{
		NodeUUID: id.String(), Status: ssntp.READY.String(),
		MemTotalMB: mem, MemAvailableMB: mem, DiskTotalMB: 500000, DiskAvailableMB: 256000,
		Load: 0, CpusOnline: 32, NodeHostName: "load-" + id.String()[:8],
		Networks:  []payloads.NetworkStat{{NodeIP: "198.51.100.7", NodeMAC: "02:00:15:03:6f:49"}},
		Instances: []payloads.InstanceStat{},
	})
	if err != nil {
		panic(err) // a fixed struct always marshals
	}
	return b
}

// sendStatusLocked sends READY with the current figures, or FULL when the
// node could not take one more instance (the launcher's high-water mark).
func (a *agent) sendStatusLocked() error {
	if a.memAvail < a.t.cfg.MemMB {
		a.status.Operand = uint8(ssntp.FULL)
		a.status.Payload = nil
		a.status.PayloadLength = 0
	} else {
		a.buf = append(a.buf[:0], a.readyHead...)
		a.buf = strconv.AppendInt(a.buf, int64(a.memAvail), 10)
		a.buf = append(a.buf, a.readyTail...)
		a.status.Operand = uint8(ssntp.READY)
		a.status.Payload = a.buf
		a.status.PayloadLength = uint32(len(a.buf))
	}
	return a.cl.SendFrame(&a.status)
}

// report is the periodic (and on-connect) status and STATS.
func (a *agent) report() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cl == nil {
		return
	}
	if err := a.sendStatusLocked(); err != nil {
		a.t.sendErrors.Add(1)
		return
	}
	if err := a.cl.SendFrame(&a.stats); err != nil {
		a.t.sendErrors.Add(1)
	}
}

// start handles a START: note when it arrived, take the memory (or refuse
// with full_cn, as a launcher would) and report the new status.
func (a *agent) start(f *ssntp.Frame) {
	now := a.t.now()
	seq, ok := a.t.seqOf(f.Payload)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok {
		a.t.foreign.Add(1)
		return
	}
	if a.memAvail < a.t.cfg.MemMB {
		a.failureBuf = append(a.failureBuf[:0], "instance_uuid: "...)
		a.failureBuf = append(a.failureBuf, f.Payload[a.t.seqAt:a.t.seqAt+36]...)
		a.failureBuf = append(a.failureBuf, "\nreason: full_cn\n"...)
		a.failure.Payload = a.failureBuf
		a.failure.PayloadLength = uint32(len(a.failureBuf))
		if err := a.cl.SendFrame(&a.failure); err != nil {
			a.t.sendErrors.Add(1)
		}
		return
	}
	a.memAvail -= a.t.cfg.MemMB
	a.starts.Add(1)
	a.t.placed(seq, now)
	if err := a.sendStatusLocked(); err != nil {
		a.t.sendErrors.Add(1)
	}
}

// agentNotifier adapts an agent to ssntp.ClientNotifier.
type agentNotifier struct{ a *agent }

func (n agentNotifier) ConnectNotify() {
	// The first connection reports from the dialler once cl is set; a
	// reconnection reports here, as a launcher does.
	n.a.mu.Lock()
	connected := n.a.cl != nil
	n.a.mu.Unlock()
	if connected {
		n.a.report()
	}
}
func (n agentNotifier) DisconnectNotify()                       { n.a.t.disconnects.Add(1) }
func (n agentNotifier) StatusNotify(ssntp.Status, *ssntp.Frame) {}
func (n agentNotifier) EventNotify(ssntp.Event, *ssntp.Frame)   {}
func (n agentNotifier) ErrorNotify(ssntp.Error, *ssntp.Frame)   {}
func (n agentNotifier) CommandNotify(c ssntp.Command, f *ssntp.Frame) {
	if c == ssntp.START {
		n.a.start(f)
	}
}
