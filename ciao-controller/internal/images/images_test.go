package images

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	tenantA = "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"
	tenantB = "2491851d-dce9-48d6-b83a-a717417072ce"
)

var callers = map[string]Caller{
	"tokA":  {TenantID: tenantA},
	"tokB":  {TenantID: tenantB},
	"admin": {TenantID: "f452bbc7-5076-44d5-922c-3b9d2ce1503f", Admin: true},
}

type env struct {
	svc   *Service
	store *datastore.SQLite
	dir   string
	h     http.Handler
	srv   *httptest.Server
}

// newTestService starts the service on an SQLite store and an image
// directory under t.TempDir, behind a fake token check.
func newTestService(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	tmp := t.TempDir()
	store, err := datastore.OpenSQLite(context.Background(), datastore.NewConfig(filepath.Join(tmp, "db.sqlite")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := NewConfig(filepath.Join(tmp, "images"), store)
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r, func(h Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := callers[r.Header.Get("X-Auth-Token")]
			if !ok {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r, c)
		})
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{svc: svc, store: store, dir: cfg.Dir, h: r, srv: srv}
}

func (e *env) do(t *testing.T, method, path, tok string, body io.Reader, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", tok)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decoding: %v", method, path, err)
		}
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp
}

func (e *env) expect(t *testing.T, method, path, tok string, body io.Reader, want int) {
	t.Helper()
	var eb errorBody
	var out any
	if want >= 400 {
		out = &eb
	}
	resp := e.do(t, method, path, tok, body, out)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
	}
	if want >= 400 {
		if eb.Error.Code != want || eb.Error.Name != http.StatusText(want) || eb.Error.Message == "" {
			t.Fatalf("%s %s: error body %+v", method, path, eb)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: Content-Type %q", method, path, ct)
		}
	}
}

func (e *env) create(t *testing.T, tok, body string) imageJSON {
	t.Helper()
	var img imageJSON
	resp := e.do(t, http.MethodPost, "/v2/images", tok, strings.NewReader(body), &img)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d", resp.StatusCode)
	}
	return img
}

func (e *env) show(t *testing.T, tok, id string) imageJSON {
	t.Helper()
	var img imageJSON
	if resp := e.do(t, http.MethodGet, "/v2/images/"+id, tok, nil, &img); resp.StatusCode != http.StatusOK {
		t.Fatalf("show %s: status %d", id, resp.StatusCode)
	}
	return img
}

func (e *env) list(t *testing.T, tok string) map[string]imageJSON {
	t.Helper()
	var l struct{ Images []imageJSON }
	if resp := e.do(t, http.MethodGet, "/v2/images", tok, nil, &l); resp.StatusCode != http.StatusOK {
		t.Fatalf("list: status %d", resp.StatusCode)
	}
	m := map[string]imageJSON{}
	for _, i := range l.Images {
		m[i.ID] = i
	}
	return m
}

