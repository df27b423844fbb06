package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciao-project/ciao/_release/relnotes"
)

func stage(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for name, mode := range map[string]os.FileMode{"ciao-1.0.0/bin/ciao-cli": 0o700, "ciao-1.0.0/README.md": 0o600,
		"ciao-1.0.0/systemd/ciao.target": 0o640} {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

func TestWriteTarballIsReproducible(t *testing.T) {
	base := stage(t)
	out := t.TempDir()
	at := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	a, b := filepath.Join(out, "a.tar.gz"), filepath.Join(out, "b.tar.gz")
	if err := WriteTarball(a, base, "ciao-1.0.0", at); err != nil {
		t.Fatal(err)
	}
	// Later file times and another umask must not change the archive.
	if err := os.Chtimes(filepath.Join(base, "ciao-1.0.0", "README.md"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(b, base, "ciao-1.0.0", at); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two archives of the same tree differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(ab))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(at) {
			t.Errorf("%s: uid %d gid %d time %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		want := int64(0o644)
		if h.Typeflag == tar.TypeDir || h.Name == "ciao-1.0.0/bin/ciao-cli" {
			want = 0o755
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	wantNames := []string{"ciao-1.0.0/", "ciao-1.0.0/README.md", "ciao-1.0.0/bin/", "ciao-1.0.0/bin/ciao-cli",
		"ciao-1.0.0/systemd/", "ciao-1.0.0/systemd/ciao.target"}
	if len(names) != len(wantNames) {
		t.Fatalf("entries %q, want %q", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Fatalf("entries %q, want %q", names, wantNames)
		}
	}
}

func TestWriteSumsChecksWithSha256sum(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ciao-1.0.0-linux-amd64.tar.gz"), filepath.Join(dir, "RELEASE-NOTES-1.0.0.md")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sums := filepath.Join(dir, "SHA256SUMS")
	if err := WriteSums(sums, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum")
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if err := os.WriteFile(a, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Fatal("sha256sum -c accepts a changed tarball")
	}
}

func TestValidate(t *testing.T) {
	c := NewConfig()
	c.Version = "1.2"
	if err := c.Validate(); !errors.Is(err, relnotes.ErrVersion) {
		t.Errorf("version 1.2: %v", err)
	}
	c.Version, c.OutDir = "1.2.3", ""
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("no output directory: %v", err)
	}
	c.OutDir = "dist"
	if err := c.Validate(); err != nil || c.Name() != "ciao-1.2.3-linux-amd64" {
		t.Errorf("valid config: %v, name %s", err, c.Name())
	}
}
