package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// clearCloud is the Clear Cloud workload every controller seeds (cli.md §8).
const clearCloud = "e35ed972-c46c-4aad-a1e7-ef103ae079a2"

// cluster is a real ciao-scheduler, ciao-controller (with its built-in
// identity) and ciao-launcher -simulation, each its own process.
type cluster struct {
	dir      string
	port     int    // compute API and identity port
	ca       string // PEM file trusted for HTTPS
	cache    string // XDG_CACHE_HOME of every ciao-cli run
	schedPrt int
	certs    *testutil.Certs
}

// goBuild builds a daemon of this module into binDir once per run.
var goBuild = struct {
	sync.Mutex
	bins map[string]string
}{bins: map[string]string{}}

func buildDaemon(t *testing.T, pkg string) string {
	t.Helper()
	goBuild.Lock()
	defer goBuild.Unlock()
	if b, ok := goBuild.bins[pkg]; ok {
		return b
	}
	bin := filepath.Join(binDir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	goBuild.bins[pkg] = bin
	return bin
}

// waitListen polls until something accepts TCP connections on port.
func waitListen(t *testing.T, port int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %d", what, port)
		}
		time.Sleep(20 * time.Millisecond) // poll interval: the daemon is starting
	}
}

// startCluster starts the three daemons, with users admin (project
// admin, role admin), alice (project demo) and carol (projects p1, p2).
func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctlBin := buildDaemon(t, "../ciao-controller")
	schedBin := buildDaemon(t, "../ciao-scheduler")
	launchBin := buildDaemon(t, "../ciao-launcher")
	c := &cluster{dir: t.TempDir(), certs: testutil.TestCerts(t)}
	dir := c.dir
	c.cache = filepath.Join(dir, "cache")
	ca, schedCert := c.certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, ctlCert := c.certs.WriteFiles(t, dir, ssntp.Controller)
	_, agentCert := c.certs.WriteFiles(t, dir, ssntp.AGENT)
	conf := filepath.Join(dir, "configuration.yaml")
	write(t, conf, testutil.Marshal(t, testutil.ConfigureCmd()))
	c.schedPrt = freePort(t)
	testutil.StartCommand(t, dir, "scheduler", schedBin, "-cert", schedCert, "-cacert", ca,
		"-listen", "127.0.0.1:"+strconv.Itoa(c.schedPrt), "-configuration-uri", "file://"+conf, "-logtostderr")
	waitListen(t, c.schedPrt, "scheduler")

	db := filepath.Join(dir, "controller.db")
	for _, u := range [][4]string{{"admin", "giveciaoatry", "admin", "admin"}, {"alice", "apw", "demo", "member"},
		{"carol", "cpw", "p1", "member"}, {"carol", "cpw", "p2", "member"}} {
		cmd := exec.Command(ctlBin, "-database", db, "-create-user", u[0], "-password", "-", "-project", u[2], "-role", u[3])
		cmd.Stdin = strings.NewReader(u[1] + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("create user %s: %v\n%s", u[0], err, out)
		}
	}
	httpsCert, httpsKey := testutil.WriteHTTPSCert(t, dir)
	c.ca = httpsCert
	c.port = freePort(t)
	testutil.StartCommand(t, dir, "controller", ctlBin, "-cacert", ca, "-cert", ctlCert, "-server", "127.0.0.1",
		"-port", strconv.Itoa(c.schedPrt), "-httpscert", httpsCert, "-httpskey", httpsKey, "-compute-host", "127.0.0.1",
		"-compute-port", strconv.Itoa(c.port), "-database", db, "-logtostderr")
	waitListen(t, c.port, "controller")

	state := filepath.Join(dir, "instances")
	testutil.StartCommand(t, dir, "launcher", launchBin, "-simulation", "-osprepare=false", "-cacert", ca, "-cert", agentCert,
		"-server", "127.0.0.1", "-port", strconv.Itoa(c.schedPrt), "-state-dir", state, "-uuid-dir", filepath.Join(dir, "uuid"),
		"-lock-file", "", "-maintenance-file", filepath.Join(dir, "maintenance"), "-cgroup-root", "", "-network=false",
		"-stats-interval", "200ms", "-poll-interval", "50ms", "-resource-interval", "100ms",
		// READY whatever this machine's free memory and disk (the sessions check it)
		"-mem-low-water", "0", "-mem-high-water", "0", "-disk-low-water", "0", "-disk-high-water", "0", "-logtostderr")
	return c
}

// env is the environment of a ciao-cli run as user (cli.md §8 style).
func (c *cluster) env(user, password string, extra ...string) []string {
	return append([]string{"HOME=" + c.dir, "XDG_CACHE_HOME=" + c.cache, "CIAO_CONTROLLER=127.0.0.1",
		"CIAO_COMPUTEPORT=" + strconv.Itoa(c.port), "CIAO_IDENTITY=https://127.0.0.1:" + strconv.Itoa(c.port),
		"CIAO_USERNAME=" + user, "CIAO_PASSWORD=" + password, "CIAO_CA_CERT_FILE=" + c.ca}, extra...)
}

// coverage records which command, sub-command and flags the tests ran.
type coverage struct {
	mu   sync.Mutex
	seen map[string]bool // guarded by mu: "cmd sub", "cmd sub -flag", "-globalflag"
}

