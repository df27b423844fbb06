package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

const (
	wlImage  = "73a86d7e-93c0-480e-9c41-ab42f69b7799"
	wlDocker = `{"description":"Debian","vm_type":"docker","image_name":"debian:latest","requirements":{"vcpus":1,"mem_mb":64},"config":"#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"top -b\" ]\n"}`
	wlQEMU   = `{"description":"VM","vm_type":"qemu","fw_type":"efi","requirements":{"vcpus":2,"mem_mb":256,"disk_mb":100},"config":"---\n#cloud-config\n...\n","storage":[{"source_type":"image","source_id":"` + wlImage + `","bootable":true,"ephemeral":true}]}`
)

type workloadResp struct {
	Workload controller.WorkloadView `json:"workload"`
}

type workloadsResp struct {
	Workloads []controller.WorkloadView `json:"workloads"`
}

// newWorkload POSTs body to path and returns the new workload.
func (e *env) newWorkload(t *testing.T, path, token, body string) controller.WorkloadView {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("X-Auth-Token", token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r workloadResp
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusCreated || r.Workload.ID == "" {
		t.Fatalf("POST %s: %d %+v %v", path, resp.StatusCode, r, err)
	}
	if loc := resp.Header.Get("Location"); loc != path+"/"+r.Workload.ID {
		t.Errorf("Location %q, want %s/%s", loc, path, r.Workload.ID)
	}
	return r.Workload
}

func (e *env) workloadIDs(t *testing.T, path, token string) []string {
	t.Helper()
	var l workloadsResp
	if err := json.Unmarshal([]byte(e.expect(t, "GET", path, token, "", 200)), &l); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range l.Workloads {
		ids = append(ids, w.ID)
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestWorkloadsAPI: public and private workloads are created, listed
// (in the workloads and the flavor listings), shown, launched and
// deleted; a workload with instances is not deleted (409).
func TestWorkloadsAPI(t *testing.T) {
	e := newEnv(t)
	pub := e.newWorkload(t, "/workloads", "admin", wlQEMU)
	if pub.Visibility != "public" || pub.TenantID != "" || pub.ImageID != wlImage || pub.FWType != "efi" ||
		pub.Requirements != (controller.WorkloadRequirements{VCPUs: 2, MemMB: 256, DiskMB: 100}) || len(pub.Storage) != 1 {
		t.Errorf("public workload %+v", pub)
	}
	priv := e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
	if priv.Visibility != "private" || priv.TenantID != tenantA || priv.ImageName != "debian:latest" ||
		priv.Config != "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"top -b\" ]\n...\n" {
		t.Errorf("private workload %+v", priv)
	}
	// An admin creates a private workload for a tenant never seen before.
	privB := e.newWorkload(t, "/"+tenantB+"/workloads", "admin", wlDocker)

	// Listings: A sees public + its own; the admin's /workloads all.
	a := e.workloadIDs(t, "/"+tenantA+"/workloads", "tokA")
	if !contains(a, pub.ID) || !contains(a, priv.ID) || contains(a, privB.ID) || contains(a, controller.WorkloadCNCI) || len(a) != 6 {
		t.Errorf("A lists %v", a)
	}
	all := e.workloadIDs(t, "/workloads", "admin")
	if !contains(all, pub.ID) || !contains(all, priv.ID) || !contains(all, privB.ID) || contains(all, controller.WorkloadCNCI) || len(all) != 7 {
		t.Errorf("admin lists %v", all)
	}
	var fl struct {
		Flavors []flavorDetails `json:"flavors"`
	}
	json.Unmarshal([]byte(e.expect(t, "GET", "/v2.1/"+tenantA+"/flavors/detail", "tokA", "", 200)), &fl)
	seen := map[string]flavorDetails{}
	for _, f := range fl.Flavors {
		seen[f.ID] = f
	}
	if f := seen[priv.ID]; f.Name != "Debian" || f.VCPUs != 1 || f.RAM != 64 || f.IsPublic {
		t.Errorf("A's flavor of its workload: %+v", f)
	}
	if f := seen[pub.ID]; f.Disk != wlImage || !f.IsPublic {
		t.Errorf("A's flavor of the public workload: %+v", f)
	}
	if _, ok := seen[privB.ID]; ok {
		t.Errorf("A's flavors list B's workload")
	}
	if ids := e.workloadIDs(t, "/"+tenantB+"/workloads", "admin"); !contains(ids, privB.ID) || contains(ids, priv.ID) {
		t.Errorf("admin for B lists %v", ids)
	}
	e.expect(t, "GET", "/v2.1/"+tenantA+"/flavors/"+priv.ID, "tokA", "", 200)

	// Show.
	var one workloadResp
	json.Unmarshal([]byte(e.expect(t, "GET", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 200)), &one)
	if one.Workload.ID != priv.ID || one.Workload.Description != "Debian" {
		t.Errorf("show %+v", one.Workload)
	}
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+pub.ID, "tokA", "", 200)
	e.expect(t, "GET", "/workloads/"+privB.ID, "admin", "", 200)
	e.expect(t, "GET", "/workloads/"+controller.WorkloadCNCI, "admin", "", 404)
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+unknown, "tokA", "", 404)

	// Launch: the START carries the workload, its cloud-init whole.
	var cr createResp
	json.Unmarshal([]byte(e.expect(t, "POST", "/v2.1/"+tenantA+"/servers", "tokA",
		fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":2}}`, priv.ID), http.StatusAccepted)), &cr)
	if len(cr.Servers) != 2 {
		t.Fatalf("create: %+v", cr)
	}
	var ids []string
	for range 2 {
		f := e.fs.NextCommand(t, ssntp.START)
		s, err := payloads.DecodeStart(f.Payload)
		if err != nil || s.Start.VMType != payloads.HypervisorDocker || s.Start.DockerImage != "debian:latest" ||
			len(s.Start.RequestedResources) != 2 || s.Start.RequestedResources[1].Value != 64 {
			t.Fatalf("START %+v %v", s, err)
		}
		if _, ud, _, err := payloads.SplitStart(f.Payload); err != nil || string(ud) != priv.Config {
			t.Errorf("user-data %q %v", ud, err)
		}
		ids = append(ids, s.Start.InstanceUUID)
	}
	e.activate(t, ids...)
	// Deleting a workload in use: 409, nothing deleted.
	out := e.expect(t, "DELETE", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", http.StatusConflict)
	if !strings.Contains(out, "used by instances") || strings.Count(out, "delete workload "+priv.ID) != 1 {
		t.Errorf("409 body %s: want \"used by instances\" and the workload named once", out)
	}
	e.expect(t, "DELETE", "/workloads/"+priv.ID, "admin", "", http.StatusConflict)
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 200)
	for _, id := range ids {
		e.expect(t, "DELETE", "/v2.1/"+tenantA+"/servers/"+id, "tokA", "", http.StatusNoContent)
	}
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		code, _ := e.do(t, "DELETE", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "")
		if code == http.StatusNoContent {
			break
		}
		if code != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("delete after the instances: %d", code)
		}
		time.Sleep(5 * time.Millisecond) // poll interval: the launcher confirms the deletes
	}
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 404)
	e.expect(t, "DELETE", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 404)
	e.expect(t, "GET", "/v2.1/"+tenantA+"/flavors/"+priv.ID, "tokA", "", 404)
	e.expect(t, "DELETE", "/workloads/"+pub.ID, "admin", "", http.StatusNoContent)
	e.expect(t, "DELETE", "/"+tenantB+"/workloads/"+privB.ID, "admin", "", http.StatusNoContent)
	if ids := e.workloadIDs(t, "/workloads", "admin"); len(ids) != 4 {
		t.Errorf("after deletes: %v", ids)
	}
	// The shipped and internal workloads are protected.
	e.expect(t, "DELETE", "/workloads/"+controller.WorkloadCNCI, "admin", "", http.StatusForbidden)
	e.expect(t, "DELETE", "/"+tenantA+"/workloads/"+controller.WorkloadClear, "tokA", "", http.StatusForbidden)
}

// TestWorkloadsAPIRefused: every refused definition is a 400 whose
// OpenStack error message says what is wrong; an oversized body is 413.
func TestWorkloadsAPIRefused(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ body, want string }{
		{`{"description":`, "malformed JSON"},
		{``, "empty body"},
		{strings.Replace(wlDocker, `"docker"`, `"lxc"`, 1), `unknown vm_type \"lxc\"`},
		{strings.Replace(wlQEMU, `"storage"`, `"x"`, 1), `unknown field \"x\"`},
		{strings.Replace(wlQEMU, `"source_id":"`+wlImage+`",`, ``, 1), "not an image UUID"},
		{strings.Replace(wlQEMU, `,"storage":[{"source_type":"image","source_id":"`+wlImage+`","bootable":true,"ephemeral":true}]`, ``, 1), "qemu workload needs an image"},
		{strings.Replace(wlDocker, `"image_name":"debian:latest",`, ``, 1), "docker workload needs image_name"},
		{strings.Replace(wlDocker, `"vcpus":1`, `"vcpus":0`, 1), "requirements.vcpus 0"},
		{strings.Replace(wlDocker, `"mem_mb":64`, `"mem_mb":-64`, 1), "requirements.mem_mb -64"},
		{strings.Replace(wlDocker, `runcmd:\n`, `runcmd: [\n`, 1), "config is not YAML"},
		{strings.Replace(wlQEMU, `"source_type":"image"`, `"source_type":"volume"`, 1), "block storage"},
	} {
		for _, path := range []string{"/workloads", "/" + tenantA + "/workloads"} {
			out := e.expect(t, "POST", path, map[bool]string{true: "admin", false: "tokA"}[path == "/workloads"], c.body, 400)
			if !strings.Contains(out, c.want) {
				t.Errorf("POST %s %s: %s, want %q", path, c.body, out, c.want)
			}
		}
	}
	big := strings.Replace(wlDocker, `"Debian"`, `"`+strings.Repeat("x", 5000)+`"`, 1)
	e.expect(t, "POST", "/"+tenantA+"/workloads", "tokA", big, http.StatusRequestEntityTooLarge)
	if ids := e.workloadIDs(t, "/workloads", "admin"); len(ids) != 4 {
		t.Errorf("refused definitions stored: %v", ids)
	}
	e.expect(t, "PUT", "/workloads", "admin", wlDocker, http.StatusMethodNotAllowed)
}

