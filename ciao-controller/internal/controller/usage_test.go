package controller

import (
	"context"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
)

// TestPruneUsage: the lifetime of an instance deleted less than the
// retention ago stays; once older, it goes; a running instance's stays.
func TestPruneUsage(t *testing.T) {
	ctx := context.Background()
	store := datastore.NewMemory()
	t.Cleanup(func() { store.Close() })
	if err := SeedWorkloads(ctx, store); err != nil {
		t.Fatal(err)
	}
	const tenant = "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"
	if err := store.CreateTenant(ctx, datastore.Tenant{ID: tenant}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateInstances(ctx, []datastore.InstanceRequest{
		{ID: "gone", TenantID: tenant, WorkloadID: WorkloadClear},
		{ID: "kept", TenantID: tenant, WorkloadID: WorkloadClear},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteInstance(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	c := &Controller{store: store, cfg: Config{UsageRetention: 24 * time.Hour}}
	all := func() []datastore.Lifetime {
		ls, err := store.Lifetimes(ctx, "", time.Time{}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	now := time.Now()
	c.pruneUsage(ctx, now.Add(23*time.Hour))
	if ls := all(); len(ls) != 2 {
		t.Fatalf("within retention: %+v, want both", ls)
	}
	c.pruneUsage(ctx, now.Add(25*time.Hour))
	if ls := all(); len(ls) != 1 || ls[0].InstanceID != "kept" {
		t.Fatalf("past retention: %+v, want kept only", ls)
	}
	if err := (Config{Store: store, MaxLaunch: 1, OpTimeout: time.Second, UsageRetention: -time.Hour}).Validate(); err == nil {
		t.Error("negative usage retention accepted")
	}
}
