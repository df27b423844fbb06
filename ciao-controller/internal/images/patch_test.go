package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// patch sends PATCH /v2/images/{id} and returns the status and the
// decoded answer.
func (e *env) patch(t *testing.T, tok, id, ctype, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPatch, e.srv.URL+"/v2/images/"+id, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", tok)
	req.Header.Set("Content-Type", ctype)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("PATCH %s: %d %q: %v", id, resp.StatusCode, b, err)
	}
	if resp.StatusCode >= 400 {
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code != resp.StatusCode || eb.Error.Message == "" {
			t.Errorf("PATCH %s: error body %s", id, b)
		}
	}
	return resp.StatusCode, m
}

func TestPatch(t *testing.T) {
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{"name":"old","disk_format":"raw","container_format":"bare"}`)
	ok := func(tok, body string) map[string]any {
		t.Helper()
		code, m := e.patch(t, tok, img.ID, PatchMediaType, body)
		if code != http.StatusOK {
			t.Fatalf("PATCH %s: %d %v", body, code, m)
		}
		return m
	}
	m := ok("tokA", `[{"op":"replace","path":"/name","value":"new"},{"op":"add","path":"/os_distro","value":"clear"},`+
		`{"op":"add","path":"/a~1b~0c","value":"x"}]`)
	if m["name"] != "new" || m["os_distro"] != "clear" || m["a/b~c"] != "x" || m["id"] != img.ID || m["status"] != "queued" {
		t.Errorf("after patch: %v", m)
	}
	// Kept: show and list carry the properties as top-level keys.
	var shown map[string]any
	e.do(t, http.MethodGet, "/v2/images/"+img.ID, "tokA", nil, &shown)
	if shown["name"] != "new" || shown["os_distro"] != "clear" {
		t.Errorf("show: %v", shown)
	}
	var list struct{ Images []map[string]any }
	e.do(t, http.MethodGet, "/v2/images", "tokA", nil, &list)
	if len(list.Images) != 1 || list.Images[0]["os_distro"] != "clear" {
		t.Errorf("list: %v", list.Images)
	}
	// add on an existing property replaces it; remove drops it; a charset
	// parameter on the media type is fine.
	code, m := e.patch(t, "tokA", img.ID, PatchMediaType+"; charset=UTF-8",
		`[{"op":"add","path":"/os_distro","value":"fedora"},{"op":"remove","path":"/a~1b~0c"},{"op":"replace","path":"/disk_format","value":"qcow2"}]`)
	if code != http.StatusOK || m["os_distro"] != "fedora" || m["a/b~c"] != nil || m["disk_format"] != "qcow2" {
		t.Errorf("second patch: %d %v", code, m)
	}
	m = ok("tokA", `[{"op":"replace","path":"/name","value":null}]`)
	if m["name"] != "" {
		t.Errorf("name null: %v", m)
	}
	ok("tokA", `[]`) // an empty patch changes nothing
	m = ok("admin", `[{"op":"replace","path":"/visibility","value":"public"}]`)
	if m["visibility"] != "public" {
		t.Errorf("admin publish: %v", m)
	}
	ok("tokA", `[{"op":"replace","path":"/visibility","value":"private"}]`)

	for _, c := range []struct {
		tok, ctype, body string
		want             int
	}{
		{"tokA", "application/json", `[]`, http.StatusUnsupportedMediaType},
		{"tokA", "application/openstack-images-v2.0-json-patch", `[]`, http.StatusUnsupportedMediaType},
		{"tokA", "", `[]`, http.StatusUnsupportedMediaType},
		{"tokB", PatchMediaType, `[{"op":"replace","path":"/name","value":"mine"}]`, http.StatusForbidden}, // not B's
		{"tokA", PatchMediaType, `{"op":"replace"}`, http.StatusBadRequest},                                // not an array
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/name"}]`, http.StatusBadRequest},               // no value
		{"tokA", PatchMediaType, `[{"op":"test","path":"/name","value":"x"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"move","path":"/name","from":"/x"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"add","path":"name","value":"x"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"add","path":"/","value":"x"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"add","path":"/a/b","value":"x"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/status","value":"active"}]`, http.StatusForbidden},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/owner","value":"` + tenantB + `"}]`, http.StatusForbidden},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/size","value":"1"}]`, http.StatusForbidden},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/protected","value":true}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/min_ram","value":512}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/visibility","value":"public"}]`, http.StatusForbidden},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/visibility","value":"shared"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"remove","path":"/name"}]`, http.StatusForbidden},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/disk_format","value":"vmdk"}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"add","path":"/os_distro","value":7}]`, http.StatusBadRequest}, // not a string
		{"tokA", PatchMediaType, `[{"op":"add","path":"/os_distro","value":null}]`, http.StatusBadRequest},
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/nothere","value":"x"}]`, http.StatusConflict},
		{"tokA", PatchMediaType, `[{"op":"remove","path":"/nothere"}]`, http.StatusConflict},
		{"tokA", PatchMediaType, `[{"op":"add","path":"/` + strings.Repeat("k", 256) + `","value":"x"}]`, http.StatusBadRequest},
		// Checked whole: the first operation is not applied either.
		{"tokA", PatchMediaType, `[{"op":"replace","path":"/name","value":"half"},{"op":"remove","path":"/nothere"}]`, http.StatusConflict},
	} {
		if code, m := e.patch(t, c.tok, img.ID, c.ctype, c.body); code != c.want {
			t.Errorf("PATCH %s (%s as %s): %d %v, want %d", c.body, c.ctype, c.tok, code, m, c.want)
		}
	}
	if code, _ := e.patch(t, "tokA", "00000000-0000-4000-8000-000000000000", PatchMediaType, `[]`); code != http.StatusNotFound {
		t.Errorf("unknown image: %d", code)
	}
	var props []string
	for i := 0; i <= maxProperties; i++ {
		props = append(props, fmt.Sprintf(`{"op":"add","path":"/p%d","value":"v"}`, i))
	}
	if code, _ := e.patch(t, "tokA", img.ID, PatchMediaType, "["+strings.Join(props, ",")+"]"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d properties: %d", len(props), code)
	}
	got, err := e.store.Image(context.Background(), img.ID)
	if err != nil || got.Name != "" || len(got.Properties) != 1 || got.Properties["os_distro"] != "fedora" {
		t.Errorf("stored after the refused patches: %+v %v", got, err)
	}

	// Formats are fixed once the image has data.
	e.expect(t, http.MethodPut, "/v2/images/"+img.ID+"/file", "tokA", strings.NewReader("data"), http.StatusNoContent)
	if code, _ := e.patch(t, "tokA", img.ID, PatchMediaType, `[{"op":"replace","path":"/disk_format","value":"raw"}]`); code != http.StatusForbidden {
		t.Errorf("disk_format of an active image: %d", code)
	}
	ok("tokA", `[{"op":"replace","path":"/name","value":"active and renamed"}]`)
}

