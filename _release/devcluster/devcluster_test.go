package devcluster

import (
	"context"
	"encoding/csv"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

func testConfig(t *testing.T) Config {
	c := NewConfig()
	c.StateDir = filepath.Join(t.TempDir(), "state")
	return c
}

func TestConfigValidate(t *testing.T) {
	ok := NewConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"relative state":  func(c *Config) { c.StateDir = "var/lib/x" },
		"root state":      func(c *Config) { c.StateDir = "/" },
		"top-level state": func(c *Config) { c.StateDir = "/var" },
		"no host":         func(c *Config) { c.Host = "" },
		"port 0":          func(c *Config) { c.SchedulerPort = 0 },
		"port 70000":      func(c *Config) { c.APIPort = 70000 },
		"same ports":      func(c *Config) { c.APIPort = c.SchedulerPort },
		"network maybe":   func(c *Config) { c.Network = "maybe" },
		"mode docker":     func(c *Config) { c.Mode = "docker" },
		"accel xen":       func(c *Config) { c.Accel = "xen" },
		"no timeout":      func(c *Config) { c.Timeout = 0 },
		"net prefix":      func(c *Config) { c.NetPrefix = "Ciao-Dev" },
		"long net prefix": func(c *Config) { c.NetPrefix = "abcdefghijk" },
	} {
		t.Run(name, func(t *testing.T) {
			c := NewConfig()
			mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
		})
	}
}

func TestDaemonsKeepEverythingInTheStateDir(t *testing.T) {
	c := testConfig(t)
	ds := c.Daemons(false)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
		if !strings.HasPrefix(d.Path, c.StateDir+"/bin/") {
			t.Errorf("%s runs %s, outside the state directory", d.Name, d.Path)
		}
		for i, a := range d.Args {
			if strings.HasPrefix(a, "/") && !strings.HasPrefix(a, c.StateDir+"/") {
				t.Errorf("%s: argument %s (after %s) is outside the state directory", d.Name, a, d.Args[i-1])
			}
		}
		if slices.Contains(d.Args, "-network") {
			t.Errorf("%s: -network with networking off", d.Name)
		}
	}
	if !slices.Equal(names, DaemonNames()) {
		t.Fatalf("daemons %v, want %v", names, DaemonNames())
	}
	// Two launchers on one machine must not share state.
	cl, nl := strings.Join(ds[2].Args, " "), strings.Join(ds[3].Args, " ")
	for _, flag := range []string{"-state-dir", "-uuid-dir", "-lock-file", "-maintenance-file"} {
		if argAfter(ds[2].Args, flag) == argAfter(ds[3].Args, flag) {
			t.Errorf("both launchers have %s %s", flag, argAfter(ds[2].Args, flag))
		}
	}
	if !ds[2].KeepChildren || !ds[3].KeepChildren || ds[0].KeepChildren {
		t.Error("only launchers keep their children on stop")
	}
	if !strings.Contains(cl, "-network=false") || !strings.Contains(nl, "netagent.pem") {
		t.Errorf("launcher args: %s / %s", cl, nl)
	}
	on := c.Daemons(true)
	if !slices.Contains(on[1].Args, "-network") || !strings.Contains(strings.Join(on[2].Args, " "), "-network=true") {
		t.Error("networking on is not passed to the controller and launchers")
	}
	if argAfter(on[2].Args, "-net-namespace") != "/run/netns/ciaodev-cn" || argAfter(on[3].Args, "-net-namespace") != "/run/netns/ciaodev-nn" ||
		argAfter(on[3].Args, "-cnci-agent") != c.Bin("ciao-cnci-agent") || argAfter(on[2].Args, "-cnci-agent") != "" {
		t.Errorf("networking flags: compute %q, network %q", on[2].Args, on[3].Args)
	}
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func TestCertificatesCarryTheirRolesAndAreKeptOnRerun(t *testing.T) {
	c := testConfig(t)
	if err := c.writeCerts(); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(c.caCert())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ssntp.Role{"scheduler": ssntp.SCHEDULER | ssntp.SERVER, "controller": ssntp.Controller,
		"agent": ssntp.AGENT, "netagent": ssntp.NETAGENT, "cnciagent": ssntp.CNCIAGENT}
	before := map[string][]byte{}
	for name, role := range want {
		b, err := os.ReadFile(c.roleCert(name))
		if err != nil {
			t.Fatal(err)
		}
		before[name] = b
		got, err := certs.Verify(ca, b)
		if err != nil || got != role {
			t.Errorf("%s: role %v, %v; want %v", name, got, err, role)
		}
	}
	if err := c.writeCerts(); err != nil {
		t.Fatal(err)
	}
	for name, b := range before {
		if a, _ := os.ReadFile(c.roleCert(name)); string(a) != string(b) {
			t.Errorf("%s changed on the second run", name)
		}
	}
}

func TestEnvFileRoundTrip(t *testing.T) {
	c := testConfig(t)
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cr := Credentials{AdminPassword: `a"b$c'd`, DemoPassword: "pw", AdminProject: "p1", DemoProject: "p2"}
	if err := c.writeEnvFiles(cr); err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnvFile(c.EnvFile("admin"))
	if err != nil {
		t.Fatal(err)
	}
	want := c.cliEnv("admin", `a"b$c'd`, "p1")
	if !slices.Equal(env, want) {
		t.Fatalf("env %q, want %q", env, want)
	}
	out, err := exec.Command("sh", "-c", ". "+c.EnvFile("admin")+` && printf %s "$CIAO_PASSWORD"`).Output()
	if err != nil || string(out) != `a"b$c'd` {
		t.Fatalf("sh sees %q, %v", out, err)
	}
	if fi, err := os.Stat(c.EnvFile("demo")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo.env: %v %v, want mode 0600", fi, err)
	}
}

