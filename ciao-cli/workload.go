package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
	yaml "gopkg.in/yaml.v2"
)

// workload create / delete / show: the controller's workloads API
// (controller.md §14, cli.md §11).

const workloadYAMLHelp = `The -yaml file is a workload definition (2017 form):

	description: "Debian latest"     # the name shown by workload list (required)
	vm_type: docker                  # qemu or docker (required)
	fw_type: legacy                  # qemu: efi or legacy (default legacy); docker: leave out
	image_name: debian:latest        # docker: the image reference (required for docker)
	image_id: <image UUID>           # qemu: the backing image, or give a bootable image disk
	requirements:                    # what each instance gets ("defaults" is accepted too)
	  vcpus: 2
	  mem_mb: 512
	  disk_mb: 0                     # optional
	cloud_init: debian.yaml          # the cloud-init file, relative to this file (required)
	disks:                           # qemu only; the controller has no block storage,
	  - bootable: true               # so only a bootable disk made from an image is taken
	    ephemeral: true
	    source:
	      type: image                # (or service: image)
	      source: <image UUID>       # (or id: <image UUID>)

The workload is private to the current tenant; -public creates a public one
(admin).`

func workloadCreateSub() subcommand {
	return subcommand{name: "create", desc: "Create a workload from a YAML definition\n\n" + workloadYAMLHelp, setup: workloadCreate}
}

func workloadDeleteSub() subcommand {
	return subcommand{name: "delete", desc: "Delete a workload no instance uses: one of the current tenant's, or with -public any (admin)",
		setup: workloadDelete}
}

func workloadShowSub() subcommand {
	return subcommand{name: "show", desc: "Show a workload: a public one or one of the current tenant's", setup: workloadShow,
		data: `client.Workload:

	ID, TenantID, Visibility, Description, FWType, VMType, ImageID, ImageName, Config string
	Requirements struct{ VCPUs, MemMB, DiskMB int }
	Storage []struct{ SourceType, SourceID string; Size int; Bootable, Ephemeral bool }

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`}
}

// workloadFile is the YAML definition ciao-cli reads.
type workloadFile struct {
	Description  string         `yaml:"description"`
	VMType       string         `yaml:"vm_type"`
	FWType       string         `yaml:"fw_type"`
	ImageName    string         `yaml:"image_name"`
	ImageID      string         `yaml:"image_id"`
	Requirements *workloadReqs  `yaml:"requirements"`
	Defaults     *workloadReqs  `yaml:"defaults"` // the early 2017 name
	CloudInit    string         `yaml:"cloud_init"`
	Disks        []workloadDisk `yaml:"disks"`
}

type workloadReqs struct {
	VCPUs  int `yaml:"vcpus"`
	MemMB  int `yaml:"mem_mb"`
	DiskMB int `yaml:"disk_mb"`
}

type workloadDisk struct {
	VolumeID  string `yaml:"volume_id"`
	Size      int    `yaml:"size"`
	Bootable  bool   `yaml:"bootable"`
	Ephemeral bool   `yaml:"ephemeral"`
	Source    *struct {
		Type    string `yaml:"type"`
		Service string `yaml:"service"`
		Source  string `yaml:"source"`
		ID      string `yaml:"id"`
	} `yaml:"source"`
}

// maxWorkloadFile bounds the YAML and cloud-init files read.
const maxWorkloadFile = 1 << 20

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxWorkloadFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxWorkloadFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxWorkloadFile)
	}
	return b, nil
}

// unknownKey is yaml.v2's strict-mode complaint, which names a Go type.
var unknownKey = regexp.MustCompile(`field (\S+) not found in type \S+`)

// parseWorkloadYAML decodes a workload definition file's bytes, one
// pass of one strict decoder. Unknown keys are refused, so a misspelt
// key is not silently dropped, and so is a second document.
func parseWorkloadYAML(data []byte) (workloadFile, error) {
	var wf workloadFile
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.SetStrict(true)
	if err := d.Decode(&wf); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		msg := unknownKey.ReplaceAllString(err.Error(), "unknown key $1")
		return wf, fmt.Errorf("not a workload definition: %s", strings.TrimPrefix(msg, "yaml: "))
	}
	var rest any
	if err := d.Decode(&rest); !errors.Is(err, io.EOF) {
		return wf, errors.New("not a workload definition: more than one YAML document")
	}
	return wf, nil
}

