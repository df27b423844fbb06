package payloads

// Resource names a resource in requested_resources and
// estimated_resources, and a node type in NodeConnected events.
type Resource string

// Resources.
const (
	VCPUs       Resource = "vcpus"
	MemMB       Resource = "mem_mb"
	DiskMB      Resource = "disk_mb"
	NetworkNode Resource = "network_node" // value 1 in START: run on a network node (CNCI)
	ComputeNode Resource = "compute_node"
)

// Valid reports whether r is one of the defined resources.
func (r Resource) Valid() bool {
	switch r {
	case VCPUs, MemMB, DiskMB, NetworkNode, ComputeNode:
		return true
	}
	return false
}

// Firmware is the fw_type of an instance. Empty means EFI.
type Firmware string

// Firmware types.
const (
	FirmwareEFI    Firmware = "efi"
	FirmwareLegacy Firmware = "legacy"
)

// Valid reports whether f is a defined firmware type; the empty value is
// valid (it means EFI).
func (f Firmware) Valid() bool {
	return f == "" || f == FirmwareEFI || f == FirmwareLegacy
}

// Hypervisor is the vm_type of an instance. Empty means QEMU.
type Hypervisor string

// Hypervisors.
const (
	HypervisorQEMU   Hypervisor = "qemu"
	HypervisorDocker Hypervisor = "docker"
)

// Valid reports whether h is a defined hypervisor; the empty value is valid
// (it means QEMU).
func (h Hypervisor) Valid() bool {
	return h == "" || h == HypervisorQEMU || h == HypervisorDocker
}

// Persistence is the persistence of an instance. The controller always
// sends PersistenceHost and the launcher ignores the field.
type Persistence string

// Persistence values.
const (
	PersistenceAll  Persistence = "all"
	PersistenceVM   Persistence = "vm"
	PersistenceHost Persistence = "host"
)

// Valid reports whether p is a defined persistence value.
func (p Persistence) Valid() bool {
	return p == PersistenceAll || p == PersistenceVM || p == PersistenceHost
}

// Instance states, the state of an InstanceStat. InstanceActive means
// running. The last two are defined by the 2016 code but never sent.
const (
	InstancePending    = "pending"
	InstanceActive     = "active"
	InstanceExited     = "exited"
	InstanceExitFailed = "exit_failed"
	InstanceExitPaused = "exit_paused"
)

// ServiceType is the type of a service in a CONFIGURE payload.
type ServiceType string

// Service types.
const (
	ServiceGlance   ServiceType = "glance"
	ServiceKeystone ServiceType = "keystone"
)

// Valid reports whether s is a defined service type.
func (s ServiceType) Valid() bool {
	return s == ServiceGlance || s == ServiceKeystone
}

// Reason values and human texts shared by every failure family.
const (
	reasonNoInstance     = "no_instance"
	reasonInvalidPayload = "invalid_payload"
	reasonInvalidData    = "invalid_data"

	textNoInstance     = "Instance does not exist"
	textInvalidPayload = "YAML payload is corrupt"
	textInvalidData    = "Command section of YAML payload is corrupt or missing required information"
)

// reasonText returns the human text of reason in table, or the reason
// itself when the table does not know it.
func reasonText(table map[string]string, reason string) string {
	if text, ok := table[reason]; ok {
		return text
	}
	return reason
}

// StartFailureReason is the reason of an ErrorStartFailure.
type StartFailureReason string

// Start failure reasons. The scheduler sends StartFullCloud,
// StartNoComputeNodes and StartNoNetworkNodes; the launcher the others.
const (
	StartFullCloud       StartFailureReason = "full_cloud"
	StartFullComputeNode StartFailureReason = "full_cn"
	StartNoComputeNodes  StartFailureReason = "no_cn"
	StartNoNetworkNodes  StartFailureReason = "no_net_cn"
	StartInvalidPayload  StartFailureReason = reasonInvalidPayload
	StartInvalidData     StartFailureReason = reasonInvalidData
	StartAlreadyRunning  StartFailureReason = "already_running"
	StartInstanceExists  StartFailureReason = "instance_exists"
	StartImageFailure    StartFailureReason = "image_failure"
	StartLaunchFailure   StartFailureReason = "launch_failure"
	StartNetworkFailure  StartFailureReason = "network_failure"
)

var startReasonText = map[string]string{
	"full_cloud":         "Cloud is full",
	"full_cn":            "Compute node is full",
	"no_cn":              "No compute node available",
	"no_net_cn":          "No network node available",
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"already_running":    "Instance is already running",
	"instance_exists":    "Instance already exists",
	"image_failure":      "Failed to create instance image",
	"launch_failure":     "Failed to launch instance",
	"network_failure":    "Failed to create VNIC for instance",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r StartFailureReason) String() string { return reasonText(startReasonText, string(r)) }

// Valid reports whether r is a defined start failure reason.
func (r StartFailureReason) Valid() bool { _, ok := startReasonText[string(r)]; return ok }

// StopFailureReason is the reason of an ErrorStopFailure.
type StopFailureReason string

// Stop failure reasons.
const (
	StopNoInstance     StopFailureReason = reasonNoInstance
	StopInvalidPayload StopFailureReason = reasonInvalidPayload
	StopInvalidData    StopFailureReason = reasonInvalidData
	StopAlreadyStopped StopFailureReason = "already_stopped"
)

var stopReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"already_stopped":    "Instance has already shut down",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r StopFailureReason) String() string { return reasonText(stopReasonText, string(r)) }

// Valid reports whether r is a defined stop failure reason.
func (r StopFailureReason) Valid() bool { _, ok := stopReasonText[string(r)]; return ok }

// RestartFailureReason is the reason of an ErrorRestartFailure.
type RestartFailureReason string

