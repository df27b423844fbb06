package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker/dockertest"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

func TestMain(m *testing.M) {
	// goleak.VerifyTestMain exits, so the built binary is removed here.
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
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
	cfg, _, err = parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-cacert", "ca.pem", "-cert", "cert.pem", "-net-namespace", "/var/run/netns/cn1", "-tunnel", "gre",
		"-compute-ip", "10.0.0.5", "-cnci-agent", "/bin/agent", "-cnci-cert", "cnci.pem", "-cnci-ips", "10.0.0.200/29",
	})
	if err != nil || !cfg.Network || cfg.NetNS != "/var/run/netns/cn1" || cfg.Tunnel != networking.TunnelGRE ||
		cfg.ComputeIP.String() != "10.0.0.5" || cfg.CNCI.Agent != "/bin/agent" || cfg.CNCI.CACert != "ca.pem" ||
		cfg.CNCI.Pool.String() != "10.0.0.200/29" || cfg.CNCI.Prefix != 24 {
		t.Errorf("networking flags: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"-tunnel", "ipip"}, {"-compute-ip", "nope"}, {"-cnci-ips", "10.0.0.0/33"},
		{"-cnci-agent", "/bin/agent"}, {"-cnci-agent", "/bin/agent", "-cnci-cert", "c"}} {
		if _, _, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append([]string{"-cacert", "c", "-cert", "c"}, bad...)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, o, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-hard-reset"}); err != nil || !o.hardReset {
		t.Errorf("-hard-reset: %v", err)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildOut  []byte
)

// launcherBinary builds ciao-launcher once per test binary, into a
// directory removed by TestMain.
func launcherBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ciao-launcher-bin")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		builtBin = filepath.Join(dir, "ciao-launcher")
		buildOut, buildErr = exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return builtBin
}

// binDir holds the built binary; TestMain removes it.
var binDir string

// sigkillCase is one backend's run of testBinarySIGKILL.
type sigkillCase struct {
	args    []string // launcher flags selecting and configuring the backend
	start   func(t *testing.T, id string) []byte
	running func(h driver.Handle) bool // the instance the handle names runs
}

// testBinarySIGKILL builds ciao-launcher, starts an instance through it,
// SIGKILLs it, starts it again and checks that it re-adopts the running
// instance (same handle, reported active); then -hard-reset, run while the
// second launcher still holds the lock (it only needs the state
// directory), removes the instance and its state.
func testBinarySIGKILL(t *testing.T, dir, id string, tc sigkillCase) {
	bin := launcherBinary(t)
	c := testutil.ConfigureCmd()
	c.Configure.Launcher.DiskLimit, c.Configure.Launcher.MemoryLimit = false, true
	conf := testutil.Marshal(t, c)
	srv := testutil.NewFakeServer(t, testutil.WithConfig(func(sc *ssntp.Config) { sc.ClusterConfig = conf }))
	ca, cert := testutil.TestCerts(t).WriteFiles(t, dir, ssntp.AGENT)
	stateDir := filepath.Join(dir, "instances")
	args := append([]string{
		"-cacert", ca, "-cert", cert, "-server", "localhost", "-port", strconv.Itoa(srv.Port()),
		"-state-dir", stateDir, "-uuid-dir", filepath.Join(dir, "uuid"), "-lock-file", filepath.Join(dir, "lock"),
		"-maintenance-file", filepath.Join(dir, "maintenance"), "-cgroup-root", "",
		"-stats-interval", "200ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
		"-mem-low-water", "0", "-mem-high-water", "0", "-logtostderr", "-v", "1", "-osprepare=false",
	}, tc.args...)

	start := func(name string) *exec.Cmd { return testutil.StartCommand(t, dir, name, bin, args...) }
	waitActive := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
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
	srv.SendCommand(t, node, ssntp.START, tc.start(t, id))
	waitActive()
	h := readHandle(t, filepath.Join(stateDir, id))

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	srv.NextDisconnect(t)
	if !tc.running(h) {
		t.Fatal("SIGKILL of the launcher killed the instance")
	}

	start("second")
	if again := srv.NextConnect(t).Peer; again != node {
		t.Errorf("restarted launcher is %s, was %s", again, node)
	}
	waitActive()
	if h2 := readHandle(t, filepath.Join(stateDir, id)); h2.PID != h.PID || h2.ID != h.ID {
		t.Errorf("handle %+v after re-adoption, was %+v", h2, h)
	}

	reset := append([]string{"-hard-reset", "-state-dir", stateDir, "-cgroup-root", "", "-logtostderr"}, tc.args...)
	out, err := exec.Command(bin, reset...).CombinedOutput()
	if err != nil {
		t.Fatalf("-hard-reset: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tc.running(h) {
		if time.Now().After(deadline) {
			t.Fatal("instance survives the hard reset")
		}
		time.Sleep(10 * time.Millisecond) // polling the instance with a deadline
	}
	if _, err := os.Stat(filepath.Join(stateDir, id)); !os.IsNotExist(err) {
		t.Errorf("instance directory survives the hard reset: %v", err)
	}
}

// TestBinarySIGKILLReadopt: a process instance survives a SIGKILLed
// launcher.
func TestBinarySIGKILLReadopt(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "instances")
	const id = "7c0ffee0-0000-4000-8000-000000000001"
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(stateDir, id, "state")); err == nil {
			if pid := pidOf(b); pid > 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	testBinarySIGKILL(t, dir, id, sigkillCase{
		start: func(t *testing.T, id string) []byte {
			ud := "---\n#cloud-config\n#ciao-process\nruncmd:\n  - [ sleep, \"300\" ]\n...\n"
			return startPayload(t, id, ud, testutil.StartMemMB(32))
		},
		running: func(h driver.Handle) bool { return alive(h.PID) },
	})
}

