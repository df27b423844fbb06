package payloads

// ErrorStartFailure is the StartFailure error payload. InstanceUUID is
// empty when the START payload could not be decoded.
type ErrorStartFailure struct {
	InstanceUUID string             `yaml:"instance_uuid"`
	Reason       StartFailureReason `yaml:"reason"`
}

// ErrorStopFailure is the StopFailure error payload.
type ErrorStopFailure struct {
	InstanceUUID string            `yaml:"instance_uuid"`
	Reason       StopFailureReason `yaml:"reason"`
}

// ErrorRestartFailure is the RestartFailure error payload.
type ErrorRestartFailure struct {
	InstanceUUID string               `yaml:"instance_uuid"`
	Reason       RestartFailureReason `yaml:"reason"`
}

// ErrorDeleteFailure is the DeleteFailure error payload.
type ErrorDeleteFailure struct {
	InstanceUUID string              `yaml:"instance_uuid"`
	Reason       DeleteFailureReason `yaml:"reason"`
}

// ErrorAttachVolumeFailure is the AttachVolumeFailure error payload.
type ErrorAttachVolumeFailure struct {
	InstanceUUID string                    `yaml:"instance_uuid"`
	VolumeUUID   string                    `yaml:"volume_uuid"`
	Reason       AttachVolumeFailureReason `yaml:"reason"`
}

// ErrorDetachVolumeFailure is the DetachVolumeFailure error payload.
type ErrorDetachVolumeFailure struct {
	InstanceUUID string                    `yaml:"instance_uuid"`
	VolumeUUID   string                    `yaml:"volume_uuid"`
	Reason       DetachVolumeFailureReason `yaml:"reason"`
}

// ErrorPublicIPFailure is the public IP failure payload. No error operand
// carries it in the 2016 protocol.
type ErrorPublicIPFailure struct {
	ConcentratorUUID string                `yaml:"concentrator_uuid"`
	TenantUUID       string                `yaml:"tenant_uuid"`
	InstanceUUID     string                `yaml:"instance_uuid"`
	PublicIP         string                `yaml:"public_ip"`
	PrivateIP        string                `yaml:"private_ip"`
	VnicMAC          string                `yaml:"vnic_mac"`
	Reason           PublicIPFailureReason `yaml:"reason"`
}
