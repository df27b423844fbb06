package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// Workloads made through the workloads API (controller.md §14, the 2017
// POST /workloads and /{tenant}/workloads). A definition arrives as the
// JSON WorkloadSpec, is checked by ParseWorkloadSpec and Build, and is
// stored as a datastore.Workload beside the ones of the definition files;
// from then on it is an ordinary workload (flavor listings, Launch, START
// composition).

// Sentinels of the workloads API; each wraps into the error returned.
var (
	// ErrWorkloadSpec: the definition is malformed or refused. The
	// message says which field and why.
	ErrWorkloadSpec = errors.New("controller: bad workload definition")
	// ErrWorkloadPublic: a tenant asked to delete a public workload
	// (only an admin may, through DELETE /workloads/{id}).
	ErrWorkloadPublic = errors.New("controller: public workload")
	// ErrWorkloadInternal: the workload is internal (the CNCI) and
	// cannot be deleted.
	ErrWorkloadInternal = errors.New("controller: internal workload")
)

// Bounds of a workload definition.
const (
	MaxWorkloadVCPUs  = 1024
	MaxWorkloadMemMB  = 4 << 20 // 4 TiB
	MaxWorkloadDiskMB = 1 << 30
	maxDescription    = 256
	maxImageName      = 255
	maxWorkloadDisks  = 16
	// MaxPrivateWorkloads bounds each tenant's private workloads (every
	// workload is held in memory by the store).
	MaxPrivateWorkloads    = 100
	workloadSourceImage    = "image"
	workloadSourceVolume   = "volume"
	defaultQemuFirmware    = "legacy"
	workloadPublicVisible  = "public"
	workloadPrivateVisible = "private"
)

// WorkloadRequirements are the resources every instance of a workload
// asks for.
type WorkloadRequirements struct {
	VCPUs  int `json:"vcpus"`
	MemMB  int `json:"mem_mb"`
	DiskMB int `json:"disk_mb,omitempty"` // optional; 0 = not requested
}

// WorkloadSpec is the JSON body of POST /workloads and
// /{tenant}/workloads: the 2017 workload definition.
type WorkloadSpec struct {
	Description  string                   `json:"description"`
	FWType       string                   `json:"fw_type"`
	VMType       string                   `json:"vm_type"`
	ImageID      string                   `json:"image_id,omitempty"` // qemu: the backing image
	ImageName    string                   `json:"image_name"`         // docker: the image reference
	Requirements WorkloadRequirements     `json:"requirements"`
	Config       string                   `json:"config"` // the cloud-init document
	Storage      []datastore.WorkloadDisk `json:"storage,omitempty"`
}

// WorkloadView is a workload as the workloads API shows it.
type WorkloadView struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id,omitempty"` // owner of a private workload
	Visibility string `json:"visibility"`          // public or private
	WorkloadSpec
}

// ViewOf is w as the workloads API shows it.
func ViewOf(w datastore.Workload) WorkloadView {
	v := WorkloadView{ID: w.ID, TenantID: w.TenantID, Visibility: workloadPublicVisible, WorkloadSpec: WorkloadSpec{
		Description: w.Description, FWType: w.FWType, VMType: w.VMType, ImageID: w.ImageID, ImageName: w.ImageName,
		Config: w.Config, Storage: w.Storage}}
	if w.TenantID != "" {
		v.Visibility = workloadPrivateVisible
	}
	for _, d := range w.Defaults {
		switch d.Type {
		case datastore.ResVCPUs:
			v.Requirements.VCPUs = d.Value
		case datastore.ResMemMB:
			v.Requirements.MemMB = d.Value
		case datastore.ResDiskMB:
			v.Requirements.DiskMB = d.Value
		}
	}
	return v
}

func specErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrWorkloadSpec, fmt.Sprintf(format, a...))
}

// ParseWorkloadSpec decodes one JSON WorkloadSpec. Unknown fields, a
// second value and wrong types are refused; errors wrap ErrWorkloadSpec.
func ParseWorkloadSpec(body []byte) (WorkloadSpec, error) {
	var s WorkloadSpec
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return s, specErr("empty body: want a JSON workload definition")
		}
		return s, specErr("malformed JSON: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return s, specErr("malformed JSON: data after the workload definition")
	}
	return s, nil
}