// note records one command line (global options first).
func (cv *coverage) note(args []string) {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.seen == nil {
		cv.seen = map[string]bool{}
	}
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	gfs.SetOutput(new(strings.Builder))
	globalFlags(gfs, &config{})
	gfs.Parse(args)
	gfs.Visit(func(f *flag.Flag) { cv.seen["-"+f.Name] = true })
	rest := gfs.Args()
	if len(rest) < 2 {
		return
	}
	key := rest[0] + " " + rest[1]
	cv.seen[key] = true
	for _, a := range rest[2:] {
		if strings.HasPrefix(a, "-") {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			cv.seen[key+" -"+name] = true
		}
	}
}

// missing lists what of the command table was never run.
func (cv *coverage) missing() []string {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	var out []string
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	globalFlags(gfs, &config{})
	gfs.VisitAll(func(f *flag.Flag) {
		if !cv.seen["-"+f.Name] {
			out = append(out, "-"+f.Name)
		}
	})
	for _, c := range commands() {
		for _, s := range c.subs {
			key := c.name + " " + s.name
			if !cv.seen[key] {
				out = append(out, key)
			}
			for _, f := range tableFlags(s) {
				if !cv.seen[key+" -"+f] {
					out = append(out, key+" -"+f)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// runner runs the ciao-cli binary and records coverage.
type runner struct {
	t   *testing.T
	bin string
	cv  *coverage
}

// with returns r reporting to t (a subtest).
func (r runner) with(t *testing.T) runner { r.t = t; return r }

// run runs ciao-cli with env; it returns stdout, stderr and the exit code.
func (r runner) run(env []string, args ...string) result {
	r.t.Helper()
	r.cv.note(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, r.bin, args...)
	c.Env = env
	var o, e strings.Builder
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	res := result{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("ciao-cli %q: %v", args, err)
	}
	return res
}

// ok runs a command that must succeed and returns its stdout.
func (r runner) ok(env []string, args ...string) string {
	r.t.Helper()
	res := r.run(env, args...)
	quiet := res.stderr == "" || slices.Contains(args, "-wait") // -wait reports progress on stderr
	if res.code != 0 || !quiet {
		r.t.Fatalf("ciao-cli %q: exit %d, stderr %q, stdout %q", args, res.code, res.stderr, res.stdout)
	}
	return res.stdout
}

// fails runs a command that must fail with exit code code and a single
// stderr line containing want, and nothing on stdout.
func (r runner) fails(env []string, code int, want string, args ...string) {
	r.t.Helper()
	res := r.run(env, args...)
	// The message is the first line, or the last after a usage text.
	lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
	msg := lines[0]
	if code == 2 && !strings.Contains(msg, want) {
		msg = lines[len(lines)-1]
	}
	if res.code != code || !strings.Contains(msg, want) || res.stdout != "" {
		r.t.Errorf("ciao-cli %q: exit %d (want %d), stdout %q, stderr %q (want one line with %q)", args, res.code, code, res.stdout, res.stderr, want)
	}
	if code != 2 && strings.Count(res.stderr, "\n") != 1 {
		r.t.Errorf("ciao-cli %q: stderr is not one line: %q", args, res.stderr)
	}
	if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "HTTP/1.1") {
		r.t.Errorf("ciao-cli %q: stack or raw HTTP in stderr: %q", args, res.stderr)
	}
}

// poll runs a command until its stdout satisfies done.
func (r runner) poll(env []string, done func(string) bool, args ...string) string {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := r.ok(env, args...)
		if done(out) {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("ciao-cli %q: still %q after 30s", args, out)
		}
		time.Sleep(100 * time.Millisecond) // poll interval: the launcher reports every 200ms
	}
}

func eq(want string) func(string) bool { return func(s string) bool { return s == want } }

var (
	createdRE = regexp.MustCompile(`^Created new instance: ([0-9a-f-]{36})$`)
	tableRE   = regexp.MustCompile(`^# +UUID +Status +Private IP +SSH IP +SSH PORT\n(\d +[0-9a-f-]{36} +\S+ +172\.\S+ +\S+ +\S+\n)+$`)
)

// TestSessions reproduces cli.md §8's example sessions end to end with the
// real binaries, checks the spec's -f templates (§9, §10) and JSON output,
// the login and token cache against the built-in identity, and the bad
// input cases; at the end, every command, sub-command and flag of the
// command table must have been run at least once.
func TestSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the controller, scheduler and launcher binaries")
	}
	r := runner{t: t, bin: buildCLI(t), cv: &coverage{}}
	c := startCluster(t)
	admin := c.env("admin", "giveciaoatry")
	alice := c.env("alice", "apw")

	// The launcher is in the cluster once its STATS reached the controller.
	r.poll(admin, eq("1"), "node", "status", "-f", "{{.TotalNodesReady}}")

	t.Run("session1", func(t *testing.T) { session1(t, r.with(t), c, alice) })
	t.Run("session2", func(t *testing.T) { session2(t, r.with(t), c, admin, alice) })
	t.Run("session3", func(t *testing.T) { session3(t, r.with(t), c, alice) })
	t.Run("login", func(t *testing.T) { login(t, r.with(t), c) })
	t.Run("images", func(t *testing.T) { images(t, r.with(t), c, alice) })
	t.Run("workloads", func(t *testing.T) { workloads(t, r.with(t), c, admin, alice) }) // workload_session_test.go
	t.Run("rest", func(t *testing.T) { rest(t, r.with(t), c, admin, alice) })
	if t.Failed() {
		return
	}
	if m := r.cv.missing(); len(m) > 0 {
		t.Errorf("never run by this test (add a row): %s", strings.Join(m, ", "))
	}
}

// session1: launch, inspect, stop, restart, delete (cli.md §8).
func session1(t *testing.T, r runner, c *cluster, alice []string) {
	wl := r.ok(alice, "workload", "list")
	// python BAT get_all_workloads: "Workload n" and 5 "key: value" lines.
	lines := strings.Split(strings.TrimSuffix(wl, "\n"), "\n")
	found := false
	for i, l := range lines {
		if !strings.HasPrefix(l, "Workload ") {
			continue
		}
		if i+5 >= len(lines) || !strings.HasPrefix(lines[i+1], "\tName: ") || !strings.HasPrefix(lines[i+2], "\tUUID:") ||
			!strings.HasPrefix(lines[i+3], "\tImage UUID: ") || !strings.HasPrefix(lines[i+4], "\tCPUs: ") || !strings.HasSuffix(lines[i+5], " MB") {
			t.Fatalf("workload block at line %d:\n%s", i, wl)
		}
		if lines[i+2] == "\tUUID:"+clearCloud {
			found = true
		}
	}
	if !found {
		t.Fatalf("Clear Cloud not listed:\n%s", wl)
	}
	// Go BAT GetAllWorkloads template (cli.md §10.3).
	var wls []struct {
		ID, Name, ImageUUID string
		CPUs, Mem           int
	}
	out := r.ok(alice, "workload", "list", "-f", `[{{range $i,$v := .}}{{if $i}},{{end}}{"id":"{{$v.ID | js}}","name":"{{$v.Name | js}}","imageuuid":"{{$v.Disk | js}}","cpus":{{$v.Vcpus}},"mem":{{$v.RAM}}}{{end}}]`)
	if err := json.Unmarshal([]byte(out), &wls); err != nil || len(wls) != strings.Count(wl, "Workload ") {
		t.Fatalf("workload list -f: %v %q", err, out)
	}
	if n := r.ok(alice, "workload", "list", "-f", "{{len .}}"); n != strconv.Itoa(len(wls)) {
		t.Errorf("workload list -f '{{len .}}' = %q", n)
	}

	out = r.ok(alice, "instance", "add", "-workload", clearCloud, "-instances", "2")
	var ids []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := createdRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("instance add output %q", out)
		}
		ids = append(ids, m[1])
	}
	if len(ids) != 2 {
		t.Fatalf("instance add: %q", out)
	}
	if out := r.ok(alice, "instance", "list"); !tableRE.MatchString(out) || strings.Count(out, "\n") != 3 {
		t.Errorf("instance list table:\n%s", out)
	}
	for _, id := range ids {
		r.poll(alice, eq("active"), "instance", "show", "-instance", id, "-f", "{{.Status}}")
	}
	// python BAT get_instances: "Instance n" and exactly 7 lines in order.
	detail := r.ok(alice, "instance", "list", "-detail")
	keys := []string{"UUID", "Status", "Private IP", "MAC Address", "CN UUID", "Image UUID", "Tenant UUID"}
	lines = strings.Split(detail, "\n")
	blocks := 0
	for i, l := range lines {
		if !strings.HasPrefix(l, "Instance #") {
			continue
		}
		blocks++
		for k, key := range keys {
			if !strings.HasPrefix(lines[i+1+k], "\t"+key+": ") {
				t.Errorf("instance list -detail line %d is %q, want %s:\n%s", i+1+k, lines[i+1+k], key, detail)
			}
		}
		if v := strings.TrimPrefix(lines[i+2], "\tStatus: "); v != "active" {
			t.Errorf("status %q", v)
		}
	}
	if blocks != 2 {
		t.Errorf("instance list -detail has %d blocks:\n%s", blocks, detail)
	}
	show := r.ok(alice, "instance", "show", "-instance", ids[0])
	if !strings.HasPrefix(show, "\tUUID: "+ids[0]+"\n\tStatus: active\n\tPrivate IP: 172.") || strings.Count(show, "\n") < 7 {
		t.Errorf("instance show:\n%s", show)
	}
	// Go BAT GetInstance template (cli.md §10.3).
	var gi struct {
		HostID    string `json:"host_id"`
		TenantID  string `json:"tenant_id"`
		FlavorID  string `json:"flavor_id"`
		ImageID   string `json:"image_id"`
		Status    string `json:"status"`
		PrivateIP string `json:"private_ip"`
		MAC       string `json:"mac_address"`
	}
	tmpl := `{"host_id":"{{.HostID | js}}","tenant_id":"{{.TenantID | js}}","flavor_id":"{{.Flavor.ID | js}}","image_id":"{{.Image.ID | js}}",` +
		`"status":"{{.Status | js}}","ssh_ip":"{{.SSHIP | js}}","ssh_port":{{.SSHPort}}` +
		`{{if .Addresses.Private}},"private_ip":"{{(index .Addresses.Private 0).Addr | js}}","mac_address":"{{(index .Addresses.Private 0).OSEXTIPSMACMacAddr | js}}"{{end}}}`
	if err := json.Unmarshal([]byte(r.ok(alice, "instance", "show", "--instance", ids[0], "-f", tmpl)), &gi); err != nil ||
		gi.HostID == "" || gi.TenantID == "" || gi.FlavorID != clearCloud || gi.Status != "active" || gi.PrivateIP == "" || gi.MAC == "" {
		t.Errorf("instance show -f: %+v %v", gi, err)
	}
	var js []map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "instance", "list", "-json")), &js); err != nil || len(js) != 2 {
		t.Errorf("instance list -json: %v %v", js, err)
	}

	if out := r.ok(alice, "instance", "stop", "-instance", ids[0]); out != "Instance "+ids[0]+" stopped\n" {
		t.Errorf("stop: %q", out)
	}
	r.poll(alice, eq("exited"), "instance", "show", "-instance", ids[0], "-f", "{{.Status}}")
	if out := r.ok(alice, "instance", "restart", "-instance", ids[0]); out != "Instance "+ids[0]+" restarted\n" {
		t.Errorf("restart: %q", out)
	}
	r.poll(alice, eq("active"), "instance", "show", "-instance", ids[0], "-f", "{{.Status}}")
	if out := r.ok(alice, "instance", "delete", "-all"); !strings.HasPrefix(out, "os-delete all instances for tenant ") {
		t.Errorf("delete -all: %q", out)
	}
	r.poll(alice, eq(""), "instance", "list") // after the node confirms: prints nothing, exit 0
}

