package qemu

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

func TestHTTPFetcher(t *testing.T) {
	data := bytes.Repeat([]byte("qcow"), 10000)
	sum := md5.Sum(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "tok" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v2/images/" + testImage + "/file":
			w.Header().Set("Content-MD5", hex.EncodeToString(sum[:]))
			w.Write(data)
		case "/v2/images/badsum/file":
			w.Header().Set("Content-MD5", "00")
			w.Write(data)
		case "/v2/images/short/file":
			w.Header().Set("Content-Length", strconv.Itoa(len(data)+10))
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f := HTTPFetcher{URL: srv.URL + "/", Token: "tok", Client: srv.Client()}

	for _, id := range []string{"badsum", "short", "0a1b2c3d-0000-4000-8000-00000000dead"} {
		t.Run(id, func(t *testing.T) {
			dir := t.TempDir()
			if err := f.Fetch(context.Background(), id, filepath.Join(dir, id)); err == nil {
				t.Fatal("fetch succeeded")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("left %v behind", ents)
			}
		})
	}
	t.Run("unauthorized", func(t *testing.T) {
		dir := t.TempDir()
		g := f
		g.Token = ""
		if err := g.Fetch(context.Background(), testImage, filepath.Join(dir, testImage)); err == nil {
			t.Fatal("fetch succeeded")
		}
	})

	t.Run("via the driver", func(t *testing.T) {
		dir := t.TempDir()
		d := New(Config{ImageDir: dir, Fetch: f})
		if err := d.ensureImage(context.Background(), testImage); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, testImage))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("cached %d bytes, err %v", len(got), err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("image dir holds %v", ents)
		}
		img, err := resolveImage(dir, testImage)
		if err != nil || img.Disk == "" {
			t.Fatalf("resolve after fetch: %+v, %v", img, err)
		}
		// A cached image is not fetched again; a missing one that cannot be
		// fetched is an image failure.
		d = New(Config{ImageDir: dir, Fetch: HTTPFetcher{URL: "http://127.0.0.1:1"}})
		if err := d.ensureImage(context.Background(), testImage); err != nil {
			t.Fatal(err)
		}
		const missing = "0a1b2c3d-0000-4000-8000-00000000beef"
		if err := d.ensureImage(context.Background(), missing); !errors.Is(err, driver.ErrImage) {
			t.Fatalf("missing image: %v", err)
		}
	})
}