// printable: valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// plainName: a docker image reference or id without white space or
// control characters.
func plainName(s string) bool {
	if !printable(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsSpace)
}

// NormalizeCloudInit makes config one YAML document as the START needs it
// (payloads.md §3.1): "---" first, "..." last.
func NormalizeCloudInit(config string) string {
	if config != "" && !strings.HasSuffix(config, "\n") {
		config += "\n"
	}
	if !strings.HasPrefix(config, "---") {
		config = "---\n" + config
	}
	lines := strings.Split(strings.TrimSuffix(config, "\n"), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "...") {
		config += "...\n"
	}
	return config
}

// checkCloudInit: config is one YAML mapping (or only comments) that the
// launcher gets back whole from a START.
func checkCloudInit(config string) error {
	var docs int
	dec := yaml.NewDecoder(strings.NewReader(config))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return specErr("config is not YAML: %v", err)
		}
		docs++
		if docs > 1 {
			return specErr("config holds more than one YAML document; cloud-init takes one")
		}
		switch v.(type) {
		case nil, map[any]any:
		default:
			return specErr("config is YAML but not a cloud-config mapping (got %T)", v)
		}
	}
	// The launcher splits the START at "---" and "..." lines: the
	// user-data it cuts out must be config, whole.
	id := uuid.Generate().String()
	p, err := payloads.ComposeStart(&payloads.Start{Start: payloads.StartCmd{InstanceUUID: id}}, config,
		payloads.StartMetadata{UUID: id, Hostname: id})
	if err != nil {
		return specErr("config: %v", err)
	}
	if _, ud, _, err := payloads.SplitStart(p); err != nil || string(ud) != config {
		return specErr("config does not survive the START payload (a \"---\", \"...\" or \"start:\" line inside it?)")
	}
	return nil
}

// Build checks s and returns the workload it defines for tenantID ("" =
// public), without an id. Errors wrap ErrWorkloadSpec.
func (s WorkloadSpec) Build(tenantID string) (datastore.Workload, error) {
	w := datastore.Workload{TenantID: tenantID, Description: s.Description, FWType: s.FWType, VMType: s.VMType,
		ImageID: s.ImageID, ImageName: s.ImageName}
	switch {
	case strings.TrimSpace(s.Description) == "":
		return w, specErr("description is required")
	case len(s.Description) > maxDescription || !printable(s.Description):
		return w, specErr("description must be at most %d bytes of printable UTF-8", maxDescription)
	case s.Requirements.VCPUs <= 0 || s.Requirements.VCPUs > MaxWorkloadVCPUs:
		return w, specErr("requirements.vcpus %d not in 1..%d", s.Requirements.VCPUs, MaxWorkloadVCPUs)
	case s.Requirements.MemMB <= 0 || s.Requirements.MemMB > MaxWorkloadMemMB:
		return w, specErr("requirements.mem_mb %d not in 1..%d", s.Requirements.MemMB, MaxWorkloadMemMB)
	case s.Requirements.DiskMB < 0 || s.Requirements.DiskMB > MaxWorkloadDiskMB:
		return w, specErr("requirements.disk_mb %d not in 0..%d", s.Requirements.DiskMB, MaxWorkloadDiskMB)
	case len(s.Storage) > maxWorkloadDisks:
		return w, specErr("%d disks, at most %d", len(s.Storage), maxWorkloadDisks)
	}
	switch s.VMType {
	case string(payloads.HypervisorQEMU):
		if err := s.buildQEMU(&w); err != nil {
			return w, err
		}
	case string(payloads.HypervisorDocker):
		switch {
		case s.ImageName == "":
			return w, specErr("a docker workload needs image_name (e.g. ubuntu:latest)")
		case len(s.ImageName) > maxImageName || !plainName(s.ImageName):
			return w, specErr("image_name %q is not an image reference", s.ImageName)
		case s.FWType != "" && s.FWType != string(payloads.FirmwareEFI) && s.FWType != string(payloads.FirmwareLegacy):
			return w, specErr("unknown fw_type %q, want efi, legacy or none (a docker workload has no firmware)", s.FWType)
		case len(s.Storage) > 0:
			return w, specErr("a docker workload takes no disks")
		}
		w.FWType = "" // 2017 definitions often name one; a container has none
		if s.ImageID != "" {
			if _, err := uuid.Parse(s.ImageID); err != nil {
				return w, specErr("image_id %q is not a UUID", s.ImageID)
			}
		}
	case "":
		return w, specErr("vm_type is required: qemu or docker")
	default:
		return w, specErr("unknown vm_type %q, want qemu or docker", s.VMType)
	}
	if strings.TrimSpace(s.Config) == "" {
		return w, specErr("config (the cloud-init document) is required")
	}
	w.Config = NormalizeCloudInit(s.Config)
	if err := checkCloudInit(w.Config); err != nil {
		return w, err
	}
	w.Defaults = []datastore.RequestedResource{
		{Type: datastore.ResVCPUs, Value: s.Requirements.VCPUs, Mandatory: true},
		{Type: datastore.ResMemMB, Value: s.Requirements.MemMB, Mandatory: true},
	}
	if s.Requirements.DiskMB > 0 {
		w.Defaults = append(w.Defaults, datastore.RequestedResource{Type: datastore.ResDiskMB, Value: s.Requirements.DiskMB, Mandatory: true})
	}
	return w, nil
}