func TestClusterConfigurationIsValid(t *testing.T) {
	c := testConfig(t)
	b, err := c.ClusterConfiguration(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"configure:", "storage_uri: " + c.configFile(), "compute_port: 8774", "url: https://localhost:8774"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("configuration lacks %q:\n%s", want, b)
		}
	}
}

// TestWorkloadFilesAreThe2016Format writes the workload definition files
// twice (a rerun rewrites them identically) and reads them back as the
// controller does (controller.md §7.4: '#' comments, spaces after commas,
// CSV quoting): 8 fields a template row, 5 a resource row, every dev
// workload and the CNCI present, each with its cloud-init file, and the
// controller started with both flags. The controller's own loader is
// tested in its package; make acceptance's TestWorkloads sees them
// through the API.
func TestWorkloadFilesAreThe2016Format(t *testing.T) {
	c := testConfig(t)
	for range 2 {
		if err := c.writeWorkloadFiles(); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string, fields int) [][]string {
		f, err := os.Open(filepath.Join(c.tablesDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := csv.NewReader(f)
		r.Comment, r.TrimLeadingSpace, r.FieldsPerRecord = '#', true, fields
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return rows
	}
	tmpl := read("workload_template.csv", 8)
	res := read("workload_resources.csv", 5)
	byID := map[string][]string{}
	for _, r := range tmpl {
		byID[r[0]] = r
	}
	for _, w := range DevWorkloads() {
		r, ok := byID[w.ID]
		if !ok {
			t.Fatalf("workload_template.csv lacks %s", w.ID)
		}
		if r[1] != w.Description || r[3] != w.FWType || r[4] != w.VMType || r[5] != w.ImageID || r[6] != w.ImageName || r[7] != "0" {
			t.Errorf("row of %s: %q", w.ID, r)
		}
		y, err := os.ReadFile(filepath.Join(c.workloadsDir(), r[2]))
		if err != nil || string(y) != w.Config {
			t.Errorf("cloud-init of %s: %q, %v", w.ID, y, err)
		}
		want := map[string]string{"2": itoa(w.VCPUs), "3": itoa(w.MemMB), "4": itoa(w.DiskMB)}
		for _, x := range res {
			if x[0] == w.ID {
				if want[x[1]] != x[2] || x[4] != "1" {
					t.Errorf("resource %q of %s, want %v", x, w.ID, want)
				}
				delete(want, x[1])
			}
		}
		if len(want) > 0 {
			t.Errorf("%s lacks resources %v", w.ID, want)
		}
	}
	if r := byID[CNCIWorkload]; r == nil || r[1] != "CNCI" || r[7] != "1" {
		t.Errorf("CNCI row %q", r)
	}
	nn := false
	for _, x := range res {
		nn = nn || (x[0] == CNCIWorkload && x[1] == "5" && x[2] == "1")
	}
	if !nn {
		t.Error("the CNCI workload has no network_node resource")
	}
	args := strings.Join(c.Daemons(true)[1].Args, " ")
	if !strings.Contains(args, "-tables_init_path "+c.tablesDir()) || !strings.Contains(args, "-workloads_path "+c.workloadsDir()) {
		t.Errorf("controller arguments lack the workload directories: %s", args)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSupervisorRestartsAKilledDaemonAndStopsAll(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	status := filepath.Join(dir, "status.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, SupervisorConfig{LogDir: dir, StatusFile: status, Daemons: []Daemon{
			{Name: "a", Path: sleep, Args: []string{"1000"}},
			{Name: "b", Path: sleep, Args: []string{"1000"}, KeepChildren: true},
		}})
	}()
	pidOf := func(name string) int {
		st, err := ReadStatus(status)
		if err != nil {
			return 0
		}
		return st.Daemons[name].PID
	}
	waitFor := func(what string, f func() bool) {
		t.Helper()
		if err := poll(context.Background(), 20*time.Second, func() (bool, error) { return f(), nil }); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitFor("both started", func() bool { return pidOf("a") != 0 && pidOf("b") != 0 })
	first := pidOf("a")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor("a restarted", func() bool { p := pidOf("a"); return p != 0 && p != first })
	st, _ := ReadStatus(status)
	if st.Daemons["a"].Starts != 2 || st.Daemons["a"].LastExit != "signal: killed" {
		t.Errorf("status of a: %+v", st.Daemons["a"])
	}
	second, b := pidOf("a"), pidOf("b")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{second, b} {
		if processAlive(pid) {
			t.Errorf("process %d still runs after Supervise returned", pid)
		}
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "a.log")); strings.Count(string(log), "supervisor: starting") != 2 {
		t.Errorf("a.log:\n%s", log)
	}
}

func TestSuperviseNeedsDaemons(t *testing.T) {
	if err := Supervise(context.Background(), SupervisorConfig{LogDir: t.TempDir()}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Supervise with no daemons = %v", err)
	}
}

func TestLogScans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.log")
	log := "=== run 1\nI1127 07:00:00.000000 1 launcher.go:1] launcher: connected to scheduler x\n=== run 2\nI1127 07:00:05.000000 1 x] starting\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if lastRunLogged(path, "connected to scheduler") {
		t.Error("the second run has not connected")
	}
	if !lastRunLogged(path, "starting") {
		t.Error("the second run logged starting")
	}
	at := time.Date(time.Now().Year(), 11, 27, 7, 0, 0, 0, time.Local)
	if !connectedSince(path, at) || connectedSince(path, at.Add(time.Second)) {
		t.Error("connectedSince misreads the glog time stamp")
	}
}
