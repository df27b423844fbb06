package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

// workloadAPI is a fake of the controller's workloads API for tenant T1
// (token "tok") and the admin (token "admin").
type workloadAPI struct {
	mu   sync.Mutex
	got  []client.WorkloadDefinition // guarded by mu: create bodies
	path []string                    // guarded by mu: request paths
}

func (f *workloadAPI) handler() http.Handler {
	m := http.NewServeMux()
	wl := client.Workload{ID: "11111111-2222-4333-8444-555555555555", TenantID: "T1", Visibility: "private",
		WorkloadDefinition: client.WorkloadDefinition{Description: "Debian", VMType: "docker", ImageName: "debian:latest",
			Requirements: client.WorkloadRequirements{VCPUs: 1, MemMB: 64}, Config: "---\na: 1\n...\n"}}
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok := r.Header.Get("X-Auth-Token")
			if !(tok == "admin" || tok == "tok" && r.PathValue("tenant") == "T1") {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			f.mu.Lock()
			f.path = append(f.path, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
			h(w, r)
		}
	}
	create := func(w http.ResponseWriter, r *http.Request) {
		var d client.WorkloadDefinition
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			writeErr(w, 400, err.Error())
			return
		}
		f.mu.Lock()
		f.got = append(f.got, d)
		f.mu.Unlock()
		if d.VMType == "lxc" {
			writeErr(w, 400, `controller: bad workload definition: unknown vm_type "lxc", want qemu or docker`)
			return
		}
		writeJSONResp(w, 201, map[string]any{"workload": wl})
	}
	m.HandleFunc("POST /{tenant}/workloads", auth(create))
	m.HandleFunc("POST /workloads", auth(create))
	m.HandleFunc("GET /{tenant}/workloads/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != wl.ID {
			writeErr(w, 404, "workload "+r.PathValue("id")+": datastore: not found")
			return
		}
		writeJSONResp(w, 200, map[string]any{"workload": wl})
	}))
	m.HandleFunc("DELETE /{tenant}/workloads/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "busy" {
			writeErr(w, 409, "workload busy is used by instances; delete them first")
			return
		}
		w.WriteHeader(204)
	}))
	m.HandleFunc("DELETE /workloads/{id}", auth(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	return m
}

// runCLI runs ciao-cli in-process; it returns stdout, stderr and the
// exit status.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var o, e bytes.Buffer
	err := runEnv(context.Background(), args, envOf(env), &o, &e)
	code := 0
	if err != nil {
		code = report(err, &e)
	}
	return o.String(), e.String(), code
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWorkloadCommands: create reads the YAML and its cloud-init file
// (relative to the YAML file) into the 2017 JSON definition; show and
// delete; bad input fails with one clear line and a non-zero status.
func TestWorkloadCommands(t *testing.T) {
	f := &workloadAPI{}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	env := map[string]string{"CIAO_CONTROLLER": srv.URL, "CIAO_TOKEN": "tok", "CIAO_TENANT_ID": "T1"}
	admin := map[string]string{"CIAO_CONTROLLER": srv.URL, "CIAO_TOKEN": "admin", "CIAO_TENANT_ID": "T1"}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "debian.yaml"), "#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"top -b\" ]\n")
	def := filepath.Join(dir, "wl.yaml")
	writeFile(t, def, `description: "Debian latest"
vm_type: docker
image_name: debian:latest
requirements:
  vcpus: 1
  mem_mb: 64
cloud_init: debian.yaml
`)
	// Run from elsewhere: cloud_init is relative to the YAML file.
	if out, errOut, code := runCLI(t, env, "workload", "create", "-yaml", def); code != 0 || errOut != "" ||
		out != "Created new workload: 11111111-2222-4333-8444-555555555555\n" {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	qemu := filepath.Join(dir, "vm.yaml")
	writeFile(t, qemu, `description: VM
vm_type: qemu
fw_type: efi
defaults: {vcpus: 2, mem_mb: 256, disk_mb: 100}
cloud_init: `+filepath.Join(dir, "debian.yaml")+`
disks:
  - bootable: true
    ephemeral: true
    source: {service: image, id: 73a86d7e-93c0-480e-9c41-ab42f69b7799}
  - volume_id: v1
  - size: 10
`)
	if _, errOut, code := runCLI(t, admin, "workload", "create", "-yaml", qemu, "-public"); code != 0 {
		t.Fatalf("create -public: %d %q", code, errOut)
	}
	f.mu.Lock()
	got, paths := f.got, f.path
	f.mu.Unlock()
	if len(got) != 2 || paths[0] != "POST /T1/workloads" || paths[1] != "POST /workloads" {
		t.Fatalf("requests %q %+v", paths, got)
	}
	if d := got[0]; d.Description != "Debian latest" || d.VMType != "docker" || d.ImageName != "debian:latest" ||
		d.Requirements != (client.WorkloadRequirements{VCPUs: 1, MemMB: 64}) || !strings.Contains(d.Config, "top -b") || d.Storage != nil {
		t.Errorf("docker definition %+v", d)
	}
	if d := got[1]; d.FWType != "efi" || d.Requirements.DiskMB != 100 || len(d.Storage) != 3 ||
		d.Storage[0] != (client.WorkloadDisk{SourceType: "image", SourceID: "73a86d7e-93c0-480e-9c41-ab42f69b7799", Bootable: true, Ephemeral: true}) ||
		d.Storage[1] != (client.WorkloadDisk{SourceType: "volume", SourceID: "v1"}) || d.Storage[2] != (client.WorkloadDisk{SourceType: "empty", Size: 10}) {
		t.Errorf("qemu definition %+v", d)
	}

	id := "11111111-2222-4333-8444-555555555555"
	if out, _, code := runCLI(t, env, "workload", "show", "-workload", id); code != 0 ||
		!strings.HasPrefix(out, "Workload "+id+"\n\tName: Debian\n\tVisibility: private (tenant T1)\n\tVM type: docker\n\tImage name: debian:latest\n\tCPUs: 1\n\tMemory: 64 MB\n\tCloud-init:\n\t\t---\n") {
		t.Errorf("show: %d %q", code, out)
	}
	if out, _, code := runCLI(t, env, "workload", "show", "-workload", id, "-f", "{{.VMType}} {{.Requirements.MemMB}}"); code != 0 || out != "docker 64" {
		t.Errorf("show -f: %d %q", code, out)
	}
	if out, _, code := runCLI(t, env, "workload", "delete", "-workload", id); code != 0 || out != "Deleted workload: "+id+"\n" {
		t.Errorf("delete: %d %q", code, out)
	}
	if _, _, code := runCLI(t, admin, "workload", "delete", "-workload", id, "-public"); code != 0 {
		t.Errorf("delete -public: %d", code)
	}
	f.mu.Lock()
	if p := f.path[len(f.path)-1]; p != "DELETE /workloads/"+id {
		t.Errorf("delete -public went to %s", p)
	}
	f.mu.Unlock()

	bad := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, yaml)
		return p
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"workload", "create"}, 2, "missing required -yaml parameter"},
		{[]string{"workload", "create", "-yaml", filepath.Join(dir, "nope.yaml")}, 1, "no such file"},
		{[]string{"workload", "create", "-yaml", bad("b1.yaml", "description: [unclosed\n")}, 1, "not a workload definition"},
		{[]string{"workload", "create", "-yaml", bad("b2.yaml", "descripton: x\n")}, 1, "line 1: unknown key descripton"},
		{[]string{"workload", "create", "-yaml", bad("b3.yaml", "description: x\nvm_type: docker\nrequirements: {vcpus: 1, mem_mb: 1}\n")}, 1, "cloud_init (the cloud-init file) is required"},
		{[]string{"workload", "create", "-yaml", bad("b4.yaml", "description: x\ncloud_init: gone.yaml\nrequirements: {vcpus: 1, mem_mb: 1}\n")}, 1, "gone.yaml: no such file"},
		{[]string{"workload", "create", "-yaml", bad("b5.yaml", "description: x\ncloud_init: debian.yaml\n")}, 1, "requirements (vcpus, mem_mb) are required"},
		{[]string{"workload", "create", "-yaml", bad("b6.yaml", "description: x\ncloud_init: debian.yaml\nrequirements: {vcpus: 1}\ndefaults: {vcpus: 1}\n")}, 1, "not both"},
		{[]string{"workload", "create", "-yaml", bad("b7.yaml", "description: x\n---\ndescription: y\n")}, 1, "more than one YAML document"},
		{[]string{"workload", "create", "-yaml", bad("b7b.yaml", "description: x\n---\n[unclosed\n")}, 1, "more than one YAML document"},
		{[]string{"workload", "create", "-yaml", bad("b7c.yaml", "")}, 1, "requirements (vcpus, mem_mb) are required"},
		{[]string{"workload", "create", "-yaml", bad("b7d.yaml", "---\n# only a comment\n")}, 1, "requirements (vcpus, mem_mb) are required"},
		{[]string{"workload", "create", "-yaml", bad("b8.yaml", "description: x\nvm_type: lxc\ncloud_init: debian.yaml\nrequirements: {vcpus: 1, mem_mb: 1}\n")}, 1, `HTTP 400: controller: bad workload definition: unknown vm_type "lxc"`},
		{[]string{"workload", "create", "-yaml", bad("b9.yaml", "description: x\ncloud_init: debian.yaml\nrequirements: {vcpus: 1, mem_mb: 1}\ndisks: [{volume_id: v, source: {type: image}}]\n")}, 1, "give volume_id or source"},
		{[]string{"workload", "show"}, 2, "missing required -workload parameter"},
		{[]string{"workload", "show", "-workload", "gone"}, 1, "HTTP 404"},
		{[]string{"workload", "delete"}, 2, "missing required -workload parameter"},
		{[]string{"workload", "delete", "-workload", "busy"}, 1, "HTTP 409: workload busy is used by instances; delete them first"},
	} {
		out, errOut, code := runCLI(t, env, c.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != c.code || out != "" || !strings.Contains(lines[len(lines)-1], c.want) {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %q (want %q)", c.args, code, c.code, out, errOut, c.want)
		}
	}
	if _, errOut, code := runCLI(t, env, "workload", "create", "-help"); code != 2 ||
		!strings.Contains(errOut, "cloud_init: debian.yaml") || !strings.Contains(errOut, "-public") || !strings.Contains(errOut, "-yaml") {
		t.Errorf("create -help: %d %q", code, errOut)
	}
}