// buildQEMU checks the qemu part of s: firmware, and the image, given as
// image_id and/or one bootable disk sourced from an image. Disks that
// need block storage are refused: this controller has no volume service.
func (s WorkloadSpec) buildQEMU(w *datastore.Workload) error {
	switch s.FWType {
	case "":
		w.FWType = defaultQemuFirmware
	case string(payloads.FirmwareEFI), string(payloads.FirmwareLegacy):
	default:
		return specErr("unknown fw_type %q, want efi or legacy", s.FWType)
	}
	if s.ImageName != "" {
		return specErr("image_name is for docker workloads; give a qemu workload image_id or a bootable image disk")
	}
	boot := ""
	for i, d := range s.Storage {
		switch {
		case d.SourceType == workloadSourceVolume || d.ID != "":
			return specErr("storage[%d]: volume disks need block storage, which this controller does not have", i)
		case d.SourceType == "empty" || d.SourceType == "":
			return specErr("storage[%d]: an empty data disk needs block storage, which this controller does not have; give source_type image", i)
		case d.SourceType != workloadSourceImage:
			return specErr("storage[%d]: source_type %q, want image", i, d.SourceType)
		case !d.Bootable:
			return specErr("storage[%d]: only a bootable image disk is supported (no block storage for data disks)", i)
		case boot != "":
			return specErr("storage[%d]: a second bootable disk", i)
		case d.Size < 0:
			return specErr("storage[%d]: negative size %d", i, d.Size)
		}
		if _, err := uuid.Parse(d.SourceID); err != nil {
			return specErr("storage[%d]: source_id %q is not an image UUID", i, d.SourceID)
		}
		boot = d.SourceID
	}
	switch {
	case s.ImageID == "" && boot == "":
		return specErr("a qemu workload needs an image: image_id or a bootable disk with source_type image")
	case s.ImageID != "" && boot != "" && !strings.EqualFold(s.ImageID, boot):
		return specErr("image_id %s and the bootable disk's image %s differ", s.ImageID, boot)
	case s.ImageID == "":
		w.ImageID = boot
	}
	if _, err := uuid.Parse(w.ImageID); err != nil {
		return specErr("image_id %q is not a UUID", w.ImageID)
	}
	w.Storage = append([]datastore.WorkloadDisk(nil), s.Storage...)
	return nil
}

// privateCreate serializes private workload creates, so that the
// MaxPrivateWorkloads check and the insert are one step. Creates are
// rare; one lock for every Controller of the process is enough.
var privateCreate sync.Mutex

