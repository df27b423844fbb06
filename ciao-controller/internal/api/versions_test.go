package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
)

// TestVersionDiscovery: the compute version document answers without a
// token at /v2.1 and /v2.1/ with the 2.1 microversion range, and the root
// lists versions (the compute one when there is no image API).
func TestVersionDiscovery(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/v2.1", "/v2.1/"} {
		var doc struct {
			Version struct {
				ID, Status, Version string
				MinVersion          string `json:"min_version"`
				Links               []struct{ Href, Rel string }
			} `json:"version"`
		}
		if err := json.Unmarshal([]byte(e.expect(t, "GET", p, "", "", http.StatusOK)), &doc); err != nil {
			t.Fatal(err)
		}
		v := doc.Version
		if v.ID != "v2.1" || v.Status != "CURRENT" || v.Version != "2.1" || v.MinVersion != "2.1" ||
			len(v.Links) != 1 || v.Links[0].Href != e.srv.URL+"/v2.1/" || v.Links[0].Rel != "self" {
			t.Errorf("GET %s: %+v", p, v)
		}
	}
	var root struct {
		Versions []struct{ ID, Status string } `json:"versions"`
	}
	if err := json.Unmarshal([]byte(e.expect(t, "GET", "/", "", "", http.StatusOK)), &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Versions) != 1 || root.Versions[0].ID != "v2.1" {
		t.Errorf("GET /: %+v", root)
	}
	e.expect(t, "POST", "/v2.1", "", "", http.StatusMethodNotAllowed)
}

// TestFlavorsMicroversioned: a client that names a compute microversion
// (OpenStack clients) gets "disk" as an integer number of GB, ciao-cli
// (none) the 2016 image UUID; os-extra_specs is empty for known flavors
// and 404 otherwise.
func TestFlavorsMicroversioned(t *testing.T) {
	e := newEnv(t)
	path := "/v2.1/" + tenantA + "/flavors/" + controller.WorkloadClear
	get := func(hdr, val string) map[string]any {
		t.Helper()
		req, err := http.NewRequest("GET", e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Auth-Token", "tokA")
		if hdr != "" {
			req.Header.Set(hdr, val)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Flavor map[string]any `json:"flavor"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%d: %v", resp.StatusCode, err)
		}
		return out.Flavor
	}
	if d, ok := get("", "")["disk"].(string); !ok || d == "" {
		t.Errorf("2016 flavor disk %v, want the image UUID", d)
	}
	for _, h := range [][2]string{{"X-OpenStack-Nova-API-Version", "2.1"}, {"OpenStack-API-Version", "compute 2.1"}} {
		if d, ok := get(h[0], h[1])["disk"].(float64); !ok || d < 1 {
			t.Errorf("%s flavor disk %v, want GB as a number", h[0], d)
		}
	}
	if out := e.expect(t, "GET", path+"/os-extra_specs", "tokA", "", http.StatusOK); strings.TrimSpace(out) != `{"extra_specs":{}}` {
		t.Errorf("os-extra_specs: %s", out)
	}
	e.expect(t, "GET", "/v2.1/"+tenantA+"/flavors/"+unknown+"/os-extra_specs", "tokA", "", http.StatusNotFound)
}
