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

// TestWait: Wait returns when the run ends (Kill, Stop, a new Start), at
// once for a stopped instance, and with the context's error when it ends.
func TestWait(t *testing.T) {
	ctx := context.Background()
	d := New()
	h, err := d.Start(ctx, driver.Spec{InstanceUUID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Wait(cctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a running instance with an ended context = %v", err)
	}
	// A restart ends the old run (the channel Wait would be waiting on).
	old := d.running["w"].done
	if _, err := d.Start(ctx, driver.Spec{InstanceUUID: "w"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old:
	default:
		t.Error("a new Start did not end the previous run")
	}
	for _, end := range []func(){
		func() { d.Kill("w") },
		func() { _ = d.Stop(ctx, h) },
	} {
		if _, err := d.Start(ctx, driver.Spec{InstanceUUID: "w"}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- d.Wait(ctx, h) }()
		// Wait may be reached before or after end: both must return nil.
		end()
		if err := <-done; err != nil {
			t.Errorf("Wait = %v", err)
		}
	}
	_ = d.Delete(ctx, h)
	if err := d.Wait(ctx, h); err != nil {
		t.Errorf("Wait on a deleted instance = %v", err)
	}
}