// CreateWorkload checks spec and stores it as a new workload of tenantID
// ("" = public), which it returns with its new id. A private workload's
// tenant is registered if new (without a CNCI: that comes with its first
// instance). Errors wrap ErrWorkloadSpec for a refused definition and
// datastore.ErrQuota beyond MaxPrivateWorkloads.
func (c *Controller) CreateWorkload(ctx context.Context, tenantID string, spec WorkloadSpec) (datastore.Workload, error) {
	w, err := spec.Build(tenantID)
	if err != nil {
		return w, fmt.Errorf("create workload: %w", err)
	}
	if tenantID != "" {
		if _, created, err := c.store.EnsureTenant(ctx, datastore.Tenant{ID: tenantID, CNCIMAC: tenantMAC()}); err != nil {
			return w, fmt.Errorf("create workload: register tenant %s: %w", tenantID, err)
		} else if created {
			glog.Infof("registered tenant %s", tenantID)
			c.event(ctx, tenantID, datastore.EventInfo, "Registered tenant "+tenantID)
		}
	}
	if tenantID != "" {
		privateCreate.Lock()
		defer privateCreate.Unlock()
		ws, err := c.store.Workloads(ctx, datastore.WorkloadFilter{TenantID: tenantID})
		if err != nil {
			return w, fmt.Errorf("create workload: %w", err)
		}
		n := 0
		for _, x := range ws {
			if x.TenantID == tenantID {
				n++
			}
		}
		if n >= MaxPrivateWorkloads {
			return w, fmt.Errorf("create workload: tenant %s has %d private workloads, the most allowed; delete some first: %w",
				tenantID, n, datastore.ErrQuota)
		}
	}
	w.ID = uuid.Generate().String()
	if err := c.store.CreateWorkload(ctx, w); err != nil {
		return w, fmt.Errorf("create workload: %w", err)
	}
	vis := "public"
	if tenantID != "" {
		vis = "private"
	}
	glog.Infof("created %s workload %s %q (%s)", vis, w.ID, w.Description, w.VMType)
	c.event(ctx, tenantID, datastore.EventInfo, fmt.Sprintf("Created %s workload %s (%s)", vis, w.ID, w.Description))
	return w, nil
}

// VisibleWorkload returns workload id if tenantID may see it: a public
// or its own private workload; an admin (tenantID "") sees every
// workload that is not internal. Others are datastore.ErrNotFound.
func (c *Controller) VisibleWorkload(ctx context.Context, tenantID, id string) (datastore.Workload, error) {
	w, err := c.store.Workload(ctx, id)
	if err == nil && (w.Internal || w.IsCNCI() || (tenantID != "" && w.TenantID != "" && w.TenantID != tenantID)) {
		err = datastore.ErrNotFound
	}
	if err != nil {
		return datastore.Workload{}, fmt.Errorf("workload %s: %w", id, err)
	}
	return w, nil
}

// DeleteWorkload deletes workload id for tenantID: a tenant ("" = admin)
// only its own private workloads, an admin any that is not internal.
// Errors: datastore.ErrNotFound (unknown or another tenant's),
// ErrWorkloadPublic, ErrWorkloadInternal, datastore.ErrInUse (instances
// still use it; nothing is deleted).
func (c *Controller) DeleteWorkload(ctx context.Context, tenantID, id string) error {
	w, err := c.store.Workload(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("delete workload %s: %w", id, err)
	case tenantID != "" && w.TenantID != tenantID && (w.TenantID != "" || w.Internal || w.IsCNCI()):
		return fmt.Errorf("delete workload %s: %w", id, datastore.ErrNotFound)
	case w.Internal || w.IsCNCI():
		return fmt.Errorf("delete workload %s: %w", id, ErrWorkloadInternal)
	case tenantID != "" && w.TenantID == "":
		return fmt.Errorf("delete workload %s: %w: only an admin may delete it (DELETE /workloads/%s)", id, ErrWorkloadPublic, id)
	}
	if err := c.store.DeleteWorkload(ctx, id); err != nil {
		return err // the store names the workload already
	}
	forgetStatic(w)
	glog.Infof("deleted workload %s %q", id, w.Description)
	c.event(ctx, w.TenantID, datastore.EventInfo, fmt.Sprintf("Deleted workload %s (%s)", id, w.Description))
	return nil
}
