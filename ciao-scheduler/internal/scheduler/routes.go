package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// rules is the routing table (scheduler.md §5).
func (s *Scheduler) rules() []ssntp.ForwardRule {
	toControllers := []ssntp.ForwardRule{
		ssntp.CommandRule(ssntp.STATS, ssntp.Controller, nil),
		ssntp.EventRule(ssntp.TraceReport, ssntp.Controller, nil),
		ssntp.EventRule(ssntp.InstanceDeleted, ssntp.Controller, nil),
		ssntp.EventRule(ssntp.ConcentratorInstanceAdded, ssntp.Controller, nil),
		ssntp.EventRule(ssntp.PublicIPAssigned, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.StartFailure, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.StopFailure, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.RestartFailure, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.DeleteFailure, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.AttachVolumeFailure, ssntp.Controller, nil),
		ssntp.ErrorRule(ssntp.DetachVolumeFailure, ssntp.Controller, nil),
	}
	return append(toControllers,
		ssntp.CommandRule(ssntp.START, ssntp.UNKNOWN, s.forwardStart),
		ssntp.CommandRule(ssntp.STOP, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.RESTART, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.DELETE, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.EVACUATE, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.AttachVolume, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.DetachVolume, ssntp.UNKNOWN, s.forwardToAgent),
		ssntp.CommandRule(ssntp.AssignPublicIP, ssntp.UNKNOWN, s.forwardToCNCI),
		ssntp.CommandRule(ssntp.ReleasePublicIP, ssntp.UNKNOWN, s.forwardToCNCI),
		ssntp.EventRule(ssntp.TenantAdded, ssntp.UNKNOWN, s.forwardTenantEvent),
		ssntp.EventRule(ssntp.TenantRemoved, ssntp.UNKNOWN, s.forwardTenantEvent),
	)
}

// fromMaster is the controller gate of every routed command.
func (s *Scheduler) fromMaster(src uuid.UUID, f *ssntp.Frame) bool {
	if s.isMaster(src) {
		return true
	}
	s.members.Lock()
	known := false
	for _, c := range s.controllers {
		known = known || c.id == src
	}
	s.members.Unlock()
	if known {
		glog.Warningf("%s from non-master controller %s discarded", f.Command(), src)
	} else {
		glog.Warningf("%s from %s, which is not a controller, discarded", f.Command(), src)
	}
	return false
}

// maxPlacementTries bounds how often one START is placed again because
// the chosen node vanished between the decision and the write.
const maxPlacementTries = 3

// forwardStart places a START and writes it to the chosen node itself (so
// it learns whether the node was still there), answering the controller
// with StartFailure when nothing fits or the payload is unreadable.
func (s *Scheduler) forwardStart(src uuid.UUID, _ ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
	t0 := time.Now()
	if !s.fromMaster(src, f) {
		return ssntp.ForwardDestination{}
	}
	si, fast, err := decodeStart(f.Payload)
	if !fast {
		s.metrics.slowDecoding.Inc()
	}
	if err != nil {
		reason := startReason(err)
		glog.Errorf("unreadable START from %s (instance %q): %v; answering %s", src, si.instance, err, reason)
		s.startFailure(src, si.instance, reason)
		s.metrics.latency.Observe(time.Since(t0).Seconds())
		return ssntp.ForwardDestination{}
	}
	for try := 1; ; try++ {
		dest, reason := s.place(si.req)
		if reason != placement.OK {
			r := failureReason(si.req, reason)
			if glog.V(2) {
				glog.Infof("START of %s (%d MB%s) not placed: %s", si.instance, si.req.MemMB, netSuffix(si.req), r)
			}
			s.startFailure(src, si.instance, r)
			break
		}
		err := s.srv.SendFrame(dest, f)
		if err == nil {
			if si.req.NetworkNode {
				s.metrics.placedNetwork.Inc()
			} else {
				s.metrics.placedCompute.Inc()
			}
			if glog.V(2) {
				glog.Infof("START command processed for instance %s in %v: sent to %s", si.instance, time.Since(t0), dest)
			}
			break
		}
		s.metrics.undeliverable.Inc()
		if !errors.Is(err, ssntp.ErrNotConnected) || try == maxPlacementTries {
			// The write itself failed: the node may or may not have the
			// frame, so placing it again could start the instance twice.
			// The node's disconnection reaches the controller as
			// NodeDisconnected.
			glog.Errorf("START of %s to %s failed: %v", si.instance, dest, err)
			break
		}
		// The node left after the decision; its DisconnectNotify is on
		// its way. Make it ineligible now and place again.
		s.metrics.replaced.Inc()
		glog.Warningf("START of %s: node %s has gone; placing again", si.instance, dest)
		s.mu.Lock()
		s.cn.setStatus(dest, ssntp.OFFLINE, nil)
		s.nn.setStatus(dest, ssntp.OFFLINE, nil)
		s.mu.Unlock()
	}
	s.metrics.latency.Observe(time.Since(t0).Seconds())
	return ssntp.ForwardDestination{}
}

