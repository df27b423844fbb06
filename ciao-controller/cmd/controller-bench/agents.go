package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// lightAgents are in-process stand-ins for launchers (-agents light): one
// SSNTP client with role AGENT each, connected to the real scheduler,
// that take every START, report READY, and report every instance active
// in their periodic STATS. They cost the machine a fraction of 100
// launcher processes, so the figures measure the controller (and the
// scheduler) rather than the launchers' share of the two cores.
type lightAgents struct {
	agents []*lightAgent
	stop   chan struct{}
	done   sync.WaitGroup
}

// lightAgent is one of them. mu guards instances.
type lightAgent struct {
	id        uuid.UUID
	cl        *ssntp.Client
	ready     []byte // the READY payload, the same every time
	mu        sync.Mutex
	instances []string
}

func startLightAgents(ctx context.Context, n int, ca, cert string, port int, every time.Duration) (*lightAgents, error) {
	la := &lightAgents{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		a := &lightAgent{id: uuid.Generate()}
		var err error
		if a.ready, err = yaml.Marshal(payloads.Ready{NodeUUID: a.id.String(), MemTotalMB: 1 << 22, MemAvailableMB: 1 << 22,
			DiskTotalMB: 1 << 22, DiskAvailableMB: 1 << 22, Load: 0, CpusOnline: 64}); err != nil {
			la.close()
			return nil, err
		}
		cfg := ssntp.Config{CAcert: ca, Cert: cert, URI: "127.0.0.1", Port: port, Role: ssntp.AGENT, UUID: a.id}
		cl, err := ssntp.Dial(ctx, cfg, (*agentNotifier)(a))
		if err != nil {
			la.close()
			return nil, fmt.Errorf("light agent %d: %w", i, err)
		}
		a.cl = cl
		la.agents = append(la.agents, a)
		if err := a.report(); err != nil {
			la.close()
			return nil, err
		}
	}
	la.done.Add(1)
	go func() {
		defer la.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-la.stop:
				return
			case <-t.C:
				for _, a := range la.agents {
					_ = a.report()
				}
			}
		}
	}()
	return la, nil
}

func (la *lightAgents) close() {
	select {
	case <-la.stop:
	default:
		close(la.stop)
	}
	la.done.Wait()
	for _, a := range la.agents {
		a.cl.Close()
	}
}

// report sends READY and STATS with every instance active.
func (a *lightAgent) report() error {
	if err := a.cl.SendStatus(ssntp.READY, a.ready); err != nil {
		return err
	}
	a.mu.Lock()
	st := payloads.Stat{NodeUUID: a.id.String(), Status: ssntp.READY.String(), MemTotalMB: 1 << 22, MemAvailableMB: 1 << 22,
		DiskTotalMB: 1 << 22, DiskAvailableMB: 1 << 22, CpusOnline: 64, NodeHostName: "light-" + a.id.String()[:8],
		Instances: make([]payloads.InstanceStat, 0, len(a.instances))}
	for _, id := range a.instances {
		st.Instances = append(st.Instances, payloads.InstanceStat{InstanceUUID: id, State: payloads.InstanceActive,
			MemoryUsageMB: 128, DiskUsageMB: 80})
	}
	a.mu.Unlock()
	b, err := yaml.Marshal(st)
	if err != nil {
		return err
	}
	return a.cl.SendCommand(ssntp.STATS, b)
}

// agentNotifier takes STARTs on the client's reading goroutine.
type agentNotifier lightAgent

var instanceKey = []byte("\n  instance_uuid: ")

func (n *agentNotifier) CommandNotify(c ssntp.Command, f *ssntp.Frame) {
	if c != ssntp.START {
		return
	}
	i := bytes.Index(f.Payload, instanceKey)
	if i < 0 || len(f.Payload) < i+len(instanceKey)+36 {
		return
	}
	id := string(f.Payload[i+len(instanceKey) : i+len(instanceKey)+36])
	n.mu.Lock()
	n.instances = append(n.instances, id)
	n.mu.Unlock()
}
func (n *agentNotifier) ConnectNotify()                          {}
func (n *agentNotifier) DisconnectNotify()                       {}
func (n *agentNotifier) StatusNotify(ssntp.Status, *ssntp.Frame) {}
func (n *agentNotifier) EventNotify(ssntp.Event, *ssntp.Frame)   {}
func (n *agentNotifier) ErrorNotify(ssntp.Error, *ssntp.Frame)   {}
