package launcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// TestProcessOOMCgroupV1: on a cgroup v1 (or hybrid) host, a process
// instance that allocates beyond its mem_mb is OOM-killed by its memory
// group and reported exited; DELETE removes its groups.
func TestProcessOOMCgroupV1(t *testing.T) {
	const root = "/sys/fs/cgroup"
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		t.Skip("cgroup v2 host")
	}
	if _, err := os.Stat(filepath.Join(root, "memory", "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller: %v", err)
	}
	id := uuid.Generate().String()
	var groups []string
	for _, c := range []string{"memory", "cpu", "cpuacct"} {
		groups = append(groups, filepath.Join(root, c, "ciao", id))
	}
	t.Cleanup(func() {
		// Only reached with groups left if the test failed before DELETE;
		// the instance's processes were killed by killAll.
		for _, g := range groups {
			_ = os.Remove(g)
			_ = os.Remove(filepath.Dir(g)) // refused while other instances use it
		}
	})
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	cfg.CgroupRoot = root
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)

	// tail keeps a newline-free line whole: 200 MiB against 64 MiB.
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, id, processUserData("/bin/sh", "-c", "head -c 200M /dev/zero | tail"), testutil.StartMemMB(64)))
	waitStats(t, srv, "instance exited", stateIs(id, payloads.InstanceExited))
	b, err := os.ReadFile(filepath.Join(groups[0], "memory.oom_control"))
	if err != nil || !strings.Contains(string(b), "oom_kill ") || strings.Contains(string(b), "oom_kill 0") {
		t.Errorf("no OOM kill in the instance's group: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(groups[0], "memory.limit_in_bytes")); strings.TrimSpace(string(b)) != "67108864" {
		t.Errorf("memory.limit_in_bytes = %q", b)
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(id, l.id.String()))
	if ev := srv.NextInstanceDeleted(t); ev.InstanceUUID != id {
		t.Errorf("InstanceDeleted %+v", ev)
	}
	for _, g := range groups {
		if _, err := os.Stat(g); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind: %v", g, err)
		}
	}
}
