package devcluster

import (
	"bytes"
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

// CNCIWorkload is the internal workload the controller starts, with
// -network, as each tenant's CNCI on the network node (the 2016 id; its
// resources are the singlevm ones, controller.md §8.3). The network
// node's launcher runs it as a namespace with ciao-cnci-agent.
const CNCIWorkload = "eba04826-62a5-48bd-876f-9119667b1487"

// Workload definition files (controller.md §7.4, §8.2) in the state
// directory, passed to the controller as -tables_init_path and
// -workloads_path.
func (c Config) tablesDir() string    { return c.Path("controller", "tables") }
func (c Config) workloadsDir() string { return c.Path("controller", "workloads") }

// writeWorkloadFiles writes the dev workloads, and the CNCI workload, as
// the 2016 definition files: workload_template.csv and
// workload_resources.csv in the tables directory, one cloud-init file per
// workload in the workloads directory. The controller seeds them at start
// (an id it already has keeps its stored definition).
func (c Config) writeWorkloadFiles() error {
	for _, d := range []string{c.tablesDir(), c.workloadsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tmpl, res, yamls := workloadFiles(DevWorkloads())
	if err := writeFileAtomic(filepath.Join(c.tablesDir(), "workload_template.csv"), tmpl, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.tablesDir(), "workload_resources.csv"), res, 0o644); err != nil {
		return err
	}
	for name, b := range yamls {
		if err := writeFileAtomic(filepath.Join(c.workloadsDir(), name), b, 0o644); err != nil {
			return err
		}
	}
	return c.writeExampleWorkload()
}

// ExampleMarker is what the example workload's cloud-init writes to
// /tmp/ciao-example inside its container.
const ExampleMarker = "hello from a workload made from YAML"

// ExampleWorkload is the example workload definition (2017 YAML) the dev
// cluster writes for `ciao-cli workload create -yaml`, its cloud-init in
// the same directory.
func (c Config) ExampleWorkload() string { return c.Path("examples", "busybox-workload.yaml") }

// writeExampleWorkload writes ExampleWorkload and its cloud-init: a busybox
// container whose cloud-init writes ExampleMarker and then idles.
func (c Config) writeExampleWorkload() error {
	dir := filepath.Dir(c.ExampleWorkload())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	def := `# A workload of your own: ciao-cli workload create -yaml ` + c.ExampleWorkload() + `
# (ciao-cli workload create -help lists every field.)
description: "My busybox"
vm_type: docker
image_name: ` + ContainerImage + `
requirements:
  vcpus: 1
  mem_mb: 64
cloud_init: busybox-cloud-init.yaml
`
	ci := "#cloud-config\nruncmd:\n  - [ /bin/sh, -c, \"echo '" + ExampleMarker + "' > /tmp/ciao-example; while true; do sleep 60; done\" ]\n"
	if err := writeFileAtomic(filepath.Join(dir, "busybox-cloud-init.yaml"), []byte(ci), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(c.ExampleWorkload(), []byte(def), 0o644)
}

// workloadFiles renders the workloads, plus the CNCI, as the contents of
// workload_template.csv, workload_resources.csv and their cloud-init
// files by name.
func workloadFiles(ws []Workload) (template, resources []byte, yamls map[string][]byte) {
	var t, r bytes.Buffer
	t.WriteString("# id, description, filename, fw_type, vm_type, image_id, image_name, internal\n")
	r.WriteString("# workload_id, resource_id, default_value, estimated_value, mandatory\n")
	yamls = map[string][]byte{}
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	row := func(id, desc, file, fw, vm, image, name string, internal int, res ...[2]int) {
		fmt.Fprintf(&t, "%s, %s, %s, %s, %s, %s, %s, %d\n", id, q(desc), file, q(fw), vm, image, q(name), internal)
		for _, x := range res {
			fmt.Fprintf(&r, "%s, %d, %d, %d, 1\n", id, x[0], x[1], x[1])
		}
	}
	// Resource ids of controller.md §4.5: 2 vcpus, 3 mem_mb, 4 disk_mb,
	// 5 network_node.
	for _, w := range ws {
		file := "dev-" + w.ID + ".yaml"
		yamls[file] = []byte(w.Config)
		row(w.ID, w.Description, file, w.FWType, w.VMType, w.ImageID, w.ImageName, 0,
			[2]int{2, w.VCPUs}, [2]int{3, w.MemMB}, [2]int{4, w.DiskMB})
	}
	yamls["cnci.yaml"] = []byte("---\n#cloud-config\n...\n")
	row(CNCIWorkload, "CNCI", "cnci.yaml", "efi", "qemu", "4e16e743-265a-4bf2-9fd1-57ada0b28904", "", 1,
		[2]int{2, 4}, [2]int{3, 128}, [2]int{4, 128}, [2]int{5, 1})
	return t.Bytes(), r.Bytes(), yamls
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
// database (a workaround: there is no API that lists projects to a
// member).
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
