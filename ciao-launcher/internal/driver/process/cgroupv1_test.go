package process

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/uuid"
)

// TestCgroupV1Fake runs against a fake v1 hierarchy with cpu and cpuacct
// co-mounted (cpu and cpuacct are symlinks to cpu,cpuacct, as on many
// distributions): the limits and the pid land in one cpu,cpuacct group,
// the handle records the groups, and Delete removes them.
func TestCgroupV1Fake(t *testing.T) {
	root := t.TempDir()
	for file, content := range map[string]string{
		"memory/memory.limit_in_bytes": "9223372036854771712",
		"cpu,cpuacct/cpu.cfs_quota_us": "-1",
		"cpu,cpuacct/cpuacct.usage":    "0",
	} {
		p := filepath.Join(root, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	d := testDriver(t, root)
	h, spec := startSleep(t, d, "#ciao-process\nruncmd: [ [ sleep, 300 ] ]\n")
	var hd handleData
	if err := json.Unmarshal(h.Data, &hd); err != nil || hd.CgroupV1 == nil || hd.Cgroup != "" {
		t.Fatalf("handle data %s: %v", h.Data, err)
	}
	mem := filepath.Join(root, "memory", "ciao", spec.InstanceUUID)
	cpu := filepath.Join(root, "cpu,cpuacct", "ciao", spec.InstanceUUID)
	if hd.CgroupV1.Memory != mem || hd.CgroupV1.CPU != cpu || hd.CgroupV1.CPUAcct != cpu {
		t.Errorf("groups %+v", hd.CgroupV1)
	}
	for file, want := range map[string]string{
		filepath.Join(mem, "memory.limit_in_bytes"): "67108864",
		filepath.Join(mem, "cgroup.procs"):          strconv.Itoa(h.PID),
		filepath.Join(cpu, "cpu.cfs_period_us"):     "100000",
		filepath.Join(cpu, "cpu.cfs_quota_us"):      "200000",
		filepath.Join(cpu, "cgroup.procs"):          strconv.Itoa(h.PID),
	} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if err := d.Delete(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{mem, cpu} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind: %v", dir, err)
		}
	}
}

// requireCgroupV1 skips unless the machine's /sys/fs/cgroup is a v1 (or
// hybrid) layout the test can write to.
func requireCgroupV1(t *testing.T) string {
	t.Helper()
	const root = "/sys/fs/cgroup"
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if cgroupV2Usable(root) == nil {
		t.Skip("cgroup v2 host: v1 is not used")
	}
	for _, f := range []string{"memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "cpuacct/cpuacct.usage"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Skipf("no cgroup v1 controllers: %v", err)
		}
	}
	return root
}

// cleanupV1 kills and removes the instance's real v1 groups at the end of
// the test, whatever the driver did.
func cleanupV1(t *testing.T, root, id string) *cgroupV1 {
	cg := &cgroupV1{Memory: filepath.Join(root, "memory", "ciao", id), CPU: filepath.Join(root, "cpu", "ciao", id), CPUAcct: filepath.Join(root, "cpuacct", "ciao", id)}
	t.Cleanup(func() {
		cg.kill()
		if err := cg.remove(); err != nil {
			t.Errorf("removing cgroups: %v", err)
		}
		// The shared parents go too unless another instance uses them
		// (the kernel refuses to remove a group with children).
		for _, d := range cg.dirs() {
			_ = os.Remove(filepath.Dir(d))
		}
	})
	return cg
}

// TestCgroupV1Real uses this machine's v1 controllers: a 64 MiB, 2 vCPU
// instance gets its limits, is in its groups, reports stats from them, and
// a workload that allocates beyond the limit is OOM-killed.
func TestCgroupV1Real(t *testing.T) {
	root := requireCgroupV1(t)
	d := testDriver(t, root)
	ctx := context.Background()

	id := uuid.Generate().String()
	want := cleanupV1(t, root, id)
	// A busy loop so that cpuacct.usage visibly grows.
	spec := driver.Spec{InstanceUUID: id, Dir: t.TempDir(), VCPUs: 2, MemMB: 64,
		UserData: []byte("#ciao-process\nruncmd:\n  - while :; do :; done\n")}
	h, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), h) })
	if hd := decodeData(h); hd.CgroupV1 == nil || *hd.CgroupV1 != *want {
		t.Fatalf("handle groups %+v, want %+v", hd.CgroupV1, want)
	}
	for file, v := range map[string]string{
		filepath.Join(want.Memory, "memory.limit_in_bytes"): "67108864",
		filepath.Join(want.CPU, "cpu.cfs_period_us"):        "100000",
		filepath.Join(want.CPU, "cpu.cfs_quota_us"):         "200000",
	} {
		if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != v {
			t.Errorf("%s = %q, %v; want %s", file, b, err, v)
		}
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/cgroup")
	for _, c := range []string{"memory", "cpu", "cpuacct"} {
		if !strings.Contains(string(b), ":"+c+":/ciao/"+id+"\n") {
			t.Errorf("pid %d not in its %s group:\n%s", h.PID, c, b)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := d.Stats(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		acct, _ := readUint(filepath.Join(want.CPUAcct, "cpuacct.usage"))
		if s.CPUTime > 0 && s.MemMB >= 0 && time.Duration(acct) >= s.CPUTime {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, cpuacct.usage %d", s, acct)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter with a deadline
	}
	// A restarted launcher (a new driver, the handle read back from the
	// state file) adopts the instance and still samples its groups.
	b, err = json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back driver.Handle
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	d2 := testDriver(t, root)
	if ok, err := d2.Adopt(ctx, back, spec); !ok || err != nil {
		t.Fatalf("Adopt = %v, %v", ok, err)
	}
	if s, err := d2.Stats(ctx, back); err != nil || s.CPUTime <= 0 {
		t.Errorf("Stats after adoption = %+v, %v", s, err)
	}
	if err := d2.Delete(ctx, back); err != nil {
		t.Fatal(err)
	}
	for _, dir := range want.dirs() {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind: %v", dir, err)
		}
	}

	// tail keeps a newline-free line whole: 200 MiB against a 64 MiB limit.
	id = uuid.Generate().String()
	want = cleanupV1(t, root, id)
	spec = driver.Spec{InstanceUUID: id, Dir: t.TempDir(), VCPUs: 1, MemMB: 64,
		UserData: []byte("#ciao-process\nruncmd:\n  - head -c 200M /dev/zero | tail\n")}
	h, err = d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), h) })
	deadline = time.Now().Add(20 * time.Second)
	for {
		if ok, err := d.Running(ctx, h); err == nil && !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("workload beyond its memory limit still runs")
		}
		time.Sleep(20 * time.Millisecond) // polling the process with a deadline
	}
	if b, _ := os.ReadFile(filepath.Join(want.Memory, "memory.oom_control")); !strings.Contains(string(b), "oom_kill ") || strings.Contains(string(b), "oom_kill 0") {
		t.Errorf("no OOM kill recorded:\n%s", b)
	}
}
