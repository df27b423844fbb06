// Package release builds a versioned Ciao release: the commands, the
// systemd units and an install script in
// dist/ciao-<version>-<os>-<arch>.tar.gz, the notes generated from the git
// history (package relnotes) in dist/RELEASE-NOTES-<version>.md, and
// dist/SHA256SUMS over both.
//
// The tarball is reproducible for a given commit: entries are sorted,
// owned by root, stamped with the commit time, and the binaries are built
// with -trimpath and without a build id.
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ciao-project/ciao/_release/relnotes"
)

// Commands are the binaries a release ships, as package paths.
var Commands = []string{
	"./ciao-scheduler", "./ciao-controller", "./ciao-launcher", "./ciao-cli", "./ciao-webui",
	"./networking/ciao-cnci-agent", "./ssntp/ciao-cert", "./osprepare/cmd/ciao-osprepare",
}

// Config says what to build.
type Config struct {
	Version string // x.y.z
	RepoDir string // source tree (a git repository)
	OutDir  string // where the tarball, notes and SHA256SUMS go
	GOOS    string
	GOARCH  string
	Logf    func(format string, args ...any)
}

// NewConfig is linux/amd64 from the working directory into ./dist.
func NewConfig() Config {
	return Config{RepoDir: ".", OutDir: "dist", GOOS: "linux", GOARCH: "amd64"}
}

// ErrConfig: an invalid configuration.
var ErrConfig = errors.New("release: invalid configuration")

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := relnotes.CheckVersion(c.Version); err != nil {
		return err
	}
	if c.RepoDir == "" || c.OutDir == "" || c.GOOS == "" || c.GOARCH == "" {
		return fmt.Errorf("%w: repository, output directory, GOOS and GOARCH are required", ErrConfig)
	}
	return nil
}

// Name is the release's base name, ciao-<version>-<os>-<arch>.
func (c Config) Name() string { return fmt.Sprintf("ciao-%s-%s-%s", c.Version, c.GOOS, c.GOARCH) }

// Result lists the files Build wrote.
type Result struct {
	Tarball, Notes, Sums string
}

// Build builds the release (package doc).
func Build(ctx context.Context, c Config) (Result, error) {
	var r Result
	if err := c.Validate(); err != nil {
		return r, err
	}
	notes, err := relnotes.Collect(ctx, c.RepoDir, c.Version)
	if err != nil {
		return r, err
	}
	stage, err := os.MkdirTemp("", "ciao-release-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, c.Name())
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		return r, err
	}
	c.logf("release: building %d commands for %s/%s", len(Commands), c.GOOS, c.GOARCH)
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=",
		"-o", filepath.Join(root, "bin") + "/"}, Commands...)...)
	cmd.Dir = c.RepoDir
	cmd.Env = append(os.Environ(), "GOOS="+c.GOOS, "GOARCH="+c.GOARCH, "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("release: go build: %w\n%s", err, out)
	}
	files := map[string]string{ // source in the repo → path in the release
		"README.md": "README.md",
	}
	units, err := filepath.Glob(filepath.Join(c.RepoDir, "_release", "systemd", "*"))
	if err != nil {
		return r, err
	}
	for _, u := range units {
		if base := filepath.Base(u); !strings.HasSuffix(base, ".go") {
			files[filepath.Join("_release", "systemd", base)] = filepath.Join("systemd", base)
		}
	}
	for src, dst := range files {
		b, err := os.ReadFile(filepath.Join(c.RepoDir, src))
		if err != nil {
			return r, err
		}
		if err := writeFile(filepath.Join(root, dst), b, 0o644); err != nil {
			return r, err
		}
	}
	md := notes.Markdown()
	if err := writeFile(filepath.Join(root, "RELEASE-NOTES.md"), []byte(md), 0o644); err != nil {
		return r, err
	}
	if err := writeFile(filepath.Join(root, "install.sh"), []byte(installScript), 0o755); err != nil {
		return r, err
	}
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return r, err
	}
	r.Tarball = filepath.Join(c.OutDir, c.Name()+".tar.gz")
	r.Notes = filepath.Join(c.OutDir, "RELEASE-NOTES-"+c.Version+".md")
	r.Sums = filepath.Join(c.OutDir, "SHA256SUMS")
	if err := WriteTarball(r.Tarball, stage, c.Name(), notes.Date); err != nil {
		return r, err
	}
	if err := os.WriteFile(r.Notes, []byte(md), 0o644); err != nil {
		return r, err
	}
	return r, WriteSums(r.Sums, r.Tarball, r.Notes)
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, mode)
}

// WriteTarball writes base/top and everything under it as a gzipped tar
// at path, reproducibly: sorted entries, root ownership, modification
// time mtime, modes 0755 or 0644 only.
func WriteTarball(path, base, top string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(filepath.Join(base, top), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("release: %s is neither a file nor a directory", p)
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime.UTC(), Uname: "root", Gname: "root", Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		default:
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, fi.Size(), 0o644
			if fi.Mode()&0o111 != 0 {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.IsDir() {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// WriteSums writes path in sha256sum(1) format over files (named by
// their base names, so `sha256sum -c` runs in their directory).
func WriteSums(path string, files ...string) error {
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), filepath.Base(f))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// installScript installs an unpacked release on a machine with systemd.
const installScript = `#!/bin/sh
# Installs this Ciao release: binaries into /usr/local/bin, the systemd
# units, the tmpfiles.d and sysusers.d snippets; then reloads systemd.
# Enable what this machine runs, e.g.:
#   systemctl enable --now ciao-scheduler ciao-controller ciao-webui   # controller machine
#   systemctl enable --now ciao-launcher                               # node
set -eu
cd "$(dirname "$0")"
install -m 0755 bin/* /usr/local/bin/
install -m 0644 systemd/*.service systemd/ciao.target /etc/systemd/system/
install -D -m 0644 systemd/ciao.conf /usr/lib/tmpfiles.d/ciao.conf
install -D -m 0644 systemd/ciao.sysusers /usr/lib/sysusers.d/ciao.conf
mkdir -p /etc/ciao /etc/pki/ciao
if [ -d /run/systemd/system ]; then
	systemd-sysusers /usr/lib/sysusers.d/ciao.conf
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/ciao.conf
	systemctl daemon-reload
fi
echo "ciao installed; certificates go in /etc/pki/ciao (see systemd/README.md)"
`