// TestWorkloadsAPIAuthz: the authorization matrix. A tenant's private
// workload is unknown (404) to another tenant everywhere: workloads API,
// flavor show and instance create; a member cannot create or delete
// public workloads; tokens are checked.
func TestWorkloadsAPIAuthz(t *testing.T) {
	e := newEnv(t)
	priv := e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
	pub := e.newWorkload(t, "/workloads", "admin", wlDocker)
	b := "/" + tenantB + "/workloads/"
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		// B and A's private workload.
		{"GET", b + priv.ID, "tokB", "", 404},
		{"DELETE", b + priv.ID, "tokB", "", 404},
		{"GET", "/v2.1/" + tenantB + "/flavors/" + priv.ID, "tokB", "", 404},
		{"GET", "/v2.1/" + tenantB + "/flavors/" + priv.ID + "/os-extra_specs", "tokB", "", 404},
		{"POST", "/v2.1/" + tenantB + "/servers", "tokB", `{"server":{"flavorRef":"` + priv.ID + `"}}`, 404},
		{"GET", b + priv.ID, "admin", "", 404}, // an admin acting for B
		// B on A's paths.
		{"GET", "/" + tenantA + "/workloads", "tokB", "", 401},
		{"GET", "/" + tenantA + "/workloads/" + priv.ID, "tokB", "", 401},
		{"DELETE", "/" + tenantA + "/workloads/" + priv.ID, "tokB", "", 401},
		{"POST", "/" + tenantA + "/workloads", "tokB", wlDocker, 401},
		// Members and public workloads.
		{"POST", "/workloads", "tokA", wlDocker, 401},
		{"GET", "/workloads", "tokA", "", 401},
		{"GET", "/workloads/" + pub.ID, "tokA", "", 401},
		{"DELETE", "/workloads/" + pub.ID, "tokA", "", 401},
		{"DELETE", "/" + tenantA + "/workloads/" + pub.ID, "tokA", "", 403},
		{"GET", "/" + tenantA + "/workloads/" + pub.ID, "tokA", "", 200},
		// Tokens.
		{"GET", "/" + tenantA + "/workloads", "", "", 401},
		{"GET", "/" + tenantA + "/workloads", "nope", "", 401},
		{"POST", "/workloads", "nope", wlDocker, 401},
		{"DELETE", "/workloads/" + pub.ID, "", "", 401},
		// The admin sees and may delete everything but internal ones.
		{"GET", "/workloads/" + priv.ID, "admin", "", 200},
		{"GET", "/" + tenantA + "/workloads/" + priv.ID, "admin", "", 200},
	} {
		if c.want == 401 {
			if code, body := e.do(t, c.method, c.path, c.token, c.body); code != 401 {
				t.Errorf("%s %s token %q: %d %s, want 401", c.method, c.path, c.token, code, body)
			}
			continue
		}
		e.expect(t, c.method, c.path, c.token, c.body, c.want)
	}
	// Still there after all that.
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 200)
	e.expect(t, "GET", "/workloads/"+pub.ID, "admin", "", 200)
	e.expect(t, "DELETE", "/workloads/"+priv.ID, "admin", "", 204)
}