// files checks the image directory holds exactly the named files.
func (e *env) files(t *testing.T, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ents {
		got = append(got, d.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("image dir holds %v, want %v", got, want)
	}
}

func TestLifecycle(t *testing.T) {
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{"name":"ubuntu","disk_format":"qcow2","container_format":"bare"}`)
	if img.Status != "queued" || img.Name != "ubuntu" || img.Owner != tenantA || img.Visibility != "private" ||
		img.Size != nil || img.Checksum != nil || *img.DiskFormat != "qcow2" || img.File != "/v2/images/"+img.ID+"/file" {
		t.Fatalf("created %+v", img)
	}
	data := bytes.Repeat([]byte("ciao image "), 1000)
	e.expect(t, http.MethodPut, img.File, "tokA", bytes.NewReader(data), http.StatusNoContent)

	got := e.show(t, "tokA", img.ID)
	md5sum, shasum := md5.Sum(data), sha256.Sum256(data)
	if got.Status != "active" || got.Size == nil || *got.Size != int64(len(data)) ||
		got.Checksum == nil || *got.Checksum != hex.EncodeToString(md5sum[:]) ||
		got.HashAlgo == nil || *got.HashAlgo != "sha256" || *got.HashValue != hex.EncodeToString(shasum[:]) {
		t.Fatalf("after upload %+v", got)
	}
	if l := e.list(t, "tokA"); len(l) != 1 || l[img.ID].Status != "active" {
		t.Fatalf("list %+v", l)
	}

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+img.File, nil)
	req.Header.Set("X-Auth-Token", "tokA")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(data)) || !bytes.Equal(back, data) {
		t.Fatalf("download: status %d, length %d, %d bytes, equal %v, err %v",
			resp.StatusCode, resp.ContentLength, len(back), bytes.Equal(back, data), err)
	}
	e.files(t, img.ID)

	e.expect(t, http.MethodDelete, "/v2/images/"+img.ID, "tokA", nil, http.StatusNoContent)
	e.files(t)
	e.expect(t, http.MethodGet, "/v2/images/"+img.ID, "tokA", nil, http.StatusNotFound)
	e.expect(t, http.MethodGet, img.File, "tokA", nil, http.StatusNotFound)
	e.expect(t, http.MethodDelete, "/v2/images/"+img.ID, "tokA", nil, http.StatusNotFound)
	e.expect(t, http.MethodPut, img.File, "tokA", strings.NewReader("x"), http.StatusNotFound)
}

// pattern is an endless deterministic byte stream.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n*7 + p.n>>13)
		p.n++
	}
	return len(b), nil
}

func TestLargeStreamedUpload(t *testing.T) {
	const size = 50 << 20
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{"name":"big","disk_format":"raw"}`)
	want := md5.New()
	// No Content-Length: the body is sent chunked and never held whole.
	body := io.TeeReader(io.LimitReader(&pattern{}, size), want)
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+img.File, struct{ io.Reader }{body})
	req.Header.Set("X-Auth-Token", "tokA")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("upload: status %d", resp.StatusCode)
	}
	got := e.show(t, "tokA", img.ID)
	if *got.Size != size || *got.Checksum != hexOf(want) {
		t.Fatalf("size %d checksum %s, want %d %s", *got.Size, *got.Checksum, size, hexOf(want))
	}

	req, _ = http.NewRequest(http.MethodGet, e.srv.URL+img.File, nil)
	req.Header.Set("X-Auth-Token", "tokA")
	resp, err = e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := md5.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size || resp.ContentLength != size || hexOf(h) != hexOf(want) || resp.Header.Get("Content-MD5") != hexOf(want) {
		t.Fatalf("download: %d bytes (Content-Length %d), md5 %s, err %v", n, resp.ContentLength, hexOf(h), err)
	}
}

func TestCrossTenant(t *testing.T) {
	e := newTestService(t, nil)
	priv := e.create(t, "tokA", `{"name":"mine"}`)
	e.expect(t, http.MethodPut, priv.File, "tokA", strings.NewReader("data"), http.StatusNoContent)
	e.expect(t, http.MethodPost, "/v2/images", "tokA", strings.NewReader(`{"visibility":"public"}`), http.StatusForbidden)
	pub := e.create(t, "admin", `{"name":"shared","visibility":"public"}`)

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v2/images/" + priv.ID},
		{http.MethodGet, priv.File},
		{http.MethodPut, priv.File},
		{http.MethodDelete, "/v2/images/" + priv.ID},
		{http.MethodPut, pub.File},
		{http.MethodDelete, "/v2/images/" + pub.ID},
	} {
		e.expect(t, c.method, c.path, "tokB", strings.NewReader("x"), http.StatusForbidden)
	}
	if l := e.list(t, "tokB"); len(l) != 1 || l[pub.ID].ID == "" {
		t.Fatalf("tenant B lists %v", l)
	}
	if l := e.list(t, "tokA"); len(l) != 2 {
		t.Fatalf("tenant A lists %v", l)
	}
	if l := e.list(t, "admin"); len(l) != 2 {
		t.Fatalf("admin lists %v", l)
	}
	e.show(t, "tokB", pub.ID)
	e.show(t, "admin", priv.ID)
	if got := e.show(t, "tokA", priv.ID); got.Status != "active" {
		t.Fatalf("refused requests changed the image: %+v", got)
	}
	if resp := e.do(t, http.MethodGet, "/v2/images", "nobody", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: status %d", resp.StatusCode)
	}
}