// session2: administration (cli.md §8), with the spec's templates.
func session2(t *testing.T, r runner, c *cluster, admin, alice []string) {
	if out := r.ok(admin, "node", "status"); out != "Total Nodes 1\n\tReady 1\n\tFull 0\n\tOffline 0\n\tMaintenance 0\n" {
		t.Errorf("node status:\n%s", out)
	}
	var cs map[string]int
	if err := json.Unmarshal([]byte(r.ok(admin, "node", "status", "-f",
		`{"nodes":{{.TotalNodes}},"ready":{{.TotalNodesReady}},"full":{{.TotalNodesFull}},"offline":{{.TotalNodesOffline}},"maintenance":{{.TotalNodesMaintenance}}}`)), &cs); err != nil ||
		cs["nodes"] != 1 || cs["ready"] != 1 {
		t.Errorf("node status -f: %v %v", cs, err)
	}
	nodes := r.ok(admin, "node", "list", "-compute")
	if !regexp.MustCompile(`^Compute Node 1\n\tUUID: [0-9a-f-]{36}\n\tStatus: READY\n\tLoad: \d+\n\tAvailable/Total memory: \d+/\d+ MB\n\tAvailable/Total disk: \d+/\d+ MB\n\tTotal Instances: 0\n\t\tRunning Instances: 0\n\t\tPending Instances: 0\n\t\tPaused Instances: 0\n$`).MatchString(nodes) {
		t.Errorf("node list -compute:\n%s", nodes)
	}
	// No tenant networking yet, so no CNCI: nothing listed.
	if out := r.ok(admin, "node", "list", "-cnci"); out != "" {
		t.Errorf("node list -cnci: %q", out)
	}
	if out := r.ok(admin, "node", "list", "-cnci", "-f", "{{len .}}"); out != "0" {
		t.Errorf("node list -cnci -f: %q", out)
	}
	if out := r.ok(alice, "tenant", "list", "-quotas"); !regexp.MustCompile(`^Quotas for tenant [0-9a-f-]{36}:\n\tInstances: 0 \| Unlimited\n\tCPUs:      0 \| Unlimited\n\tMemory:    0 \| Unlimited\n\tDisk:      0 \| Unlimited\n$`).MatchString(out) {
		t.Errorf("tenant list -quotas:\n%s", out)
	}
	if out := r.ok(admin, "event", "list", "-all"); !regexp.MustCompile(`^\d+ Ciao event\(s\):\n(\t\[\d+\] .+: (info|warn|error):.+ \(Tenant .*\)\n)+$`).MatchString(out) ||
		!strings.Contains(out, "info:Deleted Instance ") {
		t.Errorf("event list -all:\n%s", out)
	}
	if out := r.ok(admin, "event", "delete"); out != "Deleted all event logs\n" {
		t.Errorf("event delete: %q", out)
	}
	out := r.ok(admin, "instance", "add", "-workload", clearCloud, "-label", "boot10", "-instances", "10")
	if strings.Count(out, "Created new instance: ") != 10 {
		t.Errorf("instance add -label: %q", out)
	}
	t.Cleanup(func() { r.run(admin, "instance", "delete", "-all") }) // even when a check below fails
	// The simulated launchers answer the ten traced STARTs with TraceReports.
	r.poll(admin, eq("1 trace label(s) available\n\tLabel #1: boot10 (10 instances running)\n"), "trace", "list")
	if out := r.ok(admin, "trace", "show", "-label", "boot10"); !regexp.MustCompile(`^Trace data for \[boot10\]:\n\tNumber of instances: 10\n` +
		`\tTotal time elapsed     : \d+\.\d{6} seconds\n\tAverage time elapsed   : \d+\.\d{6} seconds\n` +
		`\tAverage Controller time: \d+\.\d{6} seconds\n\tAverage Scheduler time : \d+\.\d{6} seconds\n` +
		`\tAverage Launcher time  : \d+\.\d{6} seconds\n\tController variance    : \d+\.\d{6} seconds²\n` +
		`\tScheduler variance     : \d+\.\d{6} seconds²\n\tLauncher variance      : \d+\.\d{6} seconds²\n$`).MatchString(out) {
		t.Errorf("trace show:\n%s", out)
	}
	if out := r.ok(admin, "trace", "show", "-label", "boot10", "-f", "{{.NumInstances}}"); out != "10" {
		t.Errorf("trace show -f: %q", out)
	}
	var td map[string]any
	if err := json.Unmarshal([]byte(r.ok(admin, "trace", "show", "-label", "boot10", "-json")), &td); err != nil || td["num_instances"] != 10.0 {
		t.Errorf("trace show -json: %v %v", td, err)
	}
	var tl []map[string]any
	if err := json.Unmarshal([]byte(r.ok(admin, "trace", "list", "-json")), &tl); err != nil || len(tl) != 1 {
		t.Errorf("trace list -json: %v %v", tl, err)
	}
	if out := r.ok(admin, "trace", "list", "-f", "{{range .}}{{.Label}}{{end}}"); out != "boot10" {
		t.Errorf("trace list -f: %q", out)
	}
	r.ok(admin, "instance", "delete", "-all")
	r.poll(admin, eq("0"), "instance", "list", "-f", "{{len .}}")
}

