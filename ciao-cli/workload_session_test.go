package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var createdWorkloadRE = regexp.MustCompile(`^Created new workload: ([0-9a-f-]{36})\n$`)

// workloads (TestSessions, real scheduler, controller and launcher
// -simulation): a docker workload defined in YAML is created through
// ciao-cli, is private to its tenant, launches two instances that turn
// active, cannot be deleted while they run (409) and is deleted after
// them; a public one is created and deleted by the admin only.
func workloads(t *testing.T, r runner, c *cluster, admin, alice []string) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "debian.yaml"), []byte("#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n"))
	def := filepath.Join(dir, "workload.yaml")
	write(t, def, []byte(`description: "Debian from YAML"
vm_type: docker
image_name: debian:latest
requirements:
  vcpus: 1
  mem_mb: 64
cloud_init: debian.yaml
`))
	m := createdWorkloadRE.FindStringSubmatch(r.ok(alice, "workload", "create", "-yaml", def))
	if m == nil {
		t.Fatal("workload create: no id")
	}
	id := m[1]
	if out := r.ok(alice, "workload", "show", "-workload", id, "-f", "{{.VMType}} {{.Visibility}} {{.Requirements.MemMB}}"); out != "docker private 64" {
		t.Errorf("workload show -f: %q", out)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.ok(alice, "workload", "show", "-workload", id, "-json")), &shown); err != nil || shown["image_name"] != "debian:latest" {
		t.Errorf("workload show -json: %v %v", shown, err)
	}
	if out := r.ok(alice, "workload", "list", "-f", `{{range .}}{{.ID}} {{.Name}}|{{end}}`); !strings.Contains(out, id+" Debian from YAML|") {
		t.Errorf("workload list lacks the new workload: %q", out)
	}
	// Another tenant does not see it, nor can it use it.
	carol := c.env("carol", "cpw", "CIAO_TENANT_NAME=p1")
	r.fails(carol, 1, "HTTP 404", "workload", "show", "-workload", id)
	r.fails(carol, 1, "HTTP 404", "instance", "add", "-workload", id)
	if out := r.ok(carol, "workload", "list", "-f", `{{range .}}{{.ID}} {{end}}`); strings.Contains(out, id) {
		t.Errorf("carol lists alice's workload: %q", out)
	}

	ids := strings.Fields(r.ok(alice, "instance", "add", "-workload", id, "-instances", "2", "-wait", "-f", "{{range .}}{{.ID}} {{end}}"))
	if len(ids) != 2 {
		t.Fatalf("instance add: %q", ids)
	}
	for _, in := range ids {
		if out := r.ok(alice, "instance", "show", "-instance", in, "-f", "{{.Status}} {{.Flavor.ID}}"); out != "active "+id {
			t.Errorf("instance %s: %q", in, out)
		}
	}
	r.fails(alice, 1, "HTTP 409", "workload", "delete", "-workload", id)
	for _, in := range ids {
		r.ok(alice, "instance", "delete", "-instance", in)
	}
	// The instances go once the launcher confirms: until then, 409.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := r.run(alice, "workload", "delete", "-workload", id)
		if res.code == 0 {
			if res.stdout != "Deleted workload: "+id+"\n" {
				t.Errorf("workload delete: %q", res.stdout)
			}
			break
		}
		if !strings.Contains(res.stderr, "HTTP 409") || time.Now().After(deadline) {
			t.Fatalf("workload delete after the instances: %+v", res)
		}
		time.Sleep(100 * time.Millisecond) // poll interval: the launcher reports every 200ms
	}
	r.fails(alice, 1, "HTTP 404", "workload", "show", "-workload", id)

	// A public workload: the admin's to create and delete.
	r.fails(alice, 1, "HTTP 401", "workload", "create", "-yaml", def, "-public")
	m = createdWorkloadRE.FindStringSubmatch(r.ok(admin, "workload", "create", "-yaml", def, "-public"))
	if m == nil {
		t.Fatal("workload create -public: no id")
	}
	if out := r.ok(carol, "workload", "show", "-workload", m[1], "-f", "{{.Visibility}}"); out != "public" {
		t.Errorf("public workload as carol: %q", out)
	}
	r.fails(alice, 1, "HTTP 403", "workload", "delete", "-workload", m[1])
	if out := r.ok(admin, "workload", "delete", "-workload", m[1], "-public"); out != "Deleted workload: "+m[1]+"\n" {
		t.Errorf("workload delete -public: %q", out)
	}
	r.fails(admin, 1, "bad workload definition", "workload", "create", "-yaml", write2(t, dir, "bad.yaml",
		"description: x\nvm_type: lxc\ncloud_init: debian.yaml\nrequirements: {vcpus: 1, mem_mb: 64}\n"))
}

func write2(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	write(t, p, []byte(data))
	return p
}
