package controller

import (
	"context"
	"fmt"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/golang/glog"
	"gopkg.in/yaml.v2"
)

// Evacuate sends EVACUATE for a node that reports statistics: its
// launcher enters maintenance (status MAINTENANCE, no more STARTs) and
// deletes every instance, each confirmed with InstanceDeleted. There is
// no remote restore: the node leaves maintenance when its launcher is
// restarted with -restore.
func (c *Controller) Evacuate(ctx context.Context, nodeID string) error {
	if _, err := c.store.Node(ctx, nodeID); err != nil {
		return fmt.Errorf("evacuate node %s: %w", nodeID, err)
	}
	b, err := yaml.Marshal(payloads.Evacuate{Evacuate: payloads.EvacuateCmd{WorkloadAgentUUID: nodeID}})
	if err != nil {
		return fmt.Errorf("evacuate node %s: %w", nodeID, err)
	}
	if err := c.client.SendCommand(ssntp.EVACUATE, b); err != nil {
		return fmt.Errorf("evacuate node %s: %w: %w", nodeID, ErrUnavailable, err)
	}
	glog.Infof("sent EVACUATE to node %s", nodeID)
	c.event(ctx, "", datastore.EventInfo, "EVACUATE sent to node "+nodeID)
	return nil
}
