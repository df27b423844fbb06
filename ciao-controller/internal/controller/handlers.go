package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// StateError is the state of an instance whose launch failed on its node
// (StartFailure launch_failure). It holds its quota until deleted.
const StateError = "error"

// removedOnStartFailure lists the StartFailure reasons after which the
// instance runs nowhere and is removed (§4.8).
var removedOnStartFailure = map[payloads.StartFailureReason]bool{
	payloads.StartFullCloud: true, payloads.StartFullComputeNode: true, payloads.StartNoComputeNodes: true,
	payloads.StartNoNetworkNodes: true, payloads.StartInvalidPayload: true, payloads.StartInvalidData: true,
	payloads.StartImageFailure: true, payloads.StartNetworkFailure: true,
}

// handle processes one received frame on the worker goroutine. Unknown
// instance ids are ignored (Q18).
func (c *Controller) handle(r received) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
	defer cancel()
	var err error
	switch {
	case r.typ == ssntp.COMMAND && ssntp.Command(r.op) == ssntp.STATS:
		err = c.handleStats(ctx, r)
	case r.typ == ssntp.ERROR && ssntp.Error(r.op) == ssntp.StartFailure:
		err = c.handleStartFailure(ctx, r)
	case r.typ == ssntp.ERROR && ssntp.Error(r.op) == ssntp.StopFailure:
		var p payloads.ErrorStopFailure
		if err = yaml.Unmarshal(r.payload, &p); err == nil {
			c.failureEvent(ctx, p.InstanceUUID, "Stop Failure %s: %s", p.Reason.String())
		}
	case r.typ == ssntp.ERROR && ssntp.Error(r.op) == ssntp.RestartFailure:
		var p payloads.ErrorRestartFailure
		if err = yaml.Unmarshal(r.payload, &p); err == nil {
			c.failureEvent(ctx, p.InstanceUUID, "Restart Failure %s: %s", p.Reason.String())
		}
	case r.typ == ssntp.ERROR && ssntp.Error(r.op) == ssntp.DeleteFailure:
		var p payloads.ErrorDeleteFailure
		if err = yaml.Unmarshal(r.payload, &p); err == nil && !c.cnciDeleteFailure(ctx, p.InstanceUUID, p.Reason) {
			c.deleteFailure(ctx, p.InstanceUUID, p.Reason)
		}
	case r.typ == ssntp.EVENT && ssntp.Event(r.op) == ssntp.InstanceDeleted:
		var p payloads.EventInstanceDeleted
		if err = yaml.Unmarshal(r.payload, &p); err == nil {
			id := p.InstanceDeleted.InstanceUUID
			if !c.cnciInstanceDeleted(ctx, id) {
				c.remove(ctx, id, "Deleted Instance "+id, datastore.EventInfo)
			}
		}
	case r.typ == ssntp.EVENT && ssntp.Event(r.op) == ssntp.TraceReport:
		err = c.handleTraceReport(ctx, r)
	case r.typ == ssntp.EVENT && ssntp.Event(r.op) == ssntp.ConcentratorInstanceAdded:
		err = c.handleCNCIAdded(ctx, r.payload)
	case r.typ == ssntp.EVENT && ssntp.Event(r.op) == ssntp.NodeConnected:
		var p payloads.NodeConnected
		if err = yaml.Unmarshal(r.payload, &p); err == nil {
			glog.Infof("node %s (%s) connected", p.Connected.NodeUUID, p.Connected.NodeType)
			c.event(ctx, "", datastore.EventInfo, fmt.Sprintf("Node connected %s (%s)", p.Connected.NodeUUID, p.Connected.NodeType))
		}
	case r.typ == ssntp.EVENT && ssntp.Event(r.op) == ssntp.NodeDisconnected:
		var p payloads.NodeDisconnected
		if err = yaml.Unmarshal(r.payload, &p); err == nil {
			id := p.Disconnected.NodeUUID
			glog.Infof("node %s (%s) disconnected", id, p.Disconnected.NodeType)
			if derr := c.store.DeleteNode(ctx, id); derr != nil && !errors.Is(derr, datastore.ErrNotFound) {
				err = derr
			}
			if merr := c.nodeGone(ctx, id); merr != nil && err == nil {
				err = merr
			}
			c.event(ctx, "", datastore.EventWarn, fmt.Sprintf("Node disconnected %s (%s)", id, p.Disconnected.NodeType))
		}
	default:
		glog.V(2).Infof("ignoring %s operand %d from %s", r.typ, r.op, r.origin)
		return
	}
	if err != nil {
		glog.Errorf("handling %s operand %d from %s: %v", r.typ, r.op, r.origin, err)
	}
}

