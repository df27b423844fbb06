package payloads

// Stop is the STOP command payload (COMMAND STOP).
type Stop struct {
	Stop StopCmd `yaml:"stop"`
}

// Delete is the DELETE command payload (COMMAND DELETE). It shares StopCmd
// with Stop.
type Delete struct {
	Delete StopCmd `yaml:"delete"`
}

// StopCmd names the instance to stop or delete and the agent running it.
type StopCmd struct {
	InstanceUUID      string `yaml:"instance_uuid"`
	WorkloadAgentUUID string `yaml:"workload_agent_uuid"` // scheduler routing key
}

// Validate makes the launcher's check: instance_uuid in the loose ID form.
// Errors wrap ErrInvalidData.
func (c *StopCmd) Validate() error {
	return requireID("stop", "instance_uuid", c.InstanceUUID)
}