// definition turns wf into the API request; readFile reads the
// cloud_init file (already resolved against the YAML file's directory).
func (wf workloadFile) definition(readFile func(string) ([]byte, error), dir string) (client.WorkloadDefinition, error) {
	def := client.WorkloadDefinition{Description: wf.Description, VMType: wf.VMType, FWType: wf.FWType,
		ImageName: wf.ImageName, ImageID: wf.ImageID}
	switch {
	case wf.Requirements != nil && wf.Defaults != nil:
		return def, errors.New("give requirements or defaults, not both")
	case wf.Requirements != nil:
		def.Requirements = client.WorkloadRequirements(*wf.Requirements)
	case wf.Defaults != nil:
		def.Requirements = client.WorkloadRequirements(*wf.Defaults)
	default:
		return def, errors.New("requirements (vcpus, mem_mb) are required")
	}
	if wf.CloudInit == "" {
		return def, errors.New("cloud_init (the cloud-init file) is required")
	}
	path := wf.CloudInit
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := readFile(path)
	if err != nil {
		return def, fmt.Errorf("cloud_init: %w", err)
	}
	def.Config = string(b)
	for i, d := range wf.Disks {
		disk := client.WorkloadDisk{Size: d.Size, Bootable: d.Bootable, Ephemeral: d.Ephemeral}
		switch {
		case d.VolumeID != "" && d.Source != nil:
			return def, fmt.Errorf("disks[%d]: give volume_id or source, not both", i)
		case d.VolumeID != "":
			disk.SourceType, disk.SourceID = "volume", d.VolumeID
		case d.Source != nil:
			disk.SourceType, disk.SourceID = d.Source.Type, d.Source.Source
			if disk.SourceType == "" {
				disk.SourceType = d.Source.Service
			}
			if disk.SourceID == "" {
				disk.SourceID = d.Source.ID
			}
		default:
			disk.SourceType = "empty"
		}
		def.Storage = append(def.Storage, disk)
	}
	return def, nil
}

func workloadCreate(fs *flag.FlagSet) func(context.Context, *app) error {
	file := fs.String("yaml", "", "YAML file defining the workload (see above)")
	public := fs.Bool("public", false, "create a public workload, visible to every tenant (admin)")
	return func(ctx context.Context, a *app) error {
		if *file == "" {
			return &usageMsg{"missing required -yaml parameter"}
		}
		data, err := readLimited(*file)
		if err != nil {
			return fmt.Errorf("read workload definition: %w", err)
		}
		wf, err := parseWorkloadYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		def, err := wf.definition(readLimited, filepath.Dir(*file))
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		tenant, err := workloadTenant(ctx, a, *public)
		if err != nil {
			return err
		}
		w, err := a.api.CreateWorkload(ctx, tenant, def)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Created new workload: %s\n", w.ID)
		return nil
	}
}

// workloadTenant is the tenant whose workloads path -public=false acts
// on, "" (the admin path /workloads) with -public.
func workloadTenant(ctx context.Context, a *app, public bool) (string, error) {
	if public {
		return "", nil
	}
	return a.tenant(ctx)
}

func workloadDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("workload", "", "Workload UUID")
	public := fs.Bool("public", false, "delete through the admin path: any workload, public ones included (admin)")
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -workload parameter"}
		}
		tenant, err := workloadTenant(ctx, a, *public)
		if err != nil {
			return err
		}
		if err := a.api.DeleteWorkload(ctx, tenant, *id); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Deleted workload: %s\n", *id)
		return nil
	}
}

func workloadShow(fs *flag.FlagSet) func(context.Context, *app) error {
	return showOne(fs, "workload", "Workload UUID", func(ctx context.Context, a *app, id string) (client.Workload, error) {
		t, err := a.tenant(ctx)
		if err != nil {
			return client.Workload{}, err
		}
		return a.api.ShowWorkload(ctx, t, id)
	}, writeWorkload)
}

func writeWorkload(out io.Writer, w client.Workload) {
	vis := w.Visibility
	if w.TenantID != "" {
		vis += " (tenant " + w.TenantID + ")"
	}
	fmt.Fprintf(out, "Workload %s\n\tName: %s\n\tVisibility: %s\n\tVM type: %s\n", w.ID, w.Description, vis, w.VMType)
	if w.FWType != "" {
		fmt.Fprintf(out, "\tFirmware: %s\n", w.FWType)
	}
	if w.ImageID != "" {
		fmt.Fprintf(out, "\tImage UUID: %s\n", w.ImageID)
	}
	if w.ImageName != "" {
		fmt.Fprintf(out, "\tImage name: %s\n", w.ImageName)
	}
	fmt.Fprintf(out, "\tCPUs: %d\n\tMemory: %d MB\n", w.Requirements.VCPUs, w.Requirements.MemMB)
	if w.Requirements.DiskMB > 0 {
		fmt.Fprintf(out, "\tDisk: %d MB\n", w.Requirements.DiskMB)
	}
	for _, d := range w.Storage {
		fmt.Fprintf(out, "\tDisk from %s %s (bootable %t, ephemeral %t)\n", d.SourceType, d.SourceID, d.Bootable, d.Ephemeral)
	}
	fmt.Fprintf(out, "\tCloud-init:\n")
	for _, l := range strings.Split(strings.TrimSuffix(w.Config, "\n"), "\n") {
		fmt.Fprintf(out, "\t\t%s\n", l)
	}
}
