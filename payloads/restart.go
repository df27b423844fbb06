package payloads

// Restart is the RESTART command payload (COMMAND RESTART).
type Restart struct {
	Restart RestartCmd `yaml:"restart"`
}

// RestartCmd names the instance to restart. It has no vm_type,
// docker_image or storage: the launcher uses only InstanceUUID and restarts
// with the settings of the original START.
type RestartCmd struct {
	TenantUUID          string              `yaml:"tenant_uuid"`
	InstanceUUID        string              `yaml:"instance_uuid"`
	ImageUUID           string              `yaml:"image_uuid"`
	WorkloadAgentUUID   string              `yaml:"workload_agent_uuid"` // scheduler routing key
	FWType              Firmware            `yaml:"fw_type"`
	InstancePersistence Persistence         `yaml:"persistence"`
	RequestedResources  []RequestedResource `yaml:"requested_resources"`
	EstimatedResources  []EstimatedResource `yaml:"estimated_resources"`
	Networking          NetworkResources    `yaml:"networking"`
}

// Validate makes the launcher's check: instance_uuid in the loose ID form.
// Errors wrap ErrInvalidData.
func (c *RestartCmd) Validate() error {
	return requireID("restart", "instance_uuid", c.InstanceUUID)
}
