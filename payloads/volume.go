package payloads

// AttachVolume is the AttachVolume command payload.
type AttachVolume struct {
	Attach VolumeCmd `yaml:"attach_volume"`
}

// DetachVolume is the DetachVolume command payload.
type DetachVolume struct {
	Detach VolumeCmd `yaml:"detach_volume"`
}

// VolumeCmd names the volume, the instance and the agent running it.
type VolumeCmd struct {
	InstanceUUID      string `yaml:"instance_uuid"`
	VolumeUUID        string `yaml:"volume_uuid"`
	WorkloadAgentUUID string `yaml:"workload_agent_uuid"` // scheduler routing key
}

// Validate makes the launcher's checks: instance_uuid and volume_uuid in
// the loose ID form. Errors wrap ErrInvalidData.
func (c *VolumeCmd) Validate() error {
	if err := requireID("volume", "instance_uuid", c.InstanceUUID); err != nil {
		return err
	}
	return requireID("volume", "volume_uuid", c.VolumeUUID)
}
