package ssntp

import "strconv"

// Type is the frame type.
type Type uint8

// Frame types. ERROR is 2 and EVENT 3: the 2016 README's 0x4 is wrong.
const (
	COMMAND Type = 0
	STATUS  Type = 1
	ERROR   Type = 2
	EVENT   Type = 3
)

func (t Type) String() string {
	switch t {
	case COMMAND:
		return "COMMAND"
	case STATUS:
		return "STATUS"
	case ERROR:
		return "ERROR"
	case EVENT:
		return "EVENT"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Command is the operand of a COMMAND frame.
type Command uint8

// Command operands.
const (
	CONNECT         Command = 0
	START           Command = 1
	STOP            Command = 2
	STATS           Command = 3
	EVACUATE        Command = 4
	DELETE          Command = 5
	RESTART         Command = 6
	AssignPublicIP  Command = 7
	ReleasePublicIP Command = 8
	CONFIGURE       Command = 9
	AttachVolume    Command = 10
	DetachVolume    Command = 11
)

var commandNames = [...]string{
	CONNECT:         "CONNECT",
	START:           "START",
	STOP:            "STOP",
	STATS:           "STATISTICS",
	EVACUATE:        "EVACUATE",
	DELETE:          "DELETE",
	RESTART:         "RESTART",
	AssignPublicIP:  "Assign public IP",
	ReleasePublicIP: "Release public IP",
	CONFIGURE:       "CONFIGURE",
	AttachVolume:    "Attach storage volume",
	DetachVolume:    "Detach storage volume",
}

// String returns the name the 2016 peers print and put in TraceReport
// payloads; unknown operands print as "".
func (c Command) String() string {
	if int(c) < len(commandNames) {
		return commandNames[c]
	}
	return ""
}

// Status is the operand of a STATUS frame.
type Status uint8

// Status operands.
const (
	CONNECTED   Status = 0
	READY       Status = 1
	FULL        Status = 2
	OFFLINE     Status = 3
	MAINTENANCE Status = 4
)

var statusNames = [...]string{
	CONNECTED:   "CONNECTED",
	READY:       "READY",
	FULL:        "FULL",
	OFFLINE:     "OFFLINE",
	MAINTENANCE: "MAINTENANCE",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return ""
}

// Event is the operand of an EVENT frame.
type Event uint8

// Event operands.
const (
	TenantAdded               Event = 0
	TenantRemoved             Event = 1
	InstanceDeleted           Event = 2
	ConcentratorInstanceAdded Event = 3
	PublicIPAssigned          Event = 4
	TraceReport               Event = 5
	NodeConnected             Event = 6
	NodeDisconnected          Event = 7
)

var eventNames = [...]string{
	TenantAdded:               "Tenant Added",
	TenantRemoved:             "Tenant Removed",
	InstanceDeleted:           "Instance Deleted",
	ConcentratorInstanceAdded: "Network Concentrator Instance Added",
	PublicIPAssigned:          "Public IP Assigned",
	TraceReport:               "Trace Report",
	NodeConnected:             "Node Connected",
	NodeDisconnected:          "Node Disconnected",
}

func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return ""
}

// Error is the operand of an ERROR frame.
type Error uint8

// Error operands. StartFailure..DeleteFailure carry application payloads;
// InvalidFrameType, ConnectionFailure and ConnectionAborted carry none.
const (
	InvalidFrameType     Error = 0
	StartFailure         Error = 1
	StopFailure          Error = 2
	ConnectionFailure    Error = 3
	RestartFailure       Error = 4
	DeleteFailure        Error = 5
	ConnectionAborted    Error = 6
	InvalidConfiguration Error = 7
	AttachVolumeFailure  Error = 8
	DetachVolumeFailure  Error = 9
)

var errorNames = [...]string{
	InvalidFrameType:     "Invalid SSNTP frame type",
	StartFailure:         "Could not start instance",
	StopFailure:          "Could not stop instance",
	ConnectionFailure:    "SSNTP Connection failed",
	RestartFailure:       "Could not restart instance",
	DeleteFailure:        "Could not delete instance",
	ConnectionAborted:    "SSNTP Connection aborted",
	InvalidConfiguration: "Cluster configuration is invalid",
	AttachVolumeFailure:  "",
	DetachVolumeFailure:  "",
}

func (e Error) String() string {
	if int(e) < len(errorNames) {
		return errorNames[e]
	}
	return ""
}
