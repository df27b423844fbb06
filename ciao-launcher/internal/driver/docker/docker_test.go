package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker/dockertest"
	"github.com/ciao-project/ciao/uuid"
)

// Container names derive from instance uuids and the engine is shared with
// whatever else runs on the machine: fresh uuids keep concurrent runs apart.
var lifeUUID = uuid.Generate().String()

func newID() string { return uuid.Generate().String() }

func spec(root, id, image string) driver.Spec {
	return driver.Spec{
		InstanceUUID: id, Dir: filepath.Join(root, id), VCPUs: 1, MemMB: 32, Image: image,
		UserData: []byte("#cloud-config\nruncmd:\n  - [ /bin/sh, -c, 'echo started; exec sleep 300' ]\n"),
	}
}

// TestLifecycle: start, stats, stop, restart, re-adoption by a new driver
// (also with a stale id, through the label), delete.
func TestLifecycle(t *testing.T) {
	d := dockertest.NewDriver(t, nil)
	root := t.TempDir()
	dockertest.CleanupRoot(t, root)
	ctx := context.Background()
	sp := spec(root, lifeUUID, dockertest.Image)

	h, err := d.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if h.Driver != driver.KindDocker || h.ID == "" {
		t.Fatalf("handle %+v", h)
	}
	if ok, err := d.Running(ctx, h); !ok || err != nil {
		t.Fatalf("Running = %v, %v", ok, err)
	}
	labels, status, err := d.Labels(ctx, h.ID)
	if err != nil || labels[docker.LabelInstance] != lifeUUID || status != "running" {
		t.Fatalf("labels %v status %q: %v", labels, status, err)
	}
	s, err := d.Stats(ctx, h)
	if err != nil || s.MemMB <= 0 || s.CPUTime < 0 {
		t.Errorf("Stats = %+v, %v", s, err)
	}

	// A new driver (a restarted launcher) adopts it by id, and by label
	// when the saved id is stale.
	d2 := dockertest.NewDriver(t, nil)
	if ok, err := d2.Adopt(ctx, h, sp); !ok || err != nil {
		t.Errorf("Adopt = %v, %v", ok, err)
	}
	stale := h
	stale.ID = "0123456789ab"
	if ok, err := d2.Adopt(ctx, stale, sp); !ok || err != nil {
		t.Errorf("Adopt with a stale id = %v, %v", ok, err)
	}

	start := time.Now()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start))
	if _, status, _ := d.Labels(ctx, h.ID); status != "exited" {
		t.Errorf("status after Stop %q", status)
	}
	if ok, _ := d.Running(ctx, h); ok {
		t.Error("running after Stop")
	}
	if err := d.Stop(ctx, h); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := d.Stats(ctx, h); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("Stats of a stopped container: %v", err)
	}

	h2, err := d.Start(ctx, sp) // what RESTART does
	if err != nil {
		t.Fatal(err)
	}
	if h2.ID != h.ID {
		t.Errorf("restart made a new container %s (was %s)", h2.ID, h.ID)
	}
	if ok, err := d.Running(ctx, h2); !ok || err != nil {
		t.Fatalf("Running after restart = %v, %v", ok, err)
	}

	if err := d.Delete(ctx, h2); err != nil {
		t.Fatal(err)
	}
	if d.Exists(ctx, h.ID) {
		t.Error("container left after Delete")
	}
	if ok, err := d.Running(ctx, h2); ok || err != nil {
		t.Errorf("Running after Delete = %v, %v", ok, err)
	}
	if err := d.Delete(ctx, h2); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// TestMissingImage: an image that is neither loaded nor pullable is an
// image failure, and no container is left.
func TestMissingImage(t *testing.T) {
	d := dockertest.NewDriver(t, func(c *docker.Config) { c.PullTimeout = 15 * time.Second })
	root := t.TempDir()
	dockertest.CleanupRoot(t, root)
	_, err := d.Start(context.Background(), spec(root, newID(), "ciao-test/not-loaded:none"))
	if !errors.Is(err, driver.ErrImage) || driver.StartFailureReason(err) != "image_failure" {
		t.Fatalf("Start = %v, want an image failure", err)
	}
	t.Logf("error: %v", err)
}

// TestReset removes every container under a root, including one the state
// directory never recorded, and leaves other roots alone.
func TestReset(t *testing.T) {
	d := dockertest.NewDriver(t, nil)
	root, other := t.TempDir(), t.TempDir()
	dockertest.CleanupRoot(t, root)
	dockertest.CleanupRoot(t, other)
	ctx := context.Background()
	var hs []driver.Handle
	for _, id := range []string{newID(), newID()} {
		h, err := d.Start(ctx, spec(root, id, dockertest.Image))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	keep, err := d.Start(ctx, spec(other, newID(), dockertest.Image))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reset(ctx, root); err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if d.Exists(ctx, h.ID) {
			t.Errorf("container %s survived the reset", h.ID)
		}
	}
	if ok, _ := d.Running(ctx, keep); !ok {
		t.Error("reset removed another launcher's container")
	}
}

// TestEngineDown: with no engine, START is a launch failure that says so,
// and a hard reset only warns.
func TestEngineDown(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "no.sock")
	d, err := docker.New(docker.Config{Host: sock, APITimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Start(context.Background(), spec(t.TempDir(), lifeUUID, dockertest.Image))
	if !errors.Is(err, driver.ErrLaunch) {
		t.Fatalf("Start = %v, want a launch failure", err)
	}
	t.Logf("error: %v", err)
	if err := d.Reset(context.Background(), "/nowhere"); err != nil {
		t.Errorf("Reset without an engine: %v", err)
	}
	b, _ := json.Marshal(driver.Handle{Driver: driver.KindDocker, ID: "x"})
	var h driver.Handle
	_ = json.Unmarshal(b, &h)
	if _, err := d.Running(context.Background(), h); err == nil {
		t.Error("Running without an engine did not fail")
	}
}