// TestBinarySIGKILLDocker: a container survives a SIGKILLed launcher, and
// -hard-reset removes it from the engine.
func TestBinarySIGKILLDocker(t *testing.T) {
	d := dockertest.NewDriver(t, nil)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "instances")
	dockertest.CleanupRoot(t, stateDir)
	// Container names derive from the uuid and the engine is shared:
	// a fresh one keeps concurrent runs apart.
	id := uuid.Generate().String()
	testBinarySIGKILL(t, dir, id, sigkillCase{
		args: []string{"-network=false"},
		start: func(t *testing.T, id string) []byte {
			return startPayload(t, id, "---\n#cloud-config\nruncmd:\n  - [ /bin/sleep, \"300\" ]\n...\n",
				testutil.StartVMType(payloads.HypervisorDocker), func(c *payloads.StartCmd) { c.DockerImage = dockertest.Image })
		},
		running: func(h driver.Handle) bool {
			ok, err := d.Running(context.Background(), h)
			return ok || err != nil
		},
	})
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+docker.LabelRoot+"="+stateDir).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("containers left after the hard reset: %v %s", err, out)
	}
}

// TestBinarySIGKILLQEMU: a VM (TCG, user-mode networking) survives a
// SIGKILLed launcher, and -hard-reset kills its qemu.
func TestBinarySIGKILLQEMU(t *testing.T) {
	img := testutil.BuildVMImage(t)
	dir := t.TempDir()
	imageDir := filepath.Join(dir, "images")
	const (
		id    = "7c0ffee0-0000-4000-8000-000000000002"
		image = "7c0ffee0-0000-4000-8000-0000000000f1"
	)
	testutil.InstallVMImage(t, img, imageDir, image)
	var qemuPID int
	t.Cleanup(func() {
		if qemuPID > 0 {
			_ = syscall.Kill(qemuPID, syscall.SIGKILL)
		}
	})
	testBinarySIGKILL(t, dir, id, sigkillCase{
		args: []string{"-network=false", "-image-dir", imageDir, "-accel", "tcg"},
		start: func(t *testing.T, id string) []byte {
			return startPayload(t, id, "---\n#cloud-config\n...\n", testutil.StartMemMB(256),
				func(c *payloads.StartCmd) { c.ImageUUID = image })
		},
		running: func(h driver.Handle) bool {
			qemuPID = h.PID
			return alive(h.PID)
		},
	})
}

// startPayload is a START for instance id with the given user data.
func startPayload(t *testing.T, id, userData string, opts ...testutil.StartOption) []byte {
	t.Helper()
	opts = append([]testutil.StartOption{testutil.StartInstance(id), testutil.StartVCPUs(1)}, opts...)
	b, err := payloads.ComposeStart(&payloads.Start{Start: testutil.StartCmd(opts...)}, userData, payloads.StartMetadata{UUID: id, Hostname: id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readHandle reads the driver handle from an instance's state file.
func readHandle(t *testing.T, dir string) driver.Handle {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Handle driver.Handle `json:"handle"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Handle.Driver == "" {
		t.Fatalf("state %s: %v", b, err)
	}
	return st.Handle
}

// pidOf is the handle pid in a state file, 0 if none.
func pidOf(state []byte) int {
	var st struct {
		Handle driver.Handle `json:"handle"`
	}
	_ = json.Unmarshal(state, &st)
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
