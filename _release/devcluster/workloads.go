package devcluster

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the controller's SQLite driver
)

// Workload is one of the dev cluster's default workloads.
type Workload struct {
	ID, Description string
	VMType, FWType  string // vm_type docker or qemu; fw_type legacy
	ImageID         string // qemu: the image in the launcher's image cache
	ImageName       string // docker: the local image
	Config          string // cloud-init user data
	VCPUs, MemMB    int
	DiskMB          int
}

// Ids of the dev workloads and of the VM image (fixed, so that a second
// run finds what the first made).
const (
	WorkloadContainer = "5f0d3c8e-5b1a-4c43-9d0e-6c1a0d0e0c01"
	WorkloadVM        = "5f0d3c8e-5b1a-4c43-9d0e-6c1a0d0e0c02"
	WorkloadProcess   = "5f0d3c8e-5b1a-4c43-9d0e-6c1a0d0e0c03"
	VMImageID         = "5f0d3c8e-5b1a-4c43-9d0e-6c1a0d0e1001"
	containerImageID  = "5f0d3c8e-5b1a-4c43-9d0e-6c1a0d0e1002"
	// ContainerImage is the busybox image scripts/test-image.sh imports.
	ContainerImage = "ciao-test/busybox:latest"
)

// DevWorkloads are the workloads the dev cluster registers: a busybox
// container, a small VM booting the locally built kernel and initramfs,
// and a bare-metal process.
func DevWorkloads() []Workload {
	loop := `[ /bin/sh, -c, "while true; do sleep 60; done" ]`
	return []Workload{
		{ID: WorkloadContainer, Description: "Busybox container (dev)", VMType: "docker", FWType: "legacy",
			ImageID: containerImageID, ImageName: ContainerImage,
			Config: "---\n#cloud-config\nruncmd:\n  - " + loop + "\n...\n", VCPUs: 1, MemMB: 64, DiskMB: 16},
		{ID: WorkloadVM, Description: "Busybox VM (dev kernel + initramfs)", VMType: "qemu", FWType: "legacy",
			ImageID: VMImageID, Config: "---\n#cloud-config\nruncmd:\n  - [ touch, /etc/bootdone ]\n...\n",
			VCPUs: 1, MemMB: 256, DiskMB: 64},
		{ID: WorkloadProcess, Description: "Bare-metal process (dev)", VMType: "qemu", FWType: "legacy",
			ImageID: VMImageID, Config: "---\n#cloud-config\n#ciao-process\nruncmd:\n  - [ /bin/sleep, infinity ]\n...\n",
			VCPUs: 1, MemMB: 32, DiskMB: 1},
	}
}

// registerWorkloads writes the dev workloads into the controller's
// database, updating them in place on a second run.
//
// Workaround: the controller has no API to create a workload (its
// workloads are compiled in), so this writes the rows of
// ciao-controller/internal/datastore/migrations/0001_init.sql directly.
// The controller reads workloads from the database on every request, so
// the rows are seen at once, even by a running controller.
func registerWorkloads(ctx context.Context, dbPath string, ws []Workload) error {
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?_busy_timeout=10000&_foreign_keys=1")
	if err != nil {
		return fmt.Errorf("register workloads: %w", err)
	}
	defer db.Close()
	if err := checkColumns(ctx, db, "workloads", "id", "tenant_id", "description", "filename", "fw_type", "vm_type",
		"image_id", "image_name", "config", "internal"); err != nil {
		return err
	}
	if err := checkColumns(ctx, db, "workload_resources", "workload_id", "position", "resource", "value", "mandatory"); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("register workloads: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, w := range ws {
		_, err := tx.ExecContext(ctx, `INSERT INTO workloads (id, tenant_id, description, filename, fw_type, vm_type,
			image_id, image_name, config, internal) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT(id) DO UPDATE SET description = excluded.description, fw_type = excluded.fw_type,
			vm_type = excluded.vm_type, image_id = excluded.image_id, image_name = excluded.image_name,
			config = excluded.config`,
			w.ID, w.Description, "devcluster.yaml", w.FWType, w.VMType, w.ImageID, w.ImageName, w.Config)
		if err != nil {
			return fmt.Errorf("register workload %s: %w", w.ID, err)
		}
		for i, r := range []struct {
			name  string
			value int
		}{{"vcpus", w.VCPUs}, {"mem_mb", w.MemMB}, {"disk_mb", w.DiskMB}} {
			_, err := tx.ExecContext(ctx, `INSERT INTO workload_resources (workload_id, position, resource, value, mandatory)
				VALUES (?, ?, ?, ?, 1) ON CONFLICT(workload_id, position) DO UPDATE SET resource = excluded.resource,
				value = excluded.value, mandatory = 1`, w.ID, i, r.name, r.value)
			if err != nil {
				return fmt.Errorf("register workload %s: %s: %w", w.ID, r.name, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("register workloads: %w", err)
	}
	return nil
}

// checkColumns fails with a clear message when the controller's schema no
// longer has the columns registerWorkloads writes.
func checkColumns(ctx context.Context, db *sql.DB, table string, want ...string) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return fmt.Errorf("register workloads: schema of %s: %w", table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("register workloads: the controller's table %s lacks %s: its schema changed; update _release/devcluster/workloads.go",
			table, strings.Join(missing, ", "))
	}
	return nil
}

// installVMImage puts the kernel, initramfs and command line built by
// scripts/build-vm-image.sh into the launcher's image cache as
// <dir>/<VMImageID>/{kernel,initrd,cmdline} (the qemu driver's layout).
func installVMImage(src, dir string) error {
	dst := filepath.Join(dir, VMImageID)
	for from, to := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initrd", "cmdline": "cmdline"} {
		if err := copyFile(filepath.Join(src, from), filepath.Join(dst, to)); err != nil {
			return fmt.Errorf("VM image: %w", err)
		}
	}
	return os.Chmod(dst, 0o755)
}

// projectID reads the id of an identity project from the controller's
// database (same workaround as registerWorkloads: there is no API that
// lists projects to a member).
func projectID(ctx context.Context, dbPath, name string) (string, error) {
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?_busy_timeout=10000")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var id string
	if err := db.QueryRowContext(ctx, `SELECT id FROM identity_projects WHERE name = ? AND domain_id = 'default'`, name).Scan(&id); err != nil {
		return "", fmt.Errorf("project %s: %w", name, err)
	}
	return id, nil
}