func netSuffix(r placement.Request) string {
	if r.NetworkNode {
		return ", network node"
	}
	return ""
}

// place is the START decision: choose a node of the right pool under mu
// and reserve the request on it.
func (s *Scheduler) place(r placement.Request) (uuid.UUID, placement.Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.NetworkNode {
		return s.nn.pick(r, s.cfg.Policy)
	}
	return s.cn.pick(r, s.cfg.Policy)
}

// failureReason maps a placement failure to the 2016 reasons.
func failureReason(r placement.Request, reason placement.Reason) payloads.StartFailureReason {
	switch {
	case r.NetworkNode:
		return payloads.StartNoNetworkNodes
	case reason == placement.NoNodes:
		return payloads.StartNoComputeNodes
	}
	return payloads.StartFullCloud
}

// startFailure answers a START's sender directly (not through the routing
// rules) with ERROR StartFailure.
func (s *Scheduler) startFailure(to uuid.UUID, instance []byte, reason payloads.StartFailureReason) {
	s.metrics.failure(reason)
	if err := s.srv.SendError(to, ssntp.StartFailure, startFailurePayload(instance, reason)); err != nil {
		glog.Warningf("sending StartFailure %s for %s to %s: %v", reason, instance, to, err)
	}
}

// startFailurePayload is payloads.ErrorStartFailure as yaml.v2 writes it.
// A canonical UUID and a reason word need no quoting, so the common case
// is written directly.
func startFailurePayload(instance []byte, reason payloads.StartFailureReason) []byte {
	if canonicalUUID(instance) && plainWord(string(reason)) {
		b := make([]byte, 0, 32+len(instance)+len(reason))
		b = append(b, "instance_uuid: "...)
		b = append(b, instance...)
		b = append(b, "\nreason: "...)
		b = append(b, reason...)
		return append(b, '\n')
	}
	b, err := yaml.Marshal(&payloads.ErrorStartFailure{InstanceUUID: string(instance), Reason: reason})
	if err != nil {
		panic(fmt.Sprintf("marshalling a StartFailure: %v", err)) // two strings cannot fail
	}
	return b
}