// Restart failure reasons.
const (
	RestartNoInstance      RestartFailureReason = reasonNoInstance
	RestartInvalidPayload  RestartFailureReason = reasonInvalidPayload
	RestartInvalidData     RestartFailureReason = reasonInvalidData
	RestartAlreadyRunning  RestartFailureReason = "already_running"
	RestartInstanceCorrupt RestartFailureReason = "instance_corrupt"
	RestartLaunchFailure   RestartFailureReason = "launch_failure"
	RestartNetworkFailure  RestartFailureReason = "network_failure"
)

var restartReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"already_running":    "Instance is already running",
	"instance_corrupt":   "Instance is corrupt",
	"launch_failure":     "Failed to launch instance",
	"network_failure":    "Failed to locate VNIC for instance",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r RestartFailureReason) String() string { return reasonText(restartReasonText, string(r)) }

// Valid reports whether r is a defined restart failure reason.
func (r RestartFailureReason) Valid() bool { _, ok := restartReasonText[string(r)]; return ok }

// DeleteFailureReason is the reason of an ErrorDeleteFailure.
type DeleteFailureReason string

// Delete failure reasons.
const (
	DeleteNoInstance     DeleteFailureReason = reasonNoInstance
	DeleteInvalidPayload DeleteFailureReason = reasonInvalidPayload
	DeleteInvalidData    DeleteFailureReason = reasonInvalidData
)

var deleteReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r DeleteFailureReason) String() string { return reasonText(deleteReasonText, string(r)) }

// Valid reports whether r is a defined delete failure reason.
func (r DeleteFailureReason) Valid() bool { _, ok := deleteReasonText[string(r)]; return ok }

// AttachVolumeFailureReason is the reason of an ErrorAttachVolumeFailure.
type AttachVolumeFailureReason string

// Attach volume failure reasons.
const (
	AttachVolumeNoInstance      AttachVolumeFailureReason = reasonNoInstance
	AttachVolumeInvalidPayload  AttachVolumeFailureReason = reasonInvalidPayload
	AttachVolumeInvalidData     AttachVolumeFailureReason = reasonInvalidData
	AttachVolumeAttachFailure   AttachVolumeFailureReason = "attach_failure"
	AttachVolumeAlreadyAttached AttachVolumeFailureReason = "already_attached"
	AttachVolumeStateFailure    AttachVolumeFailureReason = "state_failure"
	AttachVolumeInstanceFailure AttachVolumeFailureReason = "instance_failure"
	AttachVolumeNotSupported    AttachVolumeFailureReason = "not_supported"
)

var attachVolumeReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"attach_failure":     "Failed to attach volume to instance",
	"already_attached":   "Volume already attached",
	"state_failure":      "State failure",
	"instance_failure":   "Instance failure",
	"not_supported":      "Not Supported",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r AttachVolumeFailureReason) String() string {
	return reasonText(attachVolumeReasonText, string(r))
}

// Valid reports whether r is a defined attach volume failure reason.
func (r AttachVolumeFailureReason) Valid() bool {
	_, ok := attachVolumeReasonText[string(r)]
	return ok
}

// DetachVolumeFailureReason is the reason of an ErrorDetachVolumeFailure.
type DetachVolumeFailureReason string

// Detach volume failure reasons.
const (
	DetachVolumeNoInstance      DetachVolumeFailureReason = reasonNoInstance
	DetachVolumeInvalidPayload  DetachVolumeFailureReason = reasonInvalidPayload
	DetachVolumeInvalidData     DetachVolumeFailureReason = reasonInvalidData
	DetachVolumeDetachFailure   DetachVolumeFailureReason = "detach_failure"
	DetachVolumeNotAttached     DetachVolumeFailureReason = "not_attached"
	DetachVolumeStateFailure    DetachVolumeFailureReason = "state_failure"
	DetachVolumeInstanceFailure DetachVolumeFailureReason = "instance_failure"
	DetachVolumeNotSupported    DetachVolumeFailureReason = "not_supported"
)

var detachVolumeReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"detach_failure":     "Failed to detach volume from instance",
	"not_attached":       "Volume not attached",
	"state_failure":      "State failure",
	"instance_failure":   "Instance failure",
	"not_supported":      "Not Supported",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r DetachVolumeFailureReason) String() string {
	return reasonText(detachVolumeReasonText, string(r))
}

// Valid reports whether r is a defined detach volume failure reason.
func (r DetachVolumeFailureReason) Valid() bool {
	_, ok := detachVolumeReasonText[string(r)]
	return ok
}

// PublicIPFailureReason is the reason of an ErrorPublicIPFailure.
type PublicIPFailureReason string

// Public IP failure reasons.
const (
	PublicIPNoInstance     PublicIPFailureReason = reasonNoInstance
	PublicIPInvalidPayload PublicIPFailureReason = reasonInvalidPayload
	PublicIPInvalidData    PublicIPFailureReason = reasonInvalidData
	PublicIPAssignFailure  PublicIPFailureReason = "assign_failure"
	PublicIPReleaseFailure PublicIPFailureReason = "release_failure"
)

var publicIPReasonText = map[string]string{
	reasonNoInstance:     textNoInstance,
	reasonInvalidPayload: textInvalidPayload,
	reasonInvalidData:    textInvalidData,
	"assign_failure":     "Public IP assignment operation_failed",
	"release_failure":    "Public IP release operation_failed",
}

// String returns the human text of r; an undefined reason prints as its
// raw value.
func (r PublicIPFailureReason) String() string { return reasonText(publicIPReasonText, string(r)) }

// Valid reports whether r is a defined public IP failure reason.
func (r PublicIPFailureReason) Valid() bool { _, ok := publicIPReasonText[string(r)]; return ok }
