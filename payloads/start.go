package payloads

import (
	"fmt"

	yaml "gopkg.in/yaml.v2"
)

// Start is the START command payload (COMMAND START). On the wire it is the
// first of three YAML documents; see ComposeStart and SplitStart.
type Start struct {
	Start StartCmd `yaml:"start"`
}

// StartCmd describes the instance to launch.
type StartCmd struct {
	TenantUUID          string              `yaml:"tenant_uuid"`
	InstanceUUID        string              `yaml:"instance_uuid"`
	ImageUUID           string              `yaml:"image_uuid"`
	DockerImage         string              `yaml:"docker_image"`
	FWType              Firmware            `yaml:"fw_type"`
	InstancePersistence Persistence         `yaml:"persistence"`
	VMType              Hypervisor          `yaml:"vm_type"`
	RequestedResources  []RequestedResource `yaml:"requested_resources"`
	EstimatedResources  []EstimatedResource `yaml:"estimated_resources"`
	Networking          NetworkResources    `yaml:"networking"`
	Storage             StorageResources    `yaml:"storage,omitempty"` // omitted when both members are empty
}

// RequestedResource is one entry of requested_resources.
type RequestedResource struct {
	Type      Resource `yaml:"type"`
	Value     int      `yaml:"value"`
	Mandatory bool     `yaml:"mandatory"`
}

// EstimatedResource is one entry of estimated_resources (unused by the
// receivers).
type EstimatedResource struct {
	Type  Resource `yaml:"type"`
	Value int      `yaml:"value"`
}

// NetworkResources is the networking section of START and RESTART.
// SubnetKey is a string here but an int in TenantAddedEvent.
type NetworkResources struct {
	VnicMAC          string `yaml:"vnic_mac"`
	VnicUUID         string `yaml:"vnic_uuid"`
	ConcentratorUUID string `yaml:"concentrator_uuid"`
	ConcentratorIP   string `yaml:"concentrator_ip"`
	Subnet           string `yaml:"subnet"`
	SubnetKey        string `yaml:"subnet_key"`
	SubnetUUID       string `yaml:"subnet_uuid"`
	PrivateIP        string `yaml:"private_ip"`
	PublicIP         bool   `yaml:"public_ip"`
}

// StorageResources is the volume to attach to (or boot) the instance.
type StorageResources struct {
	ID       string `yaml:"id"`
	Bootable bool   `yaml:"boot"`
}

// DecodeStart decodes a START payload as the scheduler does: the whole
// payload is unmarshalled and only its first YAML document is decoded, so
// the start mapping must be in that document. Errors wrap
// ErrInvalidPayload.
func DecodeStart(payload []byte) (*Start, error) {
	var s Start
	if err := yaml.Unmarshal(payload, &s); err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrInvalidPayload, err)
	}
	return &s, nil
}

// requested returns the value of the last requested_resources entry of
// type r: both receivers loop over the list assigning, so a later entry
// overrides an earlier one.
func (c *StartCmd) requested(r Resource) (value int, ok bool) {
	for _, rr := range c.RequestedResources {
		if rr.Type == r {
			value, ok = rr.Value, true
		}
	}
	return value, ok
}

// VCPUs returns the requested vcpus and whether an entry is present.
func (c *StartCmd) VCPUs() (int, bool) { return c.requested(VCPUs) }

// MemMB returns the requested mem_mb and whether an entry is present.
func (c *StartCmd) MemMB() (int, bool) { return c.requested(MemMB) }

// DiskMB returns the requested disk_mb and whether an entry is present.
func (c *StartCmd) DiskMB() (int, bool) { return c.requested(DiskMB) }

// NetworkNode reports whether the instance must run on a network node (a
// CNCI). An absent network_node entry means false; a value other than 0
// or 1 is an error wrapping ErrInvalidData, as the scheduler treats it.
// (The launcher alone would take any non-zero value as true.)
func (c *StartCmd) NetworkNode() (bool, error) {
	v, _ := c.requested(NetworkNode)
	switch v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: start: network_node is %d, want 0 or 1", ErrInvalidData, v)
}

// Firmware returns fw_type with the launcher's default applied (empty means
// EFI); an undefined value is an error wrapping ErrInvalidData.
func (c *StartCmd) Firmware() (Firmware, error) {
	switch c.FWType {
	case "":
		return FirmwareEFI, nil
	case FirmwareEFI, FirmwareLegacy:
		return c.FWType, nil
	}
	return "", fmt.Errorf("%w: start: unknown fw_type %q", ErrInvalidData, string(c.FWType))
}

// Hypervisor returns vm_type with the launcher's default applied (empty
// means QEMU); an undefined value is an error wrapping ErrInvalidData.
func (c *StartCmd) Hypervisor() (Hypervisor, error) {
	switch c.VMType {
	case "":
		return HypervisorQEMU, nil
	case HypervisorQEMU, HypervisorDocker:
		return c.VMType, nil
	}
	return "", fmt.Errorf("%w: start: unknown vm_type %q", ErrInvalidData, string(c.VMType))
}

// ValidateForScheduler makes the scheduler's checks: a mem_mb entry with a
// value above 0 and, if present, network_node 0 or 1. Errors wrap
// ErrInvalidData.
func (c *StartCmd) ValidateForScheduler() error {
	if mem, ok := c.MemMB(); !ok || mem <= 0 {
		return fmt.Errorf("%w: start: mem_mb missing or not positive", ErrInvalidData)
	}
	_, err := c.NetworkNode()
	return err
}

// ValidateForLauncher makes the launcher's checks, whose failure it answers
// with reason invalid_data: instance_uuid in the loose ID form (ValidID),
// known fw_type and vm_type, and a docker_image for docker instances.
// Errors wrap ErrInvalidData.
func (c *StartCmd) ValidateForLauncher() error {
	if !ValidID(c.InstanceUUID) {
		return fmt.Errorf("%w: start: invalid instance_uuid %q", ErrInvalidData, c.InstanceUUID)
	}
	if _, err := c.Firmware(); err != nil {
		return err
	}
	vm, err := c.Hypervisor()
	if err != nil {
		return err
	}
	if vm == HypervisorDocker && c.DockerImage == "" {
		return fmt.Errorf("%w: start: docker instance without docker_image", ErrInvalidData)
	}
	return nil
}
