package payloads

import (
	"fmt"
	"reflect"
	"testing"

	yaml "gopkg.in/yaml.v2"
)

func TestEnumValid(t *testing.T) {
	type validator interface{ Valid() bool }
	tests := []struct {
		v    validator
		want bool
	}{
		{VCPUs, true}, {MemMB, true}, {DiskMB, true}, {NetworkNode, true}, {ComputeNode, true},
		{Resource(""), false}, {Resource("VCPUs"), false}, {Resource("instance"), false},
		{FirmwareEFI, true}, {FirmwareLegacy, true}, {Firmware(""), true}, {Firmware("bios"), false},
		{HypervisorQEMU, true}, {HypervisorDocker, true}, {Hypervisor(""), true}, {Hypervisor("QEMU"), false},
		{PersistenceAll, true}, {PersistenceVM, true}, {PersistenceHost, true}, {Persistence(""), false},
		{ServiceGlance, true}, {ServiceKeystone, true}, {ServiceType("swift"), false},
		{StartFullCloud, true}, {StartFailureReason("no_instance"), false},
		{StopAlreadyStopped, true}, {StopFailureReason("full_cloud"), false},
		{RestartInstanceCorrupt, true}, {RestartFailureReason("already_stopped"), false},
		{DeleteNoInstance, true}, {DeleteFailureReason("already_running"), false},
		{AttachVolumeAlreadyAttached, true}, {AttachVolumeFailureReason("not_attached"), false},
		{DetachVolumeNotAttached, true}, {DetachVolumeFailureReason("already_attached"), false},
		{PublicIPReleaseFailure, true}, {PublicIPFailureReason("full_cloud"), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%T(%s)", tc.v, tc.v), func(t *testing.T) {
			if got := tc.v.Valid(); got != tc.want {
				t.Fatalf("Valid() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEnumDecode checks that decoding keeps any value (receivers reject
// bad ones afterwards, with reason invalid_data) and that values encode as
// their wire text, not their String.
func TestEnumDecode(t *testing.T) {
	var e ErrorStartFailure
	if err := yaml.Unmarshal([]byte("reason: no_such_reason\n"), &e); err != nil {
		t.Fatal(err)
	}
	if e.Reason.Valid() || e.Reason.String() != "no_such_reason" {
		t.Fatalf("reason %q valid=%v", e.Reason, e.Reason.Valid())
	}
	out, err := yaml.Marshal(&ErrorStartFailure{Reason: StartFullCloud})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "instance_uuid: \"\"\nreason: full_cloud\n" {
		t.Fatalf("got %q", out)
	}
}

func TestFailureReasonStrings(t *testing.T) {
	const (
		noInstance     = "Instance does not exist"
		invalidPayload = "YAML payload is corrupt"
		invalidData    = "Command section of YAML payload is corrupt or missing required information"
	)
	tests := []struct {
		r    fmt.Stringer
		wire string
		want string
	}{
		{StartFullCloud, "full_cloud", "Cloud is full"},
		{StartFullComputeNode, "full_cn", "Compute node is full"},
		{StartNoComputeNodes, "no_cn", "No compute node available"},
		{StartNoNetworkNodes, "no_net_cn", "No network node available"},
		{StartInvalidPayload, "invalid_payload", invalidPayload},
		{StartInvalidData, "invalid_data", invalidData},
		{StartAlreadyRunning, "already_running", "Instance is already running"},
		{StartInstanceExists, "instance_exists", "Instance already exists"},
		{StartImageFailure, "image_failure", "Failed to create instance image"},
		{StartLaunchFailure, "launch_failure", "Failed to launch instance"},
		{StartNetworkFailure, "network_failure", "Failed to create VNIC for instance"},

		{StopNoInstance, "no_instance", noInstance},
		{StopInvalidPayload, "invalid_payload", invalidPayload},
		{StopInvalidData, "invalid_data", invalidData},
		{StopAlreadyStopped, "already_stopped", "Instance has already shut down"},

		{RestartNoInstance, "no_instance", noInstance},
		{RestartInvalidPayload, "invalid_payload", invalidPayload},
		{RestartInvalidData, "invalid_data", invalidData},
		{RestartAlreadyRunning, "already_running", "Instance is already running"},
		{RestartInstanceCorrupt, "instance_corrupt", "Instance is corrupt"},
		{RestartLaunchFailure, "launch_failure", "Failed to launch instance"},
		{RestartNetworkFailure, "network_failure", "Failed to locate VNIC for instance"},

		{DeleteNoInstance, "no_instance", noInstance},
		{DeleteInvalidPayload, "invalid_payload", invalidPayload},
		{DeleteInvalidData, "invalid_data", invalidData},

		{AttachVolumeNoInstance, "no_instance", noInstance},
		{AttachVolumeInvalidPayload, "invalid_payload", invalidPayload},
		{AttachVolumeInvalidData, "invalid_data", invalidData},
		{AttachVolumeAttachFailure, "attach_failure", "Failed to attach volume to instance"},
		{AttachVolumeAlreadyAttached, "already_attached", "Volume already attached"},
		{AttachVolumeStateFailure, "state_failure", "State failure"},
		{AttachVolumeInstanceFailure, "instance_failure", "Instance failure"},
		{AttachVolumeNotSupported, "not_supported", "Not Supported"},

		{DetachVolumeNoInstance, "no_instance", noInstance},
		{DetachVolumeInvalidPayload, "invalid_payload", invalidPayload},
		{DetachVolumeInvalidData, "invalid_data", invalidData},
		{DetachVolumeDetachFailure, "detach_failure", "Failed to detach volume from instance"},
		{DetachVolumeNotAttached, "not_attached", "Volume not attached"},
		{DetachVolumeStateFailure, "state_failure", "State failure"},
		{DetachVolumeInstanceFailure, "instance_failure", "Instance failure"},
		{DetachVolumeNotSupported, "not_supported", "Not Supported"},

		{PublicIPNoInstance, "no_instance", noInstance},
		{PublicIPInvalidPayload, "invalid_payload", invalidPayload},
		{PublicIPInvalidData, "invalid_data", invalidData},
		{PublicIPAssignFailure, "assign_failure", "Public IP assignment operation_failed"},
		{PublicIPReleaseFailure, "release_failure", "Public IP release operation_failed"},
	}
	counts := map[string]int{}
	for _, tc := range tests {
		typ := fmt.Sprintf("%T", tc.r)
		counts[typ]++
		t.Run(typ+"/"+tc.wire, func(t *testing.T) {
			if wire := reflectString(tc.r); wire != tc.wire {
				t.Errorf("wire value %q, want %q", wire, tc.wire)
			}
			if got := tc.r.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
	// Every defined reason is listed above.
	for typ, n := range map[string]int{
		"payloads.StartFailureReason":        len(startReasonText),
		"payloads.StopFailureReason":         len(stopReasonText),
		"payloads.RestartFailureReason":      len(restartReasonText),
		"payloads.DeleteFailureReason":       len(deleteReasonText),
		"payloads.AttachVolumeFailureReason": len(attachVolumeReasonText),
		"payloads.DetachVolumeFailureReason": len(detachVolumeReasonText),
		"payloads.PublicIPFailureReason":     len(publicIPReasonText),
	} {
		if counts[typ] != n {
			t.Errorf("%s: %d reasons tested, %d defined", typ, counts[typ], n)
		}
	}
}

// reflectString returns the underlying string of a string-kinded value,
// bypassing its String method.
func reflectString(v interface{}) string { return reflect.ValueOf(v).String() }
