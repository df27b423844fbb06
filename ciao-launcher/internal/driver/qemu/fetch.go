package qemu

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/uuid"
)

// Fetcher fills the image cache: it writes image id's data to dst, a
// path inside the image directory, and must leave nothing at dst on
// failure.
type Fetcher interface {
	Fetch(ctx context.Context, id, dst string) error
}

// HTTPFetcher downloads images from the controller's image API
// (GET <URL>/v2/images/<id>/file) into the cache: the body streams into a
// temporary file next to dst, is checked against Content-Length and the
// hex md5 in Content-MD5 when the server sends them, synced, and renamed
// to dst. Two STARTs of the same missing image may both download; the
// renames are atomic, so the cache only ever holds a whole file.
type HTTPFetcher struct {
	URL    string       // controller API base, e.g. https://controller:8774
	Token  string       // X-Auth-Token, "" for none
	Client *http.Client // nil = http.DefaultClient
}

// Fetch implements Fetcher.
func (f HTTPFetcher) Fetch(ctx context.Context, id, dst string) (err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(f.URL, "/")+"/v2/images/"+id+"/file", nil)
	if err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	if f.Token != "" {
		req.Header.Set("X-Auth-Token", f.Token)
	}
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch image %s: %s", id, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-"+id+"-*")
	if err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if err != nil {
		return fmt.Errorf("fetch image %s: after %d bytes: %w", id, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("fetch image %s: got %d of %d bytes", id, n, resp.ContentLength)
	}
	if want := resp.Header.Get("Content-MD5"); want != "" && !strings.EqualFold(want, hex.EncodeToString(h.Sum(nil))) {
		return fmt.Errorf("fetch image %s: md5 %x, want %s", id, h.Sum(nil), want)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("fetch image %s: %w", id, err)
	}
	return nil
}

// ensureImage fetches image id into the cache when it is missing and a
// Fetcher is configured; resolveImage then checks what is there.
func (d *Driver) ensureImage(ctx context.Context, id string) error {
	if d.cfg.Fetch == nil {
		return nil
	}
	if _, err := uuid.Parse(id); err != nil {
		return nil // resolveImage reports it
	}
	dst := filepath.Join(d.cfg.ImageDir, id)
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := d.cfg.Fetch.Fetch(ctx, id, dst); err != nil {
		return fmt.Errorf("%w: %v", driver.ErrImage, err)
	}
	return nil
}