func TestBadRequests(t *testing.T) {
	e := newTestService(t, func(c *Config) { c.MaxJSON = 100 })
	for name, body := range map[string]string{
		"malformed":        `{"name":`,
		"not an object":    `[1]`,
		"bad id":           `{"id":"not-a-uuid"}`,
		"disk format":      `{"disk_format":"vmdk"}`,
		"container format": `{"container_format":"docker"}`,
		"visibility":       `{"visibility":"community"}`,
	} {
		t.Run(name, func(t *testing.T) {
			e.expect(t, http.MethodPost, "/v2/images", "tokA", strings.NewReader(body), http.StatusBadRequest)
		})
	}
	e.expect(t, http.MethodPost, "/v2/images", "tokA", strings.NewReader(`{"name":"`+strings.Repeat("x", 200)+`"}`), http.StatusRequestEntityTooLarge)
	const id = "df3768da-31f5-4ba6-82f0-127a1a705169"
	if img := e.create(t, "tokA", `{"id":"`+id+`"}`); img.ID != id {
		t.Fatalf("id %s, want %s", img.ID, id)
	}
	e.expect(t, http.MethodPost, "/v2/images", "tokA", strings.NewReader(`{"id":"`+id+`"}`), http.StatusConflict)
	e.expect(t, http.MethodGet, "/v2/images/"+id+"/file", "tokA", nil, http.StatusNoContent) // no data yet
}

func TestUploadTwice(t *testing.T) {
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{}`)
	e.expect(t, http.MethodPut, img.File, "tokA", strings.NewReader("first"), http.StatusNoContent)
	e.expect(t, http.MethodPut, img.File, "tokA", strings.NewReader("second"), http.StatusConflict)
	if got := e.show(t, "tokA", img.ID); got.Status != "active" || *got.Size != 5 {
		t.Fatalf("after second upload %+v", got)
	}
	e.files(t, img.ID)
}

func TestTooLarge(t *testing.T) {
	e := newTestService(t, func(c *Config) { c.MaxSize = 1000 })
	img := e.create(t, "tokA", `{}`)
	// Announced by Content-Length, then discovered while streaming.
	e.expect(t, http.MethodPut, img.File, "tokA", bytes.NewReader(make([]byte, 1001)), http.StatusRequestEntityTooLarge)
	e.expect(t, http.MethodPut, img.File, "tokA", struct{ io.Reader }{bytes.NewReader(make([]byte, 1001))}, http.StatusRequestEntityTooLarge)
	if got := e.show(t, "tokA", img.ID); got.Status != "queued" || got.Size != nil {
		t.Fatalf("after refused uploads %+v", got)
	}
	e.files(t)
	e.expect(t, http.MethodPut, img.File, "tokA", bytes.NewReader(make([]byte, 1000)), http.StatusNoContent)
}

// failingReader returns n bytes, then an error, as a client that dies
// half way.
type failingReader struct{ n int }

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(b), f.n)
	clear(b[:k])
	f.n -= k
	return k, nil
}

func TestFailedUploadLeavesNoActiveImage(t *testing.T) {
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{}`)
	req := httptest.NewRequest(http.MethodPut, img.File, &failingReader{n: 3 << 20})
	req.Header.Set("X-Auth-Token", "tokA")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d", rec.Code)
	}
	got := e.show(t, "tokA", img.ID)
	if got.Status != "queued" || got.Size != nil || got.Checksum != nil {
		t.Fatalf("after a failed upload %+v", got)
	}
	e.files(t) // neither the final file nor a temporary one
	e.expect(t, http.MethodGet, img.File, "tokA", nil, http.StatusNoContent)
	// The upload can be retried.
	e.expect(t, http.MethodPut, img.File, "tokA", strings.NewReader("ok"), http.StatusNoContent)
}

func TestRecoveryAfterCrash(t *testing.T) {
	e := newTestService(t, nil)
	img := e.create(t, "tokA", `{}`)
	// A crash mid-upload: the record says saving, a partial temp file.
	if _, err := e.store.UpdateImage(context.Background(), img.ID, func(i *datastore.Image) error {
		i.Status = datastore.ImageSaving
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, tmpPrefix+img.ID+"-123"), []byte("part"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), e.svc.cfg); err != nil {
		t.Fatal(err)
	}
	if got := e.show(t, "tokA", img.ID); got.Status != "queued" {
		t.Fatalf("after restart %+v", got)
	}
	e.files(t)
}
