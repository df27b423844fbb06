package main

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/identity"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"golang.org/x/crypto/bcrypt"
)

// decodeAll decodes each raw message into the matching v.
func decodeAll(t *testing.T, raw []json.RawMessage, vs ...any) {
	t.Helper()
	if len(raw) != len(vs) {
		t.Fatalf("%d JSON outputs, want %d: %s", len(raw), len(vs), raw)
	}
	for i, v := range vs {
		if err := json.Unmarshal(raw[i], v); err != nil {
			t.Fatalf("output %d: %v in %s", i, err, raw[i])
		}
	}
}

// osClient runs the openstack CLI with a fixed environment.
type osClient struct {
	t   *testing.T
	bin string
	env []string
}

// run runs one command and returns stdout, stderr and the exit code.
func (c osClient) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return o.String(), e.String(), ee.ExitCode()
	case err != nil:
		c.t.Fatalf("openstack %q: %v", args, err)
	}
	return o.String(), e.String(), 0
}

// fatal fails the test with the command's output and, to show the
// requests behind the failure, the tail of a --debug rerun.
func (c osClient) fatal(args []string, code int, out, errOut string) {
	c.t.Helper()
	_, dbg, _ := c.run(append([]string{"--debug"}, args...)...)
	if len(dbg) > 6000 {
		dbg = "..." + dbg[len(dbg)-6000:]
	}
	c.t.Fatalf("openstack %s: exit %d\nstdout: %s\nstderr: %s\n--debug rerun:\n%s", strings.Join(args, " "), code, out, errOut, dbg)
}

// json runs a command with -f json and decodes its output into v.
func (c osClient) json(v any, args ...string) {
	c.t.Helper()
	args = append(args, "-f", "json")
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.fatal(args, code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("openstack %s: %v in %q (stderr %q)", strings.Join(args, " "), err, out, errOut)
	}
}

// batch runs commands in one interactive openstack process (one Python
// start instead of one per command) and returns what each printed as
// JSON, in order: every command but the set ones gets -f json. The
// commands must all succeed unless wantErr is set, in which case stderr
// must contain it.
func (c osClient) batch(wantErr string, cmds ...string) []json.RawMessage {
	c.t.Helper()
	var in strings.Builder
	for _, cmd := range cmds {
		in.WriteString(cmd)
		if !strings.HasPrefix(cmd, "quota set") && !strings.HasPrefix(cmd, "image set") {
			in.WriteString(" -f json")
		}
		in.WriteString("\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin)
	cmd.Env, cmd.Stdin = c.env, strings.NewReader(in.String())
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("openstack batch %q: %v\nstderr: %s", cmds, err, e.String())
	}
	if wantErr == "" && e.Len() > 0 || wantErr != "" && !strings.Contains(e.String(), wantErr) {
		c.t.Fatalf("openstack batch %q: stderr %q, want %q\nstdout: %s", cmds, e.String(), wantErr, o.String())
	}
	var out []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(o.String()))
	for {
		var m json.RawMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			c.t.Fatalf("openstack batch %q: %v in %q", cmds, err, o.String())
		}
		out = append(out, m)
	}
}

// ok runs a command that prints nothing on success.
func (c osClient) ok(args ...string) {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 || strings.TrimSpace(out) != "" {
		c.fatal(args, code, out, errOut)
	}
}

