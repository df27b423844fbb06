package payloads

// EventTenantAdded is the TenantAdded event payload: a launcher created its
// first tunnel for a tenant. The scheduler forwards it to the CNCI whose
// SSNTP UUID is ConcentratorUUID.
type EventTenantAdded struct {
	TenantAdded TenantAddedEvent `yaml:"tenant_added"`
}

// EventTenantRemoved is the TenantRemoved event payload: a launcher removed
// its last tunnel for a tenant.
type EventTenantRemoved struct {
	TenantRemoved TenantAddedEvent `yaml:"tenant_removed"`
}

// TenantAddedEvent describes a tenant tunnel between a compute node and the
// tenant's CNCI.
type TenantAddedEvent struct {
	AgentUUID        string `yaml:"agent_uuid"` // sending launcher's SSNTP UUID
	AgentIP          string `yaml:"agent_ip"`
	TenantUUID       string `yaml:"tenant_uuid"`
	TenantSubnet     string `yaml:"tenant_subnet"`
	ConcentratorUUID string `yaml:"concentrator_uuid"` // routing key
	ConcentratorIP   string `yaml:"concentrator_ip"`
	SubnetKey        int    `yaml:"subnet_key"` // an int here, a string in START
}

// EventInstanceDeleted is the InstanceDeleted event payload.
type EventInstanceDeleted struct {
	InstanceDeleted InstanceDeletedEvent `yaml:"instance_deleted"`
}

// InstanceDeletedEvent names the deleted instance.
type InstanceDeletedEvent struct {
	InstanceUUID string `yaml:"instance_uuid"`
}

// EventConcentratorInstanceAdded is the ConcentratorInstanceAdded event
// payload, sent by a CNCI agent after every (re)connection.
type EventConcentratorInstanceAdded struct {
	CNCIAdded ConcentratorInstanceAddedEvent `yaml:"concentrator_instance_added"`
}

// ConcentratorInstanceAddedEvent describes a running CNCI.
type ConcentratorInstanceAddedEvent struct {
	InstanceUUID    string `yaml:"instance_uuid"` // = the CNCI agent's SSNTP UUID
	TenantUUID      string `yaml:"tenant_uuid"`
	ConcentratorIP  string `yaml:"concentrator_ip"`
	ConcentratorMAC string `yaml:"concentrator_mac"`
}

// EventPublicIPAssigned is the PublicIPAssigned event payload.
type EventPublicIPAssigned struct {
	AssignedIP PublicIPEvent `yaml:"public_ip_assigned"`
}

// PublicIPEvent reports a public IP mapping made by a CNCI.
type PublicIPEvent struct {
	ConcentratorUUID string `yaml:"concentrator_uuid"`
	InstanceUUID     string `yaml:"instance_uuid"`
	PublicIP         string `yaml:"public_ip"`
	PrivateIP        string `yaml:"private_ip"`
}

// NodeConnected is the NodeConnected event payload, sent by the scheduler
// to Controllers.
type NodeConnected struct {
	Connected NodeConnectedEvent `yaml:"node_connected"`
}

// NodeDisconnected is the NodeDisconnected event payload.
type NodeDisconnected struct {
	Disconnected NodeConnectedEvent `yaml:"node_disconnected"`
}

// NodeConnectedEvent names an agent and its node type.
type NodeConnectedEvent struct {
	NodeUUID string   `yaml:"node_uuid"` // the agent's SSNTP UUID
	NodeType Resource `yaml:"node_type"` // ComputeNode or NetworkNode
}