// session3: errors (cli.md §8) and the bad input cases.
func session3(t *testing.T, r runner, c *cluster, alice []string) {
	r.fails(alice, 2, "missing required -workload parameter", "instance", "add")
	id := strings.TrimSpace(r.ok(alice, "instance", "add", "-workload", clearCloud, "-wait", "-timeout", "30s", "-f", "{{range .}}{{.ID}}{{end}}"))
	r.fails(alice, 1, "you may only restart stopped instances", "instance", "restart", "-instance", id)
	r.fails(alice, 1, "HTTP 404", "instance", "show", "-instance", "00000000-0000-4000-8000-000000000000")
	r.fails(alice, 1, "bad -f template", "instance", "show", "-instance", id, "-f", "{{.NoSuchField}}")
	r.fails(alice, 1, "bad -f template", "instance", "list", "-f", "{{")
	r.fails(alice, 1, "HTTP 401", "node", "status") // admin only
	r.fails(c.env("", ""), 1, "missing", "instance", "list")
	r.fails(c.env("alice", "wrong"), 1, "authentication failed", "instance", "list")
	dead := freePort(t)
	r.fails(append(alice, "CIAO_COMPUTEPORT="+strconv.Itoa(dead), "CIAO_IDENTITY=https://127.0.0.1:"+strconv.Itoa(dead)), 1, "cannot reach", "instance", "list")
	r.fails(alice, 1, "volumes are not available", "volume", "list")
	r.ok(alice, "instance", "delete", "-instance", id)
	r.poll(alice, eq(""), "instance", "list")
}

