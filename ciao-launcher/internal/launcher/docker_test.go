package launcher

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker/dockertest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// Container names derive from instance uuids, and the engine is shared
// with whatever else runs on the machine: fresh uuids keep concurrent test
// runs apart.
var (
	dockerA = uuid.Generate().String()
	dockerB = uuid.Generate().String()
	dockerC = uuid.Generate().String()
)

const dockerUserData = "---\n#cloud-config\nruncmd:\n  - [ /bin/sleep, \"300\" ]\n...\n"

func dockerImage(img string) testutil.StartOption {
	return func(c *payloads.StartCmd) { c.DockerImage = img }
}

// dockerConfig is a launcher configuration running containers on the real
// engine through a driver of its own (a new launcher process would have a
// new one). Containers get no network: the test engine has no bridge.
func dockerConfig(t *testing.T, srv *testutil.FakeServer, dir string) Config {
	cfg := testConfig(t, srv, dir)
	cfg.Network = false
	cfg.Drivers = driver.Registry{driver.KindDocker: dockertest.NewDriver(t, nil)}
	return cfg
}

// TestDockerLifecycle drives containers through START, STOP, RESTART and
// DELETE, a launcher restart that re-adopts them, a START of an image that
// is not loaded, and a hard reset.
func TestDockerLifecycle(t *testing.T) {
	dockertest.Require(t)
	srv := newTestServer(t)
	dir := t.TempDir()
	cfg := dockerConfig(t, srv, dir)
	dockertest.CleanupRoot(t, cfg.StateDir)
	d := cfg.Drivers[driver.KindDocker]
	ctx := context.Background()
	l := startLauncher(t, srv, cfg)
	start := func(id, img string) {
		srv.SendCommand(t, l.id, ssntp.START, startPayload(t, id, dockerUserData,
			testutil.StartVMType(payloads.HypervisorDocker), dockerImage(img)))
	}

	start(dockerA, dockertest.Image)
	waitStats(t, srv, "container active", stateIs(dockerA, payloads.InstanceActive))
	h := handleOf(t, cfg.StateDir, dockerA)
	if ok, err := d.Running(ctx, h); h.Driver != driver.KindDocker || !ok || err != nil {
		t.Fatalf("handle %+v: running %v, %v", h, ok, err)
	}
	waitStats(t, srv, "memory sample", func(s payloads.Stat) bool {
		i, ok := instanceIn(s, dockerA)
		return ok && i.MemoryUsageMB > 0
	})

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(dockerA, l.id.String()))
	waitStats(t, srv, "container exited", stateIs(dockerA, payloads.InstanceExited))
	if ok, _ := d.Running(ctx, h); ok {
		t.Error("container runs after STOP")
	}
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(dockerA, l.id.String()))
	waitStats(t, srv, "container active again", stateIs(dockerA, payloads.InstanceActive))

	start(dockerC, "ciao-test/not-loaded:none")
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartImageFailure || f.InstanceUUID != dockerC {
		t.Errorf("START of a missing image: %+v", f)
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(dockerA, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != dockerA {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	waitFor(t, "container gone", func() bool { ok, err := d.Running(ctx, h); return !ok && err == nil })
	waitStats(t, srv, "instance gone", absent(dockerA))

	// A new launcher, with a new driver, re-adopts a running container.
	start(dockerB, dockertest.Image)
	waitStats(t, srv, "second container active", stateIs(dockerB, payloads.InstanceActive))
	hb := handleOf(t, cfg.StateDir, dockerB)
	l.stop(t)
	srv.NextDisconnect(t)
	if ok, _ := d.Running(ctx, hb); !ok {
		t.Fatal("stopping the launcher stopped the container")
	}
	cfg2 := cfg
	cfg2.Drivers = driver.Registry{driver.KindDocker: dockertest.NewDriver(t, nil)}
	l = startLauncher(t, srv, cfg2)
	waitStats(t, srv, "adopted container active", stateIs(dockerB, payloads.InstanceActive))
	waitStats(t, srv, "adopted container sampled", func(s payloads.Stat) bool {
		i, ok := instanceIn(s, dockerB)
		return ok && i.MemoryUsageMB > 0
	})
	l.stop(t)

	cfg3 := cfg
	cfg3.Drivers = driver.Registry{driver.KindDocker: dockertest.NewDriver(t, nil)}
	if err := HardReset(ctx, cfg3); err != nil {
		t.Fatalf("HardReset: %v", err)
	}
	if ok, err := d.Running(ctx, hb); ok || err != nil {
		t.Errorf("container survived the hard reset: %v, %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, dockerB)); !os.IsNotExist(err) {
		t.Errorf("instance directory left after hard reset: %v", err)
	}
}
