// Package dockertest gives tests a running Docker engine holding the ciao
// test image: it runs scripts/start-dockerd.sh and scripts/test-image.sh
// once per test binary. Where they fail the tests skip, except with CI set
// in the environment, where a missing engine must not pass unnoticed.
// Only _test.go files import it.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
)

// Image is the image scripts/test-image.sh imports: busybox, whose default
// command sleeps for an hour.
const Image = "ciao-test/busybox:latest"

var (
	once     sync.Once
	setupErr error
)

// Require skips (fails under CI) the test unless the engine and the test
// image are ready.
func Require(t testing.TB) {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Docker engine unavailable (CI is set, so this fails rather than skips): %v", setupErr)
	}
	t.Skipf("Docker engine unavailable, skipping: %v", setupErr)
}

func setup() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, s := range []string{"start-dockerd.sh", "test-image.sh"} {
		out, err := exec.CommandContext(ctx, filepath.Join(root, "scripts", s)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scripts/%s: %v: %s", s, err, out)
		}
	}
	return nil
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// NewDriver is a Docker driver with short timeouts, closed when the test
// ends. It calls Require.
func NewDriver(t testing.TB, mutate func(*docker.Config)) *docker.Driver {
	t.Helper()
	Require(t)
	cfg := docker.DefaultConfig()
	cfg.StopGrace = time.Second
	cfg.APITimeout = 20 * time.Second
	cfg.PullTimeout = 20 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := docker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// CleanupRoot removes, when the test ends, every container created for
// instances under root, whatever the test did with them.
func CleanupRoot(t testing.TB, root string) {
	t.Helper()
	t.Cleanup(func() {
		d, err := docker.New(docker.Config{StopGrace: time.Second})
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer d.Close()
		if err := d.Reset(context.Background(), filepath.Clean(root)); err != nil {
			t.Errorf("cleanup of containers under %s: %v", root, err)
		}
	})
}