// login: the token cache is per user and project, reused across runs,
// and replaced when expired or refused.
func login(t *testing.T, r runner, c *cluster) {
	os.RemoveAll(c.cache)
	alice := c.env("alice", "apw")
	cacheFiles := func() map[string]string {
		m := map[string]string{}
		fs, _ := filepath.Glob(filepath.Join(c.cache, "ciao-cli", "*.json"))
		for _, f := range fs {
			b, _ := os.ReadFile(f)
			m[f] = string(b)
		}
		return m
	}
	r.ok(alice, "workload", "list", "-f", "{{len .}}")
	first := cacheFiles()
	if len(first) != 1 {
		t.Fatalf("cache after one login: %v", first)
	}
	var file, tok string
	for f, v := range first {
		file, tok = f, v
	}
	r.ok(alice, "instance", "list")
	if got := cacheFiles(); len(got) != 1 || got[file] != tok {
		t.Errorf("second run logged in again: %v", got)
	}
	// Another user and another project each get their own entry.
	r.ok(c.env("admin", "giveciaoatry"), "instance", "list")
	r.fails(c.env("carol", "cpw"), 1, "several projects", "instance", "list")
	r.ok(c.env("carol", "cpw"), "-tenant-name", "p2", "instance", "list")
	if got := cacheFiles(); len(got) != 3 || got[file] != tok {
		t.Errorf("cache per user and project: %v", got)
	}
	// Expired in the cache: log in again.
	var ct map[string]any
	if err := json.Unmarshal([]byte(tok), &ct); err != nil {
		t.Fatal(err)
	}
	ct["expires_at"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
	b, _ := json.Marshal(ct)
	write(t, file, b)
	r.ok(alice, "instance", "list")
	var after map[string]any
	if err := json.Unmarshal([]byte(cacheFiles()[file]), &after); err != nil || after["id"] == ct["id"] {
		t.Errorf("expired token not replaced: %v %v", after, err)
	}
	// Refused by the controller (revoked, or the controller's database
	// was reset): forgotten, then a new login.
	after["id"] = "bogus-token"
	b, _ = json.Marshal(after)
	write(t, file, b)
	r.ok(alice, "instance", "list")
	if err := json.Unmarshal([]byte(cacheFiles()[file]), &after); err != nil || after["id"] == "bogus-token" {
		t.Errorf("refused token not replaced: %v %v", after, err)
	}
	// All options as flags instead of CIAO_* variables; flags win.
	r.ok(c.env("nobody", "nothing", "CIAO_CONTROLLER=192.0.2.1"), "-identity", "https://127.0.0.1:"+strconv.Itoa(c.port),
		"-username", "alice", "-password", "apw", "-controller", "127.0.0.1", "-computeport", strconv.Itoa(c.port),
		"-ca-file", c.ca, "-tenant-name", "demo", "instance", "list")
	tid := strings.TrimSpace(r.ok(alice, "tenant", "list", "-f", "{{range .}}{{.ID}}{{end}}"))
	if out := r.ok(alice, "tenant", "list"); out != "Projects for user alice\n\tUUID: "+tid+"\n\tName: demo\n" {
		t.Errorf("tenant list: %q", out)
	}
	r.ok(alice, "-tenant-id", tid, "instance", "list")
	// A raw token (CIAO_TOKEN / -token) with -tenant-id.
	r.ok([]string{"HOME=" + c.dir, "CIAO_CA_CERT_FILE=" + c.ca}, "-controller", "https://127.0.0.1:"+strconv.Itoa(c.port),
		"-token", after["id"].(string), "-tenant-id", tid, "workload", "list", "-f", "{{len .}}")
}

// images: the image commands against the controller's image API.
func images(t *testing.T, r runner, c *cluster, alice []string) {
	dir := t.TempDir()
	data := filepath.Join(dir, "disk.img")
	write(t, data, []byte("not really a disk"))
	out := r.ok(alice, "image", "add", "-name", "tiny", "-file", data, "-container-format", "bare", "-disk-format", "raw",
		"-min-disk-size", "1", "-min-ram-size", "64", "-visibility", "private", "-protected=false", "-tags", "")
	if !strings.HasPrefix(out, "Created image:\n\tName             [tiny]\n\tSize             [17 bytes]\n\tUUID             [") ||
		!strings.Contains(out, "\tStatus           [active]\n") || !strings.Contains(out, "\tTags             [[]]\n") {
		t.Errorf("image add:\n%s", out)
	}
	var img struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	id := regexp.MustCompile(`UUID +\[([0-9a-f-]{36})\]`).FindStringSubmatch(out)[1]
	if err := json.Unmarshal([]byte(r.ok(alice, "image", "show", "-image", id, "-f", "{{tojson .}}")), &img); err != nil || img.ID != id || img.Status != "active" {
		t.Errorf("image show -f tojson: %+v %v", img, err)
	}
	if err := json.Unmarshal([]byte(r.ok(alice, "image", "show", "-image", id, "-json")), &img); err != nil || img.ID != id {
		t.Errorf("image show -json: %+v %v", img, err)
	}
	if out := r.ok(alice, "image", "list"); !strings.HasPrefix(out, "Image #1\n\tName             [tiny]\n") || !strings.HasSuffix(out, "]\n\n") {
		t.Errorf("image list:\n%s", out)
	}
	if out := r.ok(alice, "image", "list", "-f", "{{len .}}"); out != "1" {
		t.Errorf("image list -f: %q", out)
	}
	var il []map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "image", "list", "-json")), &il); err != nil || len(il) != 1 {
		t.Errorf("image list -json: %v %v", il, err)
	}
	if out := r.ok(alice, "image", "download", "-image", id); out != "not really a disk" {
		t.Errorf("image download: %q", out)
	}
	got := filepath.Join(dir, "got.img")
	r.ok(alice, "image", "download", "-image", id, "-file", got)
	if b, err := os.ReadFile(got); err != nil || string(b) != "not really a disk" {
		t.Errorf("image download -file: %q %v", b, err)
	}
	// An image made in two steps: metadata, then upload.
	out = r.ok(alice, "image", "add", "-name", "two-step", "-id", "11111111-2222-4333-8444-555555555555", "-json")
	if err := json.Unmarshal([]byte(out), &img); err != nil || img.Status != "queued" {
		t.Errorf("image add -json: %q", out)
	}
	r.fails(alice, 1, "has no data yet", "image", "download", "-image", img.ID)
	if out := r.ok(alice, "image", "upload", "-image", img.ID, "-file", data); out != "" {
		t.Errorf("image upload: %q", out)
	}
	if out := r.ok(alice, "image", "add", "-name", "t", "-f", "{{.Name}}"); out != "t" {
		t.Errorf("image add -f: %q", out)
	}
	// The controller's PATCH (7eab55d) takes name and visibility, not
	// tags; a refused patch changes nothing.
	r.fails(alice, 1, `HTTP 400: update image: attribute "tags" is not supported`, "image", "modify", "-image", id, "-name", "renamed", "-visibility", "private", "-tags", "a,b")
	if out := r.ok(alice, "image", "modify", "-image", id, "-name", "x", "-f", "{{.Name}}"); out != "x" {
		t.Errorf("image modify -f: %q", out)
	}
	var renamed struct{ Name string }
	if err := json.Unmarshal([]byte(r.ok(alice, "image", "modify", "-image", id, "-name", "y", "-json")), &renamed); err != nil || renamed.Name != "y" {
		t.Errorf("image modify -json: %+v %v", renamed, err)
	}
	r.fails(alice, 2, "supported image disk formats", "image", "add", "-name", "x", "-disk-format", "floppy")
	r.fails(alice, 1, "only admins publish", "image", "add", "-name", "x", "-visibility", "public")
	if out := r.ok(alice, "image", "delete", "-image", id); out != "Deleted image "+id+"\n" {
		t.Errorf("image delete: %q", out)
	}
	r.fails(alice, 1, "HTTP 404", "image", "show", "-image", id)
}

