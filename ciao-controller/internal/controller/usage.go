package controller

import (
	"context"
	"time"

	"github.com/golang/glog"
)

// Usage records. The datastore keeps every instance's lifetime, deleted
// ones included, for os-simple-tenant-usage (datastore/lifetimes.go); it
// writes them itself with the instance rows, so creating and deleting
// cost no extra commit. What the controller adds is the bound: lifetimes
// that ended more than Config.UsageRetention ago are pruned, once at
// start and then every usagePruneEvery.

// DefaultUsageRetention is Config.UsageRetention's default.
const DefaultUsageRetention = 90 * 24 * time.Hour

// usagePruneEvery is how often ended lifetimes past the retention go.
const usagePruneEvery = time.Hour

// pruneUsageLoop prunes at start and every usagePruneEvery until Close.
func (c *Controller) pruneUsageLoop() {
	defer c.bg.Done()
	t := time.NewTicker(usagePruneEvery)
	defer t.Stop()
	now := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
		c.pruneUsage(ctx, now)
		cancel()
		select {
		case <-c.stop:
			return
		case now = <-t.C:
		}
	}
}

// pruneUsage drops the lifetimes that ended before now - UsageRetention.
func (c *Controller) pruneUsage(ctx context.Context, now time.Time) {
	n, err := c.store.PruneLifetimes(ctx, now.Add(-c.cfg.UsageRetention))
	switch {
	case err != nil:
		glog.Errorf("pruning usage records older than %v: %v", c.cfg.UsageRetention, err)
	case n > 0:
		glog.V(1).Infof("pruned %d usage records of instances deleted more than %v ago", n, c.cfg.UsageRetention)
	}
}
