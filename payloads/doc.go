// Package payloads defines the YAML documents carried in the Payload field
// of SSNTP frames, byte-compatible with the Ciao peers of October 2016
// (ciao-project/ciao@74c1e8d4).
//
// The package holds wire structs only: Go types whose yaml tags and field
// order reproduce the 2016 keys and key order, the enumerations used inside
// them, the splitting and composition of the three-document START payload,
// and a few validation helpers for the checks the scheduler and launcher
// make before acting on a payload. It has no behaviour beyond encoding and
// validation and imports nothing from the daemons or from package ssntp.
//
// Encode with yaml.Marshal and decode with yaml.Unmarshal
// (gopkg.in/yaml.v2). Every key is always emitted, in struct field order;
// the only omitted key is an empty START storage section. Receivers ignore
// unknown keys and keep their own defaults for missing ones: call
// (*Ready).Init or (*Stat).Init (numeric fields −1) or
// (*Configure).InitDefaults before decoding, as the 2016 receivers did.
// Decoding does not check enumeration values; see the Valid methods and
// the Validate helpers, which report ErrInvalidData (failure reason
// invalid_data), while an undecodable document is ErrInvalidPayload
// (reason invalid_payload).
//
// Which payload goes with which frame:
//
//	Frame    Operand (code)                  Go type                         Top-level key
//	COMMAND  START (1)                       Start (see SplitStart)          start
//	COMMAND  STOP (2)                        Stop                            stop
//	COMMAND  STATS (3)                       Stat                            (flat)
//	COMMAND  EVACUATE (4)                    Evacuate                        evacuate
//	COMMAND  DELETE (5)                      Delete                          delete
//	COMMAND  RESTART (6)                     Restart                         restart
//	COMMAND  AssignPublicIP (7)              CommandAssignPublicIP           assign_public_ip
//	COMMAND  ReleasePublicIP (8)             CommandReleasePublicIP          release_public_ip
//	COMMAND  CONFIGURE (9)                   Configure                       configure
//	COMMAND  AttachVolume (10)               AttachVolume                    attach_volume
//	COMMAND  DetachVolume (11)               DetachVolume                    detach_volume
//	STATUS   CONNECTED (0)                   Configure (or empty)            configure
//	STATUS   READY (1)                       Ready                           (flat)
//	EVENT    TenantAdded (0)                 EventTenantAdded                tenant_added
//	EVENT    TenantRemoved (1)               EventTenantRemoved              tenant_removed
//	EVENT    InstanceDeleted (2)             EventInstanceDeleted            instance_deleted
//	EVENT    ConcentratorInstanceAdded (3)   EventConcentratorInstanceAdded  concentrator_instance_added
//	EVENT    PublicIPAssigned (4)            EventPublicIPAssigned           public_ip_assigned
//	EVENT    TraceReport (5)                 Trace                           (flat, frames)
//	EVENT    NodeConnected (6)               NodeConnected                   node_connected
//	EVENT    NodeDisconnected (7)            NodeDisconnected                node_disconnected
//	ERROR    StartFailure (1)                ErrorStartFailure               (flat)
//	ERROR    StopFailure (2)                 ErrorStopFailure                (flat)
//	ERROR    RestartFailure (4)              ErrorRestartFailure             (flat)
//	ERROR    DeleteFailure (5)               ErrorDeleteFailure              (flat)
//	ERROR    InvalidConfiguration (7)        Configure (never sent)          configure
//	ERROR    AttachVolumeFailure (8)         ErrorAttachVolumeFailure        (flat)
//	ERROR    DetachVolumeFailure (9)         ErrorDetachVolumeFailure        (flat)
//	-        (no operand in 2016)            ErrorPublicIPFailure            (flat)
//
// CONNECT, FULL, OFFLINE, MAINTENANCE and the InvalidFrameType,
// ConnectionFailure and ConnectionAborted errors carry no payload.
//
// One known difference from the 2016 YAML library remains: yaml.v2 v2.4
// double-quotes a string that reads as a YAML timestamp, where the 2016
// library wrote it plain. The trace timestamps, which are always such
// strings, are written plain here (see FrameTrace); any other string field
// holding a timestamp-like value (a hostname "2016-10-18", say) comes out
// quoted. Both forms decode to the same string.
package payloads
