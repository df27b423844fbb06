package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

func TestFlags(t *testing.T) {
	cfg, o, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-cacert", "ca.pem", "-cert", "cert.pem", "-network=false", "-state-dir", "/x", "-stats-interval", "1s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network || cfg.StateDir != "/x" || cfg.StatsInterval != time.Second || o.hardReset {
		t.Errorf("parsed %+v %+v", cfg, o)
	}
	if _, _, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), nil); err == nil {
		t.Error("missing certificates accepted")
	}
	if _, o, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-hard-reset"}); err != nil || !o.hardReset {
		t.Errorf("-hard-reset: %v", err)
	}
}

// TestBinarySIGKILLReadopt builds ciao-launcher, starts a process instance
// through it, SIGKILLs it, starts it again and checks that it re-adopts the
// instance; then -hard-reset removes everything.
func TestBinarySIGKILLReadopt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ciao-launcher")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := testutil.ConfigureCmd()
	c.Configure.Launcher.DiskLimit, c.Configure.Launcher.MemoryLimit = false, true
	conf := testutil.Marshal(t, c)
	srv := testutil.NewFakeServer(t, testutil.WithConfig(func(sc *ssntp.Config) { sc.ClusterConfig = conf }))
	ca, cert := testutil.TestCerts(t).WriteFiles(t, dir, ssntp.AGENT)
	stateDir := filepath.Join(dir, "instances")
	args := []string{
		"-cacert", ca, "-cert", cert, "-server", "localhost", "-port", strconv.Itoa(srv.Port()),
		"-state-dir", stateDir, "-uuid-dir", filepath.Join(dir, "uuid"), "-lock-file", filepath.Join(dir, "lock"),
		"-maintenance-file", filepath.Join(dir, "maintenance"), "-cgroup-root", "",
		"-stats-interval", "200ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
		"-mem-low-water", "0", "-mem-high-water", "0", "-logtostderr", "-v", "1",
	}
	const id = "7c0ffee0-0000-4000-8000-000000000001"
	var pid int
	t.Cleanup(func() {
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})

	start := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s log:\n%s", name, b)
			}
		})
		return cmd
	}
	waitActive := func() {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			for _, i := range srv.NextStats(t).Instances {
				if i.InstanceUUID == id && i.State == payloads.InstanceActive {
					return
				}
			}
		}
		t.Fatal("instance never reported active")
	}

	first := start("first")
	node := srv.NextConnect(t).Peer
	ud := "---\n#cloud-config\n#ciao-process\nruncmd:\n  - [ sleep, \"300\" ]\n...\n"
	cmd := testutil.StartCmd(testutil.StartInstance(id), testutil.StartMemMB(32), testutil.StartVCPUs(1))
	payload, err := payloads.ComposeStart(&payloads.Start{Start: cmd}, ud, payloads.StartMetadata{UUID: id, Hostname: id})
	if err != nil {
		t.Fatal(err)
	}
	srv.SendCommand(t, node, ssntp.START, payload)
	waitActive()
	pid = readPID(t, filepath.Join(stateDir, id))

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	srv.NextDisconnect(t)
	if !alive(pid) {
		t.Fatal("SIGKILL of the launcher killed the instance")
	}

	start("second")
	if again := srv.NextConnect(t).Peer; again != node {
		t.Errorf("restarted launcher is %s, was %s", again, node)
	}
	waitActive()
	if p := readPID(t, filepath.Join(stateDir, id)); p != pid {
		t.Errorf("pid %d after re-adoption, was %d", p, pid)
	}

	// The second launcher still runs and holds the lock; a hard reset is
	// meant for a stopped launcher but only needs the state directory.
	out, err := exec.Command(bin, "-hard-reset", "-state-dir", stateDir, "-cgroup-root", "", "-logtostderr").CombinedOutput()
	if err != nil {
		t.Fatalf("-hard-reset: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("instance survives the hard reset")
		}
		time.Sleep(10 * time.Millisecond) // polling a pid with a deadline
	}
	if _, err := os.Stat(filepath.Join(stateDir, id)); !os.IsNotExist(err) {
		t.Errorf("instance directory survives the hard reset: %v", err)
	}
}

func readPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Handle struct {
			PID int `json:"pid"`
		} `json:"handle"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Handle.PID <= 0 {
		t.Fatalf("state %s: %v", b, err)
	}
	return st.Handle.PID
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
