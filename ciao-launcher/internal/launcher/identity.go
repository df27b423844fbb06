package launcher

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// ErrAlreadyRunning: another launcher holds the lock file.
var ErrAlreadyRunning = errors.New("launcher: already running")

// lockFile takes an exclusive flock on path, held until the returned file
// is closed. Go opens it close-on-exec, so instances do not inherit it
// (the 2016 launcher leaked its lock into every QEMU).
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is locked: %v", ErrAlreadyRunning, path, err)
	}
	return f, nil
}

// certRoles reads the SSNTP roles of the first certificate in a PEM file.
func certRoles(path string) (ssntp.Role, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return 0, fmt.Errorf("%s: no certificate", path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		return ssntp.RoleFromCert(c), nil
	}
}

// nodeUUID returns the launcher's persistent SSNTP UUID for role, creating
// and storing one on first use.
func nodeUUID(dir string, role ssntp.Role) (uuid.UUID, error) {
	path := filepath.Join(dir, fmt.Sprintf("0x%x", uint32(role)))
	if b, err := os.ReadFile(path); err == nil {
		id, err := uuid.Parse(strings.TrimSpace(string(b)))
		if err == nil {
			return id, nil
		}
		glog.Warningf("launcher: ignoring corrupt UUID file %s: %v", path, err)
	} else if !errors.Is(err, os.ErrNotExist) {
		return uuid.Nil, fmt.Errorf("reading node UUID: %w", err)
	}
	id := uuid.Generate()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return uuid.Nil, fmt.Errorf("node UUID directory: %w", err)
	}
	if err := writeFileAtomic(path, []byte(id.String()+"\n"), 0o644); err != nil {
		return uuid.Nil, fmt.Errorf("storing node UUID: %w", err)
	}
	return id, nil
}

// writeFileAtomic replaces path with data, durably: a reader (or a
// launcher that crashed half way, or a node that lost power) sees the old
// content or the new, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, true)
}

// replaceFile replaces path with data through a temporary file and a
// rename, so that a reader or a killed launcher sees the old content or the
// new, never a mix. durable adds the two syncs (file before the rename,
// directory after it) that make the new content survive a power loss;
// without them it survives any death of the process, not of the node.
func replaceFile(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if durable {
		syncDir(dir)
	}
	return nil
}

// syncDir makes dir's entries durable, as far as the file system allows
// (some cannot sync a directory; nothing more can be done there).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
