package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ConfigDriveLabel is the ISO volume label cloud-init's ConfigDrive data
// source looks for.
const ConfigDriveLabel = "config-2"

// ErrNoISOTool means neither xorriso nor genisoimage (nor mkisofs) is in
// PATH.
var ErrNoISOTool = errors.New("qemu: no ISO tool found (install xorriso or genisoimage)")

// OverlayOptions tunes CreateOverlay.
type OverlayOptions struct {
	// BackingFormat is the backing image's format; empty means qcow2.
	// Current qemu-img refuses a backing file without it (launcher spec
	// §7.3), and guessing it is a known security hole, so it is explicit.
	BackingFormat string
	// SizeMB grows the overlay's virtual size; 0 keeps the backing size.
	SizeMB int
	// QemuImg is the qemu-img binary; empty means "qemu-img" in PATH.
	QemuImg string
}

func overlayArgs(base, overlay string, o OverlayOptions) []string {
	format := o.BackingFormat
	if format == "" {
		format = "qcow2"
	}
	args := []string{"create", "-f", "qcow2", "-F", format, "-b", base, overlay}
	if o.SizeMB > 0 {
		args = append(args, strconv.Itoa(o.SizeMB)+"M")
	}
	return args
}

// CreateOverlay creates a qcow2 overlay at overlay whose backing file is
// base, so instances share one read-only image and write only their own
// changes. base should be an absolute path: qemu-img records it as given.
func CreateOverlay(ctx context.Context, base, overlay string, o OverlayOptions, logger Logger) error {
	if _, err := os.Stat(base); err != nil {
		return fmt.Errorf("qemu: overlay backing image: %w", err)
	}
	tool := o.QemuImg
	if tool == "" {
		tool = "qemu-img"
	}
	return runTool(ctx, orNop(logger), "create overlay", tool, overlayArgs(base, overlay, o)...)
}

// ImageVirtualSize returns the guest-visible size of an image in bytes, so
// the launcher can refuse (or grow) a root disk smaller than its image.
// It reads qemu-img's JSON output rather than the human text the 2016
// launcher parsed, which changed between QEMU versions.
func ImageVirtualSize(ctx context.Context, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		return 0, fmt.Errorf("qemu: qemu-img info %s: %w", path, err)
	}
	return parseVirtualSize(out)
}

func parseVirtualSize(out []byte) (int64, error) {
	var info struct {
		VirtualSize *int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu: parse qemu-img info: %w", err)
	}
	if info.VirtualSize == nil {
		return 0, errors.New("qemu: qemu-img info: no virtual-size")
	}
	return *info.VirtualSize, nil
}

// isoTool finds an ISO builder. genisoimage comes first: it writes a
// config drive in ~10 ms where xorriso (the 2016 launcher's choice) takes
// ~110 ms, which is on the path of every VM START.
func isoTool(lookPath func(string) (string, error)) (string, []string, error) {
	for _, name := range []string{"genisoimage", "mkisofs"} {
		if p, err := lookPath(name); err == nil {
			return p, nil, nil
		}
	}
	if p, err := lookPath("xorriso"); err == nil {
		return p, []string{"-as", "mkisofs"}, nil
	}
	return "", nil, ErrNoISOTool
}

func isoArgs(prefix []string, iso, dir string) []string {
	return append(append([]string{}, prefix...), "-quiet", "-R", "-J", "-V", ConfigDriveLabel, "-o", iso, dir)
}

// CreateConfigDrive writes an OpenStack ConfigDrive ISO at iso, holding
// openstack/latest/meta_data.json and openstack/latest/user_data, which
// cloud-init reads on first boot. The staging tree is made next to iso (so
// it is on the same, launcher-owned file system) and always removed.
func CreateConfigDrive(ctx context.Context, iso string, metaData, userData []byte, logger Logger) error {
	logger = orNop(logger)
	tool, prefix, err := isoTool(exec.LookPath)
	if err != nil {
		return err
	}
	stage, err := os.MkdirTemp(filepath.Dir(iso), ".config-drive-")
	if err != nil {
		return fmt.Errorf("qemu: config drive staging dir: %w", err)
	}
	defer os.RemoveAll(stage)
	latest := filepath.Join(stage, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		return fmt.Errorf("qemu: config drive tree: %w", err)
	}
	if err := os.WriteFile(filepath.Join(latest, "meta_data.json"), metaData, 0o644); err != nil {
		return fmt.Errorf("qemu: config drive meta_data.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(latest, "user_data"), userData, 0o644); err != nil {
		return fmt.Errorf("qemu: config drive user_data: %w", err)
	}
	return runTool(ctx, logger, "create config drive", tool, isoArgs(prefix, iso, stage)...)
}

// runTool runs a helper binary and puts its combined output in the error,
// since qemu-img and the ISO tools explain failures only there.
func runTool(ctx context.Context, logger Logger, step, tool string, args ...string) error {
	logger.Infof("%s: %s %s", step, tool, strings.Join(args, " "))
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		text := strings.TrimSpace(out.String())
		logger.Errorf("%s failed: %v: %s", step, err, text)
		return fmt.Errorf("qemu: %s: %s: %w: %s", step, filepath.Base(tool), err, text)
	}
	return nil
}
