package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// Launch creates n instances of workload for tenant and sends one START
// for each (controller.md §4.7). The tenant is registered on first use.
// Admission and address allocation are one datastore transaction, so an
// over-quota request creates nothing (Q4 recommendation): the error then
// wraps datastore.ErrQuota. Internal (CNCI) workloads cannot be launched
// here (Q20): they are reported as not found.
//
// A non-empty label sends each START path-traced under that label
// (§4.13); it is also the instances' name (the server name of the
// create request, which the 2016 API used as the trace label). An instance whose START cannot be handed to the SSNTP client
// is removed again; the returned error then wraps ErrUnavailable and the
// returned slice holds only the instances whose START was sent.
func (c *Controller) Launch(ctx context.Context, tenantID, workloadID string, n int, label string) ([]datastore.Instance, error) {
	if n < 1 || n > c.cfg.MaxLaunch {
		return nil, fmt.Errorf("launch: instance count %d not in 1..%d: %w", n, c.cfg.MaxLaunch, datastore.ErrInvalid)
	}
	if tenantID == "" {
		return nil, fmt.Errorf("launch: empty tenant: %w", datastore.ErrInvalid)
	}
	w, err := c.store.Workload(ctx, workloadID)
	if err == nil && (w.Internal || w.IsCNCI() || (w.TenantID != "" && w.TenantID != tenantID)) {
		err = datastore.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("launch: workload %q: %w", workloadID, err)
	}
	cn, release, err := c.confirmTenant(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	defer release()
	reqs := make([]datastore.InstanceRequest, n)
	for i := range reqs {
		reqs[i] = datastore.InstanceRequest{ID: uuid.Generate().String(), TenantID: tenantID, WorkloadID: workloadID, Name: label}
	}
	began := time.Now()
	ins, err := c.store.CreateInstances(ctx, reqs)
	if err != nil {
		c.cfg.Metrics.Launches(metrics.LaunchRefused, n)
		c.event(ctx, tenantID, datastore.EventError, fmt.Sprintf("Launch of %d %q refused: %v", n, w.Description, err))
		return nil, fmt.Errorf("launch: %w", err)
	}
	sent := make([]datastore.Instance, 0, len(ins))
	var sendErr error
	for _, in := range ins {
		if err := c.sendStart(w, in, cn, label, began); err != nil {
			sendErr = fmt.Errorf("launch: start %s: %w: %w", in.ID, ErrUnavailable, err)
			c.event(ctx, tenantID, datastore.EventError, fmt.Sprintf("Start of %s not sent: %v", in.ID, err))
			if _, derr := c.store.DeleteInstance(ctx, in.ID); derr != nil {
				glog.Errorf("removing unsent instance %s: %v", in.ID, derr)
			}
			continue
		}
		sent = append(sent, in)
	}
	c.cfg.Metrics.Launches(metrics.LaunchStarted, len(sent))
	c.cfg.Metrics.Launches(metrics.LaunchUnsent, len(ins)-len(sent))
	glog.Infof("tenant %s: launched %d/%d instances of %s", tenantID, len(sent), n, workloadID)
	return sent, sendErr
}

// confirmTenant registers the tenant on first use (§4.2) and, with
// tenant networking on, makes sure it has an active CNCI, which it
// returns with the release to call once the CNCI may be deleted again.
func (c *Controller) confirmTenant(ctx context.Context, tenantID string) (datastore.CNCI, func(), error) {
	t, created, err := c.store.EnsureTenant(ctx, datastore.Tenant{ID: tenantID, CNCIMAC: tenantMAC()})
	if err != nil {
		return datastore.CNCI{}, nil, fmt.Errorf("register tenant %s: %w", tenantID, err)
	}
	if created {
		glog.Infof("registered tenant %s", tenantID)
		c.event(ctx, tenantID, datastore.EventInfo, "Registered tenant "+tenantID)
	}
	if !c.cfg.Network {
		return datastore.CNCI{}, func() {}, nil
	}
	return c.ensureCNCI(ctx, t)
}

// ConfirmTenant registers the tenant if it is new, with its CNCI when
// tenant networking is on (used by the quotas endpoint, §6.3.4).
func (c *Controller) ConfirmTenant(ctx context.Context, tenantID string) error {
	_, release, err := c.confirmTenant(ctx, tenantID)
	if err == nil {
		release()
	}
	return err
}

// tenantMAC makes a tenant/CNCI MAC (§4.1): byte 0 is 0x02 and byte 1 is
// never 0x00, which instance MACs always have.
func tenantMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	b[0] = 0x02
	if b[1] == 0 {
		b[1] = 0x03
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// StartPayload composes the three-document START payload of §5.2 for
// instance in of workload w.
func StartPayload(w datastore.Workload, in datastore.Instance) ([]byte, error) {
	return startPayload(w, in, datastore.CNCI{})
}

// startPayload is StartPayload with the tenant's CNCI as concentrator
// (empty without tenant networking).
func startPayload(w datastore.Workload, in datastore.Instance, cn datastore.CNCI) ([]byte, error) {
	cmd := startCmd(w, in.TenantID, in.ID, payloads.NetworkResources{
		VnicMAC:          in.MAC,
		VnicUUID:         uuid.Generate().String(),
		PrivateIP:        in.IP,
		ConcentratorUUID: cn.ID,
		ConcentratorIP:   cn.IP,
	})
	if in.IP != "" {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil {
			return nil, fmt.Errorf("instance %s address %q: %w", in.ID, in.IP, err)
		}
		p, _ := ip.Prefix(24)
		cmd.Networking.Subnet = p.String()
	}
	return composeStart(w, cmd, payloads.StartMetadata{UUID: in.ID, Hostname: in.ID})
}

// startCmd is the START of instance id of tenant from workload w, with
// networking net.
func startCmd(w datastore.Workload, tenant, id string, net payloads.NetworkResources) payloads.StartCmd {
	cmd := payloads.StartCmd{
		TenantUUID:          tenant,
		InstanceUUID:        id,
		ImageUUID:           w.ImageID,
		FWType:              payloads.Firmware(w.FWType),
		InstancePersistence: payloads.PersistenceHost,
		VMType:              payloads.Hypervisor(w.VMType),
		RequestedResources:  make([]payloads.RequestedResource, 0, len(w.Defaults)),
		EstimatedResources:  []payloads.EstimatedResource{},
		Networking:          net,
	}
	if cmd.VMType == payloads.HypervisorDocker {
		cmd.DockerImage = w.ImageName
	}
	for _, d := range w.Defaults {
		cmd.RequestedResources = append(cmd.RequestedResources,
			payloads.RequestedResource{Type: payloads.Resource(d.Type), Value: d.Value, Mandatory: d.Mandatory})
	}
	return cmd
}

// composeStart is the START frame of cmd with w's cloud-init and meta.
func composeStart(w datastore.Workload, cmd payloads.StartCmd, meta payloads.StartMetadata) ([]byte, error) {
	if b, ok := fastStart(w, &cmd, meta); ok {
		return b, nil
	}
	return payloads.ComposeStart(&payloads.Start{Start: cmd}, w.Config, meta)
}

func (c *Controller) sendStart(w datastore.Workload, in datastore.Instance, cn datastore.CNCI, label string, began time.Time) error {
	p, err := startPayload(w, in, cn)
	if err != nil {
		return err
	}
	if label != "" {
		return c.client.SendTracedCommand(ssntp.START, p,
			&ssntp.TraceConfig{Label: []byte(label), Start: began, PathTrace: true})
	}
	return c.client.SendCommand(ssntp.START, p)
}

// owned loads instance id and checks that tenantID owns it.
func (c *Controller) owned(ctx context.Context, tenantID, id string) (datastore.Instance, error) {
	in, err := c.store.Instance(ctx, id)
	if err != nil {
		return in, err
	}
	if in.TenantID != tenantID {
		return in, ErrNotOwner
	}
	return in, nil
}

// Stop sends STOP for the tenant's instance to the node running it. The
// state changes with the next STATS (§4.8).
func (c *Controller) Stop(ctx context.Context, tenantID, id string) error {
	in, err := c.owned(ctx, tenantID, id)
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	switch {
	case in.NodeID == "":
		return fmt.Errorf("stop %s: cannot stop instance not assigned to node: %w", id, ErrNotAssigned)
	case in.State == datastore.StatePending:
		return fmt.Errorf("stop %s: you may not stop a pending instance: %w", id, ErrBadState)
	}
	return c.route(ctx, in, ssntp.STOP, payloads.Stop{Stop: payloads.StopCmd{InstanceUUID: id, WorkloadAgentUUID: in.NodeID}})
}

// Restart sends RESTART for a stopped (exited) instance to its node.
func (c *Controller) Restart(ctx context.Context, tenantID, id string) error {
	in, err := c.owned(ctx, tenantID, id)
	if err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	switch {
	case in.NodeID == "":
		return fmt.Errorf("restart %s: cannot restart instance not assigned to node: %w", id, ErrNotAssigned)
	case in.State != datastore.StateExited:
		return fmt.Errorf("restart %s: you may only restart stopped instances: %w", id, ErrBadState)
	}
	return c.route(ctx, in, ssntp.RESTART, payloads.Restart{Restart: payloads.RestartCmd{InstanceUUID: id, WorkloadAgentUUID: in.NodeID}})
}

// Delete sends DELETE to the instance's node; the instance stays listed
// until the node confirms with InstanceDeleted (§4.8). An instance that a
// StartFailure left in the error state without a node runs nowhere and is
// removed at once. The request is recorded on the instance first, and the
// DELETE re-sent until confirmed (deleting.go): with DELETE re-sends on
// (Config.ResendDeleteAfter), a DELETE that cannot be handed to the
// scheduler now is not an error (the event log says it was not sent);
// with them off it is ErrUnavailable.
func (c *Controller) Delete(ctx context.Context, tenantID, id string) error {
	in, err := c.owned(ctx, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if in.NodeID == "" {
		if in.State == StateError {
			c.remove(ctx, id, "Deleted Instance "+id, datastore.EventInfo)
			return nil
		}
		return fmt.Errorf("delete %s: cannot delete instance not assigned to node: %w", id, ErrNotAssigned)
	}
	now := time.Now()
	if err := c.store.MarkDeleting(ctx, id, now); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	c.deleteSent(in, now)
	err = c.route(ctx, in, ssntp.DELETE, payloads.Delete{Delete: payloads.StopCmd{InstanceUUID: id, WorkloadAgentUUID: in.NodeID}})
	if errors.Is(err, ErrUnavailable) && c.cfg.ResendDeleteAfter > 0 {
		glog.Warningf("delete %s: %v; recorded, it will be re-sent", id, err)
		return nil
	}
	return err
}

// route sends a command for in and logs an event for it.
func (c *Controller) route(ctx context.Context, in datastore.Instance, cmd ssntp.Command, p any) error {
	b, err := yaml.Marshal(p)
	if err != nil {
		return fmt.Errorf("%s %s: %w", cmd, in.ID, err)
	}
	if err := c.client.SendCommand(cmd, b); err != nil {
		c.event(ctx, in.TenantID, datastore.EventError, fmt.Sprintf("%s of %s not sent: %v", cmd, in.ID, err))
		return fmt.Errorf("%s %s: %w: %w", cmd, in.ID, ErrUnavailable, err)
	}
	glog.V(1).Infof("sent %s for %s to node %s", cmd, in.ID, in.NodeID)
	c.event(ctx, in.TenantID, datastore.EventInfo, fmt.Sprintf("%s sent for %s to node %s", cmd, in.ID, in.NodeID))
	return nil
}

// event appends to the event log; a failure is only logged.
func (c *Controller) event(ctx context.Context, tenantID, typ, msg string) {
	if _, err := c.store.AddEvent(context.WithoutCancel(ctx), datastore.Event{TenantID: tenantID, Type: typ, Message: msg}); err != nil && !errors.Is(err, context.Canceled) {
		glog.Errorf("event log: %v (event: %s)", err, msg)
	}
}
