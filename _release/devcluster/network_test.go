package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
)

// TestUnderlaySetupAndTeardown builds the tenant-networking namespaces
// under a random prefix, checks the compute node reaches the network node
// over the underlay, and removes them without a trace.
func TestUnderlaySetupAndTeardown(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "busybox"} { // busybox ping (install-test-deps.sh)
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("no %s command", tool)
			}
			t.Skipf("no %s command", tool)
		}
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t)
	c.NetPrefix = "dvt" + hex.EncodeToString(b)
	ctx := context.Background()
	names, err := c.setupNetwork(ctx)
	t.Cleanup(func() { _ = c.teardownNetwork(ctx, names) })
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.setupNetwork(ctx); err != nil || len(again) != 3 {
		t.Fatalf("second setup: %v %v", again, err)
	}
	out, err := exec.Command("ip", "netns", "exec", c.Namespace("cn"), "busybox", "ping", "-c", "1", "-W", "5", nodeIP(NetworkNode)).CombinedOutput()
	if err != nil {
		t.Fatalf("compute node to network node over the underlay: %v\n%s", err, out)
	}
	if err := c.teardownNetwork(ctx, names); err != nil {
		t.Fatal(err)
	}
	if left := namespacesLeft(names, nil); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