// TestWorkloadsAPIRestart: workloads made through the API, disks
// included, are there after the controller restarts on its database,
// in the workloads and flavor listings, and launch.
func TestWorkloadsAPIRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	open := func() datastore.Store {
		s, err := datastore.OpenSQLite(context.Background(), datastore.NewConfig(path))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	e := newEnvStore(t, s1)
	pub := e.newWorkload(t, "/workloads", "admin", wlQEMU)
	priv := e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
	gone := e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
	e.expect(t, "DELETE", "/"+tenantA+"/workloads/"+gone.ID, "tokA", "", 204)
	e.srv.Close()
	e.ctl.Close()
	s1.Close()

	s2 := open()
	t.Cleanup(func() { s2.Close() })
	e = newEnvStore(t, s2)
	var one workloadResp
	json.Unmarshal([]byte(e.expect(t, "GET", "/workloads/"+pub.ID, "admin", "", 200)), &one)
	if fmt.Sprint(one.Workload) != fmt.Sprint(pub) {
		t.Errorf("after restart %+v\nwant %+v", one.Workload, pub)
	}
	var two workloadResp
	json.Unmarshal([]byte(e.expect(t, "GET", "/"+tenantA+"/workloads/"+priv.ID, "tokA", "", 200)), &two)
	if fmt.Sprint(two.Workload) != fmt.Sprint(priv) {
		t.Errorf("after restart %+v\nwant %+v", two.Workload, priv)
	}
	e.expect(t, "GET", "/"+tenantA+"/workloads/"+gone.ID, "tokA", "", 404)
	e.expect(t, "GET", "/v2.1/"+tenantA+"/flavors/"+priv.ID, "tokA", "", 200)
	e.expect(t, "GET", "/v2.1/"+tenantB+"/flavors/"+priv.ID, "tokB", "", 404)
	e.expect(t, "POST", "/v2.1/"+tenantA+"/servers", "tokA", `{"server":{"flavorRef":"`+priv.ID+`"}}`, 202)
	if s := e.fs.NextStart(t); s.DockerImage != "debian:latest" {
		t.Errorf("START after restart: %+v", s)
	}
}

// TestWorkloadsAPITenantCap: a tenant's private workloads are bounded
// (403, nothing stored); other tenants and public workloads are not
// affected, and a delete makes room again.
func TestWorkloadsAPITenantCap(t *testing.T) {
	e := newEnv(t)
	var last controller.WorkloadView
	for range controller.MaxPrivateWorkloads {
		last = e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
	}
	out := e.expect(t, "POST", "/"+tenantA+"/workloads", "tokA", wlDocker, http.StatusForbidden)
	if !strings.Contains(out, fmt.Sprintf("has %d private workloads, the most allowed", controller.MaxPrivateWorkloads)) {
		t.Errorf("403 body %s", out)
	}
	e.newWorkload(t, "/"+tenantB+"/workloads", "tokB", wlDocker)
	e.newWorkload(t, "/workloads", "admin", wlDocker)
	e.expect(t, "DELETE", "/"+tenantA+"/workloads/"+last.ID, "tokA", "", http.StatusNoContent)
	e.newWorkload(t, "/"+tenantA+"/workloads", "tokA", wlDocker)
}
