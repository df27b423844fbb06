package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/uuid"
)

// bootImage is a cached image resolved from an image_uuid.
type bootImage struct {
	Disk       string // backing disk image, "" when the image is kernel-only
	DiskFormat string // "qcow2" or "raw"
	Kernel     string // direct kernel boot, "" to boot from Disk
	Initrd     string
	Cmdline    string
}

// qcow2Magic starts every qcow2 file ("QFI\xfb").
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// resolveImage finds image id under dir (layout in the package doc). Every
// failure wraps driver.ErrImage, which the launcher reports as
// image_failure.
func resolveImage(dir, id string) (bootImage, error) {
	if _, err := uuid.Parse(id); err != nil {
		// Also keeps "../x" and friends out of the image directory.
		return bootImage{}, fmt.Errorf("%w: image %q is not a uuid", driver.ErrImage, id)
	}
	base := filepath.Join(dir, id)
	fi, err := os.Stat(base)
	if err != nil {
		return bootImage{}, fmt.Errorf("%w: backing image %s does not exist: %v", driver.ErrImage, id, err)
	}
	var img bootImage
	if fi.Mode().IsRegular() {
		img.Disk = base
	} else {
		img.Disk = firstExisting(filepath.Join(base, "disk.qcow2"), filepath.Join(base, "disk.raw"), filepath.Join(base, "disk.img"))
		img.Kernel = firstExisting(filepath.Join(base, "kernel"))
		img.Initrd = firstExisting(filepath.Join(base, "initrd"))
		if b, err := os.ReadFile(filepath.Join(base, "cmdline")); err == nil {
			img.Cmdline = strings.TrimSpace(string(b))
		}
		if img.Kernel == "" && img.Initrd != "" {
			return bootImage{}, fmt.Errorf("%w: image %s has an initrd but no kernel", driver.ErrImage, id)
		}
	}
	if img.Disk == "" && img.Kernel == "" {
		return bootImage{}, fmt.Errorf("%w: image %s has neither a disk nor a kernel", driver.ErrImage, id)
	}
	if img.Disk != "" {
		if img.DiskFormat, err = diskFormat(img.Disk); err != nil {
			return bootImage{}, fmt.Errorf("%w: image %s: %v", driver.ErrImage, id, err)
		}
	}
	return img, nil
}

func firstExisting(paths ...string) string {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// diskFormat tells qcow2 from raw by the magic: the overlay must name its
// backing format (launcher spec §7.3) and letting qemu-img guess it is a
// known way for a raw guest disk to pass itself off as qcow2.
func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, err := io.ReadFull(f, magic)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %v", path, err)
	}
	if bytes.Equal(magic[:n], qcow2Magic) {
		return "qcow2", nil
	}
	return "raw", nil
}