// canonicalUUID reports the 8-4-4-4-12 lower-case hex form.
func canonicalUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// plainWord is a lower-case word with underscores, which YAML cannot read
// as anything but a string (the reasons are such words).
func plainWord(w string) bool {
	if w == "" || w == "null" || w == "true" || w == "false" || w == "yes" || w == "no" || w == "on" || w == "off" || w == "y" || w == "n" {
		return false
	}
	for i := 0; i < len(w); i++ {
		if c := w[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// agentTarget reads the workload_agent_uuid (and the instance, for the
// failure reply) of a command addressed to one agent.
func agentTarget(cmd ssntp.Command, p []byte) (agent, instance string, err error) {
	switch cmd {
	case ssntp.STOP:
		var v payloads.Stop
		err = yaml.Unmarshal(p, &v)
		agent, instance = v.Stop.WorkloadAgentUUID, v.Stop.InstanceUUID
	case ssntp.DELETE:
		var v payloads.Delete
		err = yaml.Unmarshal(p, &v)
		agent, instance = v.Delete.WorkloadAgentUUID, v.Delete.InstanceUUID
	case ssntp.RESTART:
		var v payloads.Restart
		err = yaml.Unmarshal(p, &v)
		agent, instance = v.Restart.WorkloadAgentUUID, v.Restart.InstanceUUID
	case ssntp.EVACUATE:
		var v payloads.Evacuate
		err = yaml.Unmarshal(p, &v)
		agent = v.Evacuate.WorkloadAgentUUID
	case ssntp.AttachVolume:
		var v payloads.AttachVolume
		err = yaml.Unmarshal(p, &v)
		agent, instance = v.Attach.WorkloadAgentUUID, v.Attach.InstanceUUID
	case ssntp.DetachVolume:
		var v payloads.DetachVolume
		err = yaml.Unmarshal(p, &v)
		agent, instance = v.Detach.WorkloadAgentUUID, v.Detach.InstanceUUID
	default:
		return "", "", fmt.Errorf("%w: no agent target for %s", payloads.ErrInvalidData, cmd)
	}
	if err != nil {
		return "", instance, fmt.Errorf("%w: %s: %w", payloads.ErrInvalidPayload, cmd, err)
	}
	if agent == "" {
		return "", instance, fmt.Errorf("%w: %s: no workload_agent_uuid", payloads.ErrInvalidData, cmd)
	}
	return agent, instance, nil
}

// forwardToAgent sends STOP, RESTART, DELETE, EVACUATE and the volume
// commands to the agent named in the payload. An unreadable payload gets
// the command's failure back (EVACUATE has none: it is only logged).
func (s *Scheduler) forwardToAgent(src uuid.UUID, _ ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
	if !s.fromMaster(src, f) {
		return ssntp.ForwardDestination{}
	}
	cmd := f.Command()
	agent, instance, err := agentTarget(cmd, f.Payload)
	var id uuid.UUID
	if err == nil {
		if id, err = uuid.Parse(agent); err != nil {
			err = fmt.Errorf("%w: %s: workload_agent_uuid %q: %w", payloads.ErrInvalidData, cmd, agent, err)
		}
	}
	if err != nil {
		glog.Errorf("%s from %s discarded: %v", cmd, src, err)
		s.commandFailure(src, cmd, instance, err)
		return ssntp.ForwardDestination{}
	}
	if err := s.srv.SendFrame(id, f); err != nil {
		// As in 2016 the controller is not told: the agent's
		// disconnection already reached it as NodeDisconnected.
		s.metrics.undeliverable.Inc()
		glog.Warningf("%s of %q from %s not delivered to %s: %v", cmd, instance, src, id, err)
	} else if glog.V(2) {
		glog.Infof("%s command processed for instance %s: sent to %s", cmd, instance, id)
	}
	return ssntp.ForwardDestination{}
}

// commandFailure answers an unreadable agent command with its failure.
func (s *Scheduler) commandFailure(to uuid.UUID, cmd ssntp.Command, instance string, err error) {
	reason := string(payloads.StartInvalidPayload)
	if errors.Is(err, payloads.ErrInvalidData) {
		reason = string(payloads.StartInvalidData)
	}
	var (
		op ssntp.Error
		v  any
	)
	switch cmd {
	case ssntp.STOP:
		op, v = ssntp.StopFailure, &payloads.ErrorStopFailure{InstanceUUID: instance, Reason: payloads.StopFailureReason(reason)}
	case ssntp.DELETE:
		op, v = ssntp.DeleteFailure, &payloads.ErrorDeleteFailure{InstanceUUID: instance, Reason: payloads.DeleteFailureReason(reason)}
	case ssntp.RESTART:
		op, v = ssntp.RestartFailure, &payloads.ErrorRestartFailure{InstanceUUID: instance, Reason: payloads.RestartFailureReason(reason)}
	case ssntp.AttachVolume:
		op, v = ssntp.AttachVolumeFailure, &payloads.ErrorAttachVolumeFailure{InstanceUUID: instance, Reason: payloads.AttachVolumeFailureReason(reason)}
	case ssntp.DetachVolume:
		op, v = ssntp.DetachVolumeFailure, &payloads.ErrorDetachVolumeFailure{InstanceUUID: instance, Reason: payloads.DetachVolumeFailureReason(reason)}
	default:
		return
	}
	b, merr := yaml.Marshal(v)
	if merr != nil {
		glog.Errorf("marshalling %s: %v", op, merr)
		return
	}
	if err := s.srv.SendError(to, op, b); err != nil {
		glog.Warningf("sending %s to %s: %v", op, to, err)
	}
}

// forwardToCNCI sends AssignPublicIP / ReleasePublicIP to the CNCI named
// by concentrator_uuid (not routed at all in 2016).
func (s *Scheduler) forwardToCNCI(src uuid.UUID, _ ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
	if !s.fromMaster(src, f) {
		return ssntp.ForwardDestination{}
	}
	var cnci string
	var err error
	if f.Command() == ssntp.AssignPublicIP {
		var v payloads.CommandAssignPublicIP
		err = yaml.Unmarshal(f.Payload, &v)
		cnci = v.AssignIP.ConcentratorUUID
	} else {
		var v payloads.CommandReleasePublicIP
		err = yaml.Unmarshal(f.Payload, &v)
		cnci = v.ReleaseIP.ConcentratorUUID
	}
	return s.toConcentrator(src, f, cnci, err)
}

// forwardTenantEvent sends TenantAdded / TenantRemoved from a launcher to
// the CNCI named by concentrator_uuid.
func (s *Scheduler) forwardTenantEvent(src uuid.UUID, _ ssntp.Role, f *ssntp.Frame) ssntp.ForwardDestination {
	var cnci string
	var err error
	if f.Event() == ssntp.TenantAdded {
		var v payloads.EventTenantAdded
		err = yaml.Unmarshal(f.Payload, &v)
		cnci = v.TenantAdded.ConcentratorUUID
	} else {
		var v payloads.EventTenantRemoved
		err = yaml.Unmarshal(f.Payload, &v)
		cnci = v.TenantRemoved.ConcentratorUUID
	}
	return s.toConcentrator(src, f, cnci, err)
}

func (s *Scheduler) toConcentrator(src uuid.UUID, f *ssntp.Frame, cnci string, err error) ssntp.ForwardDestination {
	what := f.OperandString()
	if err != nil {
		glog.Errorf("%s from %s discarded: bad payload: %v", what, src, err)
		return ssntp.ForwardDestination{}
	}
	id, err := uuid.Parse(cnci)
	if err != nil {
		glog.Errorf("%s from %s discarded: concentrator_uuid %q: %v", what, src, cnci, err)
		return ssntp.ForwardDestination{}
	}
	if err := s.srv.SendFrame(id, f); err != nil {
		s.metrics.undeliverable.Inc()
		glog.Warningf("%s from %s not delivered to CNCI %s: %v", what, src, id, err)
	}
	return ssntp.ForwardDestination{}
}