// TestOpenStackClient drives the controller with the real OpenStack
// command-line client (python3-openstackclient), unchanged: it logs in
// against the built-in Keystone subset over HTTPS, finds compute and
// image in the catalog, and runs the token, project, flavor, image (with
// upload, download, rename and properties) and server (create, show,
// stop, start, delete) commands a user runs, finds and deletes a server
// by name (whose usage stays), reads quotas, limits, usage and key pairs
// as a member, and,
// as an admin, sets a project's quotas (named), shows hypervisors and
// their statistics, and lists every project's usage and servers. The
// controller runs in-process with the real ciao-scheduler binary and a
// fake launcher. Between commands the test checks state through the API
// itself, and commands that do not change what the next one needs run
// in one interactive openstack process (batch), to keep the
// slow-starting CLI's runs few.
func TestOpenStackClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the openstack CLI and ciao-scheduler")
	}
	bin, err := exec.LookPath("openstack")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openstack CLI missing (scripts/install-test-deps.sh installs python3-openstackclient)")
		}
		t.Skip("openstack CLI missing (apt-get install python3-openstackclient)")
	}
	sch := startScheduler(t)
	dir, port := sch.dir, sch.port

	httpsCert, httpsKey := testutil.WriteHTTPSCert(t, dir)
	cfg := sch.controllerConfig(t)
	cfg.PlainHTTP, cfg.HTTPSCert, cfg.HTTPSKey = false, httpsCert, httpsKey
	cfg.ImageDir = filepath.Join(dir, "images")
	var project string
	cfg.seed = func(ctx context.Context, s datastore.Store) error {
		ids := s.(datastore.IdentityStore)
		if err := identity.Bootstrap(ctx, ids, "alice", "wonderland", "demo", "member", bcrypt.MinCost); err != nil {
			return err
		}
		if err := identity.Bootstrap(ctx, ids, "root", "rootpw", "admin", "admin", bcrypt.MinCost); err != nil {
			return err
		}
		p, err := ids.ProjectByName(ctx, identity.DefaultDomainID, "demo")
		project = p.ID
		return err
	}
	base := "https://" + startController(t, cfg).String()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(httpsCert)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("reading %s: %v", httpsCert, err)
	}
	httpsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(httpsClient.CloseIdleConnections)
	agent := testutil.NewFakeAgent(t, port, ssntp.AGENT, testutil.WithAutoReady(4096))

	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8",
		"OS_AUTH_URL=" + base + "/v3", "OS_IDENTITY_API_VERSION=3", "OS_CACERT=" + httpsCert,
		"OS_USERNAME=alice", "OS_PASSWORD=wonderland", "OS_PROJECT_NAME=demo",
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default", "OS_REGION_NAME=RegionOne"}
	osc := osClient{t: t, bin: bin, env: env}
	start := time.Now()

	var tok struct {
		ID        string `json:"id"`
		ProjectID string `json:"project_id"`
		UserID    string `json:"user_id"`
	}
	osc.json(&tok, "token", "issue")
	if tok.ID == "" || tok.ProjectID != project || tok.UserID == "" {
		t.Errorf("token issue: %+v, want project %s", tok, project)
	}
	var projects []struct{ ID, Name string }
	osc.json(&projects, "project", "list")
	if len(projects) != 1 || projects[0].ID != project || projects[0].Name != "demo" {
		t.Errorf("project list: %+v", projects)
	}
	status := func(id string) string { return apiStatus(t, httpsClient, base+"/v2.1/"+project, tok.ID, id) }

	var flavors []struct {
		ID    string `json:"ID"`
		Name  string `json:"Name"`
		RAM   int    `json:"RAM"`
		VCPUs int    `json:"VCPUs"`
	}
	osc.json(&flavors, "flavor", "list")
	found := false
	for _, f := range flavors {
		found = found || f.ID == controller.WorkloadClear && f.RAM > 0 && f.VCPUs > 0
	}
	if !found {
		t.Errorf("flavor list: %+v, want %s with RAM and VCPUs", flavors, controller.WorkloadClear)
	}

	data := []byte("not really a disk image\n")
	imgFile := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(imgFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	type image struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Status   string `json:"status"`
		Size     int    `json:"size"`
		Checksum string `json:"checksum"`
	}
	var img image
	osc.json(&img, "image", "create", "--file", imgFile, "--disk-format", "raw", "--container-format", "bare", "osc-disk")
	if img.ID == "" || img.Name != "osc-disk" {
		t.Fatalf("image create: %+v", img)
	}
	var imgs []struct{ ID, Name, Status string }
	osc.json(&imgs, "image", "list")
	if len(imgs) != 1 || imgs[0].ID != img.ID || imgs[0].Name != "osc-disk" || imgs[0].Status != "active" {
		t.Errorf("image list: %+v", imgs)
	}
	var shown struct {
		image
		Properties map[string]any `json:"properties"`
	}
	decodeAll(t, osc.batch("", "image set --name osc-disk-2 --property os_distro=clear "+img.ID, "image show "+img.ID), &shown)
	if shown.Status != "active" || shown.Size != len(data) || shown.Checksum != fmt.Sprintf("%x", md5.Sum(data)) ||
		shown.Name != "osc-disk-2" || shown.Properties["os_distro"] != "clear" {
		t.Errorf("image show after image set: %+v", shown)
	}

	type server struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
		Flavor string `json:"flavor"`
	}
	var srv server
	osc.json(&srv, "server", "create", "--flavor", controller.WorkloadClear, "--image", img.ID, "osc-vm")
	// The workload is the flavor; the image is looked up by the client
	// but the workload's own image is what runs (§6.2.1). Instances have
	// no names at the baseline: "osc-vm" is the trace label.
	if srv.ID == "" || srv.Status != "pending" || !strings.Contains(srv.Flavor, controller.WorkloadClear) {
		t.Fatalf("server create: %+v", srv)
	}
	poll(t, "the launcher runs the server", func() bool { return len(agent.Instances()) == 1 })
	agent.SendStats(t)
	poll(t, "server active", func() bool { return status(srv.ID) == "active" })

	var servers []struct{ ID, Name, Status string }
	osc.json(&servers, "server", "list")
	if len(servers) != 1 || servers[0].ID != srv.ID || servers[0].Status != "active" {
		t.Errorf("server list: %+v", servers)
	}
	id := srv.ID
	osc.json(&srv, "server", "show", "osc-vm") // by name: GET /servers?name=
	if srv.ID != id || srv.Name != "osc-vm" || srv.Status != "active" || srv.Flavor != "Clear Cloud ("+controller.WorkloadClear+")" {
		t.Errorf("server show osc-vm: %+v", srv)
	}

	// Quotas, limits and usage of the member's own project; a member
	// may not set quotas (last: it fails).
	var quota map[string]any
	var limits []struct {
		Name  string
		Value any
	}
	var usage map[string]any
	var keypairs []any
	var defaults map[string]any
	decodeAll(t, osc.batch("(HTTP 403)", "quota show", "quota show --default", "limits show --absolute",
		"usage show", "keypair list", "quota set --instances 1 "+project), &quota, &defaults, &limits, &usage, &keypairs)
	if defaults["instances"] != -1.0 {
		t.Errorf("quota show --default: %v", defaults)
	}
	if quota["instances"] != -1.0 || quota["cores"] != -1.0 || quota["ram"] != -1.0 || quota["project"] != project {
		t.Errorf("quota show: %v", quota)
	}
	lim := map[string]any{}
	for _, l := range limits {
		lim[l.Name] = l.Value
	}
	if lim["totalInstancesUsed"] != 1.0 || lim["maxTotalInstances"] != -1.0 || lim["totalCoresUsed"] == 0.0 {
		t.Errorf("limits show --absolute: %v", limits)
	}
	if sv, _ := usage["Servers"].([]any); len(sv) != 1 || usage["Project"] != project || usage["CPU Hours"] == 0.0 {
		t.Errorf("usage show: %v", usage)
	}
	if len(keypairs) != 0 {
		t.Errorf("keypair list: %v", keypairs)
	}
	// The admin sets the project's quotas and sees the compute nodes
	// and every project's usage.
	admin := osc
	admin.env = append(append([]string(nil), env...), "OS_USERNAME=root", "OS_PASSWORD=rootpw", "OS_PROJECT_NAME=admin")
	// Projects are given by name: the client resolves them through
	// /v3/projects, which must filter by name (or it takes the admin's).
	var hypervisors []map[string]any
	var hypervisor, stats map[string]any
	var usages []map[string]any
	decodeAll(t, admin.batch("", "quota set --instances 5 --cores 8 --ram 4096 demo", "quota show demo",
		"hypervisor list", "hypervisor show "+testutil.AgentHostname, "hypervisor stats show", "usage list", "server list --all-projects"),
		&quota, &hypervisors, &hypervisor, &stats, &usages, &servers)
	if quota["instances"] != 5.0 || quota["cores"] != 8.0 || quota["ram"] != 4096.0 || quota["project"] != project {
		t.Errorf("quota show demo after quota set: %v", quota)
	}
	var legacy struct {
		Instances int `json:"instances_limit"`
		CPUs      int `json:"cpus_limit"`
	}
	apiGet(t, httpsClient, base+"/v2.1/"+project+"/quotas", tok.ID, &legacy)
	if legacy.Instances != 5 || legacy.CPUs != 8 {
		t.Errorf("demo's quotas through the API after quota set: %+v", legacy)
	}
	if len(hypervisors) != 1 || hypervisors[0]["Hypervisor Hostname"] != testutil.AgentHostname || hypervisors[0]["State"] != "up" {
		t.Errorf("hypervisor list: %v", hypervisors)
	}
	if hypervisor["id"] != hypervisors[0]["ID"] || hypervisor["vcpus_used"] != 2.0 || stats["count"] != 1.0 || stats["running_vms"] != 1.0 {
		t.Errorf("hypervisor show: %v, stats show: %v", hypervisor, stats)
	}
	if len(usages) != 1 || usages[0]["Project"] != project {
		t.Errorf("usage list: %v", usages)
	}
	if len(servers) != 1 || servers[0].ID != srv.ID || servers[0].Name != "osc-vm" {
		t.Errorf("server list --all-projects: %+v", servers)
	}

	osc.ok("server", "stop", srv.ID)
	poll(t, "the launcher stops the server", func() bool {
		in, _ := agent.Instance(srv.ID)
		return in.State == payloads.InstanceExited
	})
	agent.SendStats(t)
	poll(t, "server exited", func() bool { return status(srv.ID) == "exited" })
	osc.ok("server", "start", srv.ID)
	poll(t, "the launcher restarts the server", func() bool {
		in, _ := agent.Instance(srv.ID)
		return in.State == payloads.InstanceActive
	})
	osc.ok("server", "delete", "osc-vm")
	poll(t, "server gone", func() bool { return status(srv.ID) == "404" })
	// The deleted server still counts in the project's usage for the
	// period it ran in (instance lifetimes, datastore/lifetimes.go).
	usage = nil
	osc.json(&usage, "usage", "show")
	if sv, _ := usage["Servers"].([]any); len(sv) != 1 || usage["Project"] != project {
		t.Errorf("usage show after server delete: %v", usage)
	}

	saved := filepath.Join(dir, "saved.raw")
	osc.ok("image", "save", "--file", saved, img.ID)
	if got, err := os.ReadFile(saved); err != nil || string(got) != string(data) {
		t.Errorf("image save: %q %v, want %q", got, err, data)
	}
	osc.ok("image", "delete", img.ID)
	if _, err := os.Stat(filepath.Join(cfg.ImageDir, img.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted image's data: %v", err)
	}

	bad := osc
	bad.env = append(append([]string(nil), env...), "OS_PASSWORD=wrong")
	out, errOut, code := bad.run("token", "issue", "-f", "json")
	if code == 0 || out != "" || !strings.Contains(errOut, "requires authentication. (HTTP 401)") {
		t.Errorf("wrong password: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("openstack commands took %v", time.Since(start))
}

// apiDo makes an API GET with the token tok; the caller closes the body.
func apiDo(t *testing.T, hc *http.Client, url, tok string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// apiGet decodes the answer to an API GET into v.
func apiGet(t *testing.T, hc *http.Client, url, tok string, v any) {
	t.Helper()
	resp := apiDo(t, hc, url, tok)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// apiStatus is the server's status through the compute API, or the HTTP
// status code when it is not 200.
func apiStatus(t *testing.T, hc *http.Client, root, tok, id string) string {
	t.Helper()
	resp := apiDo(t, hc, root+"/servers/"+id, tok)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return strconv.Itoa(resp.StatusCode)
	}
	var r struct {
		Server struct{ Status string } `json:"server"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Server.Status
}