// rest runs what the sessions above did not: the remaining flags, the
// admin listings, volume's refusals and completion.
func rest(t *testing.T, r runner, c *cluster, admin, alice []string) {
	ids := strings.Fields(r.ok(alice, "instance", "add", "-workload", clearCloud, "-instances", "3", "-wait",
		"-f", "{{range .}}{{.ID}} {{end}}"))
	sort.Strings(ids)
	if len(ids) != 3 {
		t.Fatalf("add -wait: %q", ids)
	}
	if out := r.ok(alice, "instance", "list", "-limit", "1", "-offset", "1", "-f", "{{range .}}{{.ID}}{{end}}"); out != ids[1] {
		t.Errorf("-limit 1 -offset 1: %q, want %s", out, ids[1])
	}
	if out := r.ok(alice, "instance", "list", "-marker", ids[0], "-f", "{{len .}}"); out != "2" {
		t.Errorf("-marker: %q", out)
	}
	var one map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "instance", "show", "-instance", ids[0], "-json")), &one); err != nil || one["id"] != ids[0] {
		t.Errorf("instance show -json: %v %v", one, err)
	}
	tid := strings.TrimSpace(r.ok(alice, "instance", "show", "-instance", ids[0], "-f", "{{.TenantID}}"))
	if out := r.ok(admin, "instance", "list", "-tenant", tid, "-f", "{{len .}}"); out != "3" {
		t.Errorf("-tenant as admin: %q", out)
	}
	if out := r.ok(admin, "instance", "list", "-workload", clearCloud, "-detail"); strings.Count(out, "Instance #") != 3 {
		t.Errorf("-workload -detail:\n%s", out)
	}
	node := strings.TrimSpace(r.ok(alice, "instance", "show", "-instance", ids[0], "-f", "{{.HostID}}"))
	cn := r.ok(admin, "instance", "list", "-cn", node)
	// The node format; the three instances, plus possibly entries with no
	// tenant: the node's latest report of instances the controller does
	// not know (CNCIs, or one deleted just after that report).
	block := regexp.MustCompile(`Instance #\d+\n\tUUID: ([0-9a-f-]{36})\n\tStatus: (\S+)\n\tTenant UUID: (\S*)\n\tIPv4: (\S*)\n\tCPUs used: \d+\n\tMemory used: \d+ MB\n\tDisk used: \d+ MB\n`)
	if rest := block.ReplaceAllString(cn, ""); rest != "" {
		t.Errorf("instance list -cn: not in the node format: %q in\n%s", rest, cn)
	}
	seen := 0
	for _, m := range block.FindAllStringSubmatch(cn, -1) {
		switch {
		case slices.Contains(ids, m[1]) && m[2] == "active" && m[3] == tid && strings.HasPrefix(m[4], "172."):
			seen++
		case m[3] != "":
			t.Errorf("instance list -cn: unexpected %q", m[0])
		}
	}
	if seen != 3 {
		t.Errorf("instance list -cn shows %d of the 3 instances:\n%s", seen, cn)
	}
	if out := r.ok(admin, "node", "show", "-node-id", node, "-f", "{{.TotalRunningInstances}}"); out != "3" {
		t.Errorf("node show: %q", out)
	}
	if out := r.ok(admin, "node", "show", "-node-id", node); !strings.HasPrefix(out, "\tUUID: "+node+"\n\tStatus: READY\n") {
		t.Errorf("node show:\n%s", out)
	}
	r.fails(admin, 1, "HTTP 404", "node", "show", "-cnci", "-node-id", ids[0])
	r.fails(admin, 1, "HTTP 404", "node", "show", "-cnci", "-node-id", ids[0], "-json")
	r.fails(admin, 2, "give -compute or -cnci", "node", "list")
	var nl []map[string]any
	if err := json.Unmarshal([]byte(r.ok(admin, "node", "list", "-compute", "-json")), &nl); err != nil || len(nl) != 1 {
		t.Errorf("node list -json: %v %v", nl, err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.ok(admin, "node", "status", "-json")), &st); err != nil || st["total_nodes"] != 1.0 {
		t.Errorf("node status -json: %v %v", st, err)
	}
	if out := r.ok(alice, "tenant", "list", "-quotas", "-f", "{{.InstanceUsage}}"); out != "3\n" {
		t.Errorf("quotas -f: %q", out)
	}
	var q map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "tenant", "list", "-quotas", "-json")), &q); err != nil || q["instances_usage"] != 3.0 {
		t.Errorf("quotas -json: %v %v", q, err)
	}
	// quotas: a limit set by the admin is enforced (403) until lifted.
	if out := r.ok(alice, "quotas", "list"); out != "Quotas for tenant "+tid+":\n\ttenant-instances-quota: 3 of unlimited\n"+
		"\ttenant-vcpu-quota: 6 of unlimited\n\ttenant-mem-quota: 384 of unlimited\n\ttenant-disk-quota: 240 of unlimited\n" {
		t.Errorf("quotas list:\n%s", out)
	}
	r.fails(alice, 1, "HTTP 401", "quotas", "update", "-for-tenant", tid, "-name", "tenant-instances-quota", "-value", "3")
	if out := r.ok(admin, "quotas", "update", "-for-tenant", tid, "-name", "tenant-instances-quota", "-value", "3"); out !=
		"Updated quota tenant-instances-quota of tenant "+tid+" to 3\n" {
		t.Errorf("quotas update: %q", out)
	}
	r.fails(alice, 1, "HTTP 403", "instance", "add", "-workload", clearCloud)
	if out := r.ok(admin, "quotas", "list", "-for-tenant", tid, "-f", `{{range .}}{{if eq .Name "tenant-instances-quota"}}{{.Value}}{{end}}{{end}}`); out != "3" {
		t.Errorf("quotas list -for-tenant -f: %q", out)
	}
	var nq []map[string]string
	if err := json.Unmarshal([]byte(r.ok(admin, "quotas", "update", "-for-tenant", tid, "-name", "tenant-instances-quota", "-value", "unlimited", "-json")), &nq); err != nil || len(nq) != 4 {
		t.Errorf("quotas update -json: %v %v", nq, err)
	}
	if err := json.Unmarshal([]byte(r.ok(alice, "quotas", "list", "-json")), &nq); err != nil || nq[0]["value"] != "unlimited" {
		t.Errorf("quotas list -json: %v %v", nq, err)
	}
	r.fails(admin, 1, "HTTP 400", "quotas", "update", "-for-tenant", tid, "-name", "tenant-cookies-quota", "-value", "1", "-f", "{{.}}")

	// The launcher samples usage every 100ms: history appears.
	usage := r.poll(alice, func(s string) bool { return strings.HasPrefix(s, "Usage for tenant "+tid+":\n\t") }, "tenant", "list", "-resources")
	if !regexp.MustCompile(`(?m)^\t.+: \[\d+ CPUs\] \[\d+ MB memory\] \[\d+ MB disk\]$`).MatchString(usage) {
		t.Errorf("tenant list -resources:\n%s", usage)
	}
	if out := r.ok(admin, "tenant", "list", "-all", "-f", "{{len .}}"); out == "0" {
		t.Errorf("tenant list -all: %q", out)
	}
	if out := r.ok(admin, "tenant", "list", "-all"); !strings.HasPrefix(out, "Tenant [1]\n\tUUID: ") {
		t.Errorf("tenant list -all:\n%s", out)
	}
	var ev []map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "event", "list", "-json")), &ev); err != nil {
		t.Errorf("event list -json: %v", err)
	}
	if out := r.ok(admin, "event", "list", "-tenant-id", tid, "-f", "{{range .}}{{.TenantID}}{{end}}"); strings.Trim(out, tid) != "" {
		t.Errorf("event list -tenant-id: %q", out)
	}
	if out := r.ok(alice, "workload", "list", "-json"); !strings.Contains(out, clearCloud) {
		t.Errorf("workload list -json: %q", out)
	}
	if out := r.ok(alice, "instance", "delete", "-instance", ids[0]); out != "Deleted instance: "+ids[0]+"\n" {
		t.Errorf("delete: %q", out)
	}
	r.ok(alice, "instance", "delete", "-all")
	r.poll(alice, eq(""), "instance", "list")
	if out := r.ok(alice, "instance", "add", "-workload", clearCloud, "-json", "-label", "j", "-timeout", "1m"); !strings.Contains(out, `"id"`) {
		t.Errorf("add -json: %q", out)
	}
	r.ok(alice, "instance", "delete", "-all")

	// The 2016 glog flags are accepted; -v 2 logs the calls on stderr
	// and leaves stdout alone (C8).
	res := r.run(alice, "-v", "2", "-logtostderr", "-alsologtostderr=false", "-log_dir", "/nonexistent", "-log_backtrace_at", "",
		"-stderrthreshold", "INFO", "-vmodule", "x=1", "workload", "list", "-f", "{{len .}}")
	if res.code != 0 || res.stdout == "" || strings.Contains(res.stdout, "GET") ||
		!strings.Contains(res.stderr, "ciao-cli: GET https://127.0.0.1:"+strconv.Itoa(c.port)+"/v2.1/") {
		t.Errorf("-v 2: %+v", res)
	}

	// Last, as it takes the only node out of service: evacuate.
	r.ok(alice, "instance", "add", "-workload", clearCloud, "-instances", "2", "-wait")
	r.fails(alice, 1, "HTTP 401", "node", "evacuate", "-node-id", node)
	r.fails(admin, 1, "HTTP 404", "node", "evacuate", "-node-id", ids[0])
	if out := r.ok(admin, "node", "evacuate", "-node-id", node); out != "Evacuating node "+node+"\n" {
		t.Errorf("node evacuate: %q", out)
	}
	r.poll(admin, eq("MAINTENANCE"), "node", "show", "-node-id", node, "-f", "{{.Status}}")
	r.poll(alice, eq(""), "instance", "list")
	if out := r.ok(admin, "node", "status"); out != "Total Nodes 1\n\tReady 0\n\tFull 0\n\tOffline 0\n\tMaintenance 1\n" {
		t.Errorf("node status after evacuate:\n%s", out)
	}

	// volume: every sub-command refuses clearly, without credentials.
	for _, args := range [][]string{
		{"volume", "add", "-size", "2", "-name", "v", "-description", "d", "-source", "x"},
		{"volume", "show", "-volume", "v"}, {"volume", "update", "-volume", "v", "-name", "n", "-description", "d"},
		{"volume", "delete", "-volume", "v"}, {"volume", "detach", "-volume", "v"},
		{"volume", "attach", "-volume", "v", "-instance", "i", "-mountpoint", "/m", "-mode", "ro"},
	} {
		r.fails(nil, 1, "volumes are not available", args...)
	}
	for _, sh := range []string{"bash", "zsh"} {
		if out := r.ok(nil, "completion", sh); !strings.Contains(out, "ciao-cli") {
			t.Errorf("completion %s: %q", sh, out)
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprint("cluster in ", c.dir))
	}
}
