package payloads

// CommandAssignPublicIP is the AssignPublicIP command payload, processed by
// the CNCI agent named by ConcentratorUUID.
type CommandAssignPublicIP struct {
	AssignIP PublicIPCommand `yaml:"assign_public_ip"`
}

// CommandReleasePublicIP is the ReleasePublicIP command payload.
type CommandReleasePublicIP struct {
	ReleaseIP PublicIPCommand `yaml:"release_public_ip"`
}

// PublicIPCommand maps a public IP to an instance's private IP on a CNCI.
type PublicIPCommand struct {
	ConcentratorUUID string `yaml:"concentrator_uuid"` // target CNCI
	TenantUUID       string `yaml:"tenant_uuid"`
	InstanceUUID     string `yaml:"instance_uuid"`
	PublicIP         string `yaml:"public_ip"`
	PrivateIP        string `yaml:"private_ip"`
	VnicMAC          string `yaml:"vnic_mac"`
}