// handleStats records one STATS report (§4.11): node stats when the
// payload has a node part, and every instance's state, node and ssh
// endpoint.
func (c *Controller) handleStats(ctx context.Context, r received) error {
	var s payloads.Stat
	s.Init()
	if err := yaml.Unmarshal(r.payload, &s); err != nil {
		return fmt.Errorf("decode STATS: %w", err)
	}
	node := s.NodeUUID
	if node == "" {
		node = r.origin
	}
	rep := datastore.StatsReport{NodeID: node, Time: time.Now()}
	if s.Load != -1 {
		rep.Node = &datastore.NodeStats{
			NodeID: node, Hostname: s.NodeHostName, Status: s.Status,
			MemTotalMB: s.MemTotalMB, MemAvailableMB: s.MemAvailableMB,
			DiskTotalMB: s.DiskTotalMB, DiskAvailableMB: s.DiskAvailableMB,
			Load: s.Load, CPUsOnline: s.CpusOnline,
		}
	}
	for _, in := range s.Instances {
		rep.Instances = append(rep.Instances, datastore.InstanceStats{
			InstanceID: in.InstanceUUID, NodeID: node, State: in.State,
			SSHIP: in.SSHIP, SSHPort: in.SSHPort,
			MemoryUsageMB: max(in.MemoryUsageMB, 0), DiskUsageMB: max(in.DiskUsageMB, 0), CPUUsage: max(in.CPUUsage, 0),
			Volumes: in.Volumes,
		})
	}
	if err := c.store.RecordStats(ctx, rep); err != nil {
		return fmt.Errorf("record STATS of %s: %w", node, err)
	}
	c.cfg.Metrics.StatsInstances(len(s.Instances))
	glog.V(2).Infof("STATS from %s: %d instances", node, len(s.Instances))
	return nil
}

// handleStartFailure applies §4.8: reasons after which nothing runs remove
// the instance (releasing its quota and address); launch_failure puts it
// in StateError on the reporting node; the others only log an event.
func (c *Controller) handleStartFailure(ctx context.Context, r received) error {
	var p payloads.ErrorStartFailure
	if err := yaml.Unmarshal(r.payload, &p); err != nil {
		return fmt.Errorf("decode StartFailure: %w", err)
	}
	id := p.InstanceUUID
	if c.cnciStartFailure(ctx, id, p.Reason) {
		return nil
	}
	msg := fmt.Sprintf("Start Failure %s: %s", id, p.Reason.String())
	switch {
	case p.Reason == payloads.StartAlreadyRunning || p.Reason == payloads.StartInstanceExists:
		return c.resentStartFailure(ctx, id, r.origin, p.Reason)
	case removedOnStartFailure[p.Reason]:
		c.remove(ctx, id, msg, datastore.EventError)
	case p.Reason == payloads.StartLaunchFailure:
		in, err := c.store.Instance(ctx, id)
		if err != nil {
			glog.V(1).Infof("StartFailure for unknown instance %s ignored", id)
			return nil
		}
		node := in.NodeID
		if node == "" && r.origin != c.client.ServerUUID().String() {
			node = r.origin // the launcher that failed
		}
		if _, err := c.store.UpdateInstances(ctx, []datastore.InstanceUpdate{{ID: id, State: StateError, NodeID: node, SSHIP: in.SSHIP, SSHPort: in.SSHPort}}); err != nil {
			return fmt.Errorf("mark %s failed: %w", id, err)
		}
		c.event(ctx, in.TenantID, datastore.EventError, msg)
	default:
		c.failureEvent(ctx, id, "Start Failure %s: %s", p.Reason.String())
	}
	return nil
}

// remove deletes an instance (releasing usage and address) and logs msg
// under its tenant (Q6). Unknown ids are ignored.
func (c *Controller) remove(ctx context.Context, id, msg, typ string) {
	in, err := c.store.DeleteInstance(ctx, id)
	if errors.Is(err, datastore.ErrNotFound) {
		glog.V(1).Infof("removal of unknown instance %s ignored (%s)", id, msg)
		return
	}
	if err != nil {
		glog.Errorf("removing instance %s: %v", id, err)
		return
	}
	glog.Infof("instance %s of tenant %s removed: %s", id, in.TenantID, msg)
	c.event(ctx, in.TenantID, typ, msg)
}

// failureEvent logs an error event for a known instance.
func (c *Controller) failureEvent(ctx context.Context, id, format, reason string) {
	in, err := c.store.Instance(ctx, id)
	if err != nil {
		glog.V(1).Infof("failure for unknown instance %s ignored: %s", id, reason)
		return
	}
	c.event(ctx, in.TenantID, datastore.EventError, fmt.Sprintf(format, id, reason))
}
