package payloads

// Evacuate is the EVACUATE command payload (COMMAND EVACUATE). The launcher
// ignores the command; there is no "next state" field.
type Evacuate struct {
	Evacuate EvacuateCmd `yaml:"evacuate"`
}

// EvacuateCmd names the agent to evacuate.
type EvacuateCmd struct {
	WorkloadAgentUUID string `yaml:"workload_agent_uuid"` // scheduler routing key
}
