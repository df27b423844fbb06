package sim

import (
	"context"
	"errors"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

func TestSim(t *testing.T) {
	ctx := context.Background()
	d := New()
	h, err := d.Start(ctx, driver.Spec{InstanceUUID: "a", VCPUs: 2, MemMB: 1000, DiskMB: 500})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := d.Stats(ctx, h); err != nil || s.MemMB != 100 || s.DiskMB != 50 || s.CPUTime < 0 {
		t.Errorf("Stats = %+v, %v", s, err)
	}
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, h); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("second Stop: %v", err)
	}
	if ok, _ := New().Adopt(ctx, h, driver.Spec{}); !ok {
		t.Error("a new simulator did not adopt the instance as running")
	}
	d.Set(Knobs{AdoptStopped: true})
	if ok, _ := d.Adopt(ctx, h, driver.Spec{}); ok {
		t.Error("AdoptStopped ignored")
	}
	if _, err := d.Adopt(ctx, driver.Handle{Driver: driver.KindProcess}, driver.Spec{}); err == nil {
		t.Error("adopted a process handle")
	}
}