// TestPropertiesSurviveReopen: properties are stored, not cached.
func TestPropertiesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	ctx := context.Background()
	s, err := datastore.OpenSQLite(ctx, datastore.NewConfig(path))
	if err != nil {
		t.Fatal(err)
	}
	img := datastore.Image{ID: "i1", Status: datastore.ImageQueued, Visibility: "private", Properties: map[string]string{"k": "v"}}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateImage(ctx, "i1", func(i *datastore.Image) error { i.Properties["k2"] = "v2"; return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = datastore.OpenSQLite(ctx, datastore.NewConfig(path)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Image(ctx, "i1")
	if err != nil || fmt.Sprint(got.Properties) != "map[k:v k2:v2]" {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
}

// FuzzImagePatch: no PATCH body makes a 5xx or changes what a patch may
// not change (id, status, owner, size), and an accepted patch leaves at
// most maxProperties properties.
func FuzzImagePatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"replace","path":"/name","value":"new"}]`,
		`[{"op":"add","path":"/a~1b~0c","value":"x"},{"op":"remove","path":"/a~1b~0c"}]`,
		`[{"op":"replace","path":"/visibility","value":"public"}]`,
		`[{"op":"replace","path":"/status","value":"active"}]`,
		`[{"op":"add","path":"/disk_format","value":"qcow2"}]`,
		`[{"op":"remove","path":"/x"}]`, `[]`, `{}`, `null`, `[null]`, `[{"op":"add","path":"/k","value":null}]`,
	} {
		f.Add(s, false)
	}
	ctx := context.Background()
	store, err := datastore.OpenSQLite(ctx, datastore.NewConfig(filepath.Join(f.TempDir(), "db")))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	svc, err := New(ctx, NewConfig(filepath.Join(f.TempDir(), "images"), store))
	if err != nil {
		f.Fatal(err)
	}
	r := mux.NewRouter()
	var caller Caller
	svc.Register(r, func(h Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, caller) })
	})
	const id = "0b0e4b0e-0000-4000-8000-000000000001"
	if err := store.CreateImage(ctx, datastore.Image{ID: id, Status: datastore.ImageQueued, Visibility: "private", Owner: tenantA, Size: -1}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string, admin bool) {
		caller = Caller{TenantID: tenantA, Admin: admin}
		req := httptest.NewRequest(http.MethodPatch, "/v2/images/"+id, strings.NewReader(body))
		req.Header.Set("Content-Type", PatchMediaType)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("PATCH %q: %d %s", body, rec.Code, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("PATCH %q: answer %q: %v", body, rec.Body, err)
		}
		img, err := store.Image(ctx, id)
		if err != nil || img.ID != id || img.Status != datastore.ImageQueued || img.Owner != tenantA || img.Size != -1 ||
			len(img.Properties) > maxProperties || (!admin && img.Visibility != "private") {
			t.Fatalf("PATCH %q: stored %+v %v", body, img, err)
		}
		if img.Visibility == "public" { // back to the start for the next input
			store.UpdateImage(ctx, id, func(i *datastore.Image) error { i.Visibility = "private"; return nil })
		}
	})
}

// TestImageJSONProps: additional properties are top-level keys of the
// image object, and one named like a core attribute does not replace it.
func TestImageJSONProps(t *testing.T) {
	j := toJSON(datastore.Image{ID: "i1", Name: "n", Status: datastore.ImageQueued, Size: -1, Visibility: "private",
		Properties: map[string]string{"os_distro": "clear", "b<&>": "x\"y", "name": "shadow", "status": "shadow"}})
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m["os_distro"] != "clear" || m["b<&>"] != "x\"y" || m["name"] != "n" || m["status"] != datastore.ImageQueued || m["id"] != "i1" {
		t.Errorf("image JSON %s", b)
	}
	if n := strings.Count(string(b), `"name":`); n != 1 {
		t.Errorf("%d name keys in %s", n, b)
	}
}

// BenchmarkImageJSONProps: encoding one image with a few additional
// properties, as every image listing does per image.
func BenchmarkImageJSONProps(b *testing.B) {
	j := toJSON(datastore.Image{ID: "0b0e4b0e-0000-4000-8000-000000000001", Name: "clear", Status: datastore.ImageActive,
		Size: 1 << 20, Visibility: "public", Owner: "P", Properties: map[string]string{"os_distro": "clear", "os_version": "30000", "hw_disk_bus": "virtio"}})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := json.Marshal(j); err != nil {
			b.Fatal(err)
		}
	}
}
