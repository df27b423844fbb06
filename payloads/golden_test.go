package payloads

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	yaml "gopkg.in/yaml.v2"
)

// Identifiers of the 2016 test documents.
const (
	tenantUUID       = "2491851d-dce9-48d6-b83a-a717417072ce"
	instanceUUID     = "3390740c-dce9-48d6-b83a-a717417072ce"
	imageUUID        = "59460b8a-5f53-4e3e-b5ce-b71fed8c7e64"
	agentUUID        = "4cb19522-1e18-439a-883a-f9b2a3a95f5e"
	cnciUUID         = "7e84c2d6-5a84-4f9b-98e3-38980f722d1b"
	cnciInstanceUUID = "c6beb8b5-0bfc-43fd-9638-7dd788179fd8"
	vnicUUID         = "7f49d00d-1995-4156-8c79-5f5ab24ce138"
	volumeUUID       = "67d86208-b46c-4465-9018-e14187d4010"
	storageUUID      = "69e84267-ed01-4738-b15f-b47de06b62e7"
)

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	stdRequested = []RequestedResource{
		{Type: VCPUs, Value: 2, Mandatory: true},
		{Type: MemMB, Value: 4096, Mandatory: true},
		{Type: DiskMB, Value: 10000, Mandatory: true},
	}
	stdEstimated = []EstimatedResource{
		{Type: VCPUs, Value: 1},
		{Type: MemMB, Value: 128},
		{Type: DiskMB, Value: 4096},
	}
	stdPublicIP = PublicIPCommand{
		ConcentratorUUID: cnciUUID,
		TenantUUID:       tenantUUID,
		InstanceUUID:     instanceUUID,
		PublicIP:         "10.1.2.3",
		PrivateIP:        "192.168.1.2",
		VnicMAC:          "aa:bb:cc:01:02:03",
	}
	stdTenant = TenantAddedEvent{
		AgentUUID:        agentUUID,
		AgentIP:          "10.2.3.4",
		TenantUUID:       tenantUUID,
		TenantSubnet:     "10.2.0.0/16",
		ConcentratorUUID: cnciUUID,
		ConcentratorIP:   "10.1.2.3",
		SubnetKey:        8,
	}
	stdVolume = VolumeCmd{InstanceUUID: instanceUUID, VolumeUUID: volumeUUID, WorkloadAgentUUID: agentUUID}
)

// goldenCases lists every example document of the spec with the value it
// decodes to. exact marks the documents that are marshal output, which
// must re-encode to the same bytes.
var goldenCases = []struct {
	file  string
	exact bool
	want  interface{} // pointer to the decoded value
}{
	{"start.yaml", true, &Start{Start: StartCmd{
		TenantUUID:          tenantUUID,
		InstanceUUID:        instanceUUID,
		ImageUUID:           imageUUID,
		DockerImage:         "docker/latest",
		FWType:              FirmwareEFI,
		InstancePersistence: PersistenceHost,
		VMType:              HypervisorQEMU,
		RequestedResources:  stdRequested,
		EstimatedResources:  stdEstimated,
	}}},
	{"start_storage.yaml", true, &Start{Start: StartCmd{
		RequestedResources: []RequestedResource{},
		EstimatedResources: []EstimatedResource{},
		Storage:            StorageResources{ID: storageUUID, Bootable: true},
	}}},
	{"cnci_start.yaml", false, &Start{Start: StartCmd{
		InstanceUUID:        cnciInstanceUUID,
		ImageUUID:           imageUUID,
		FWType:              FirmwareEFI,
		InstancePersistence: PersistenceHost,
		VMType:              HypervisorQEMU,
		RequestedResources: []RequestedResource{
			{Type: VCPUs, Value: 4, Mandatory: true},
			{Type: MemMB, Value: 4096, Mandatory: true},
			{Type: NetworkNode, Value: 1, Mandatory: true},
		},
		Networking: NetworkResources{
			VnicMAC:          "aa:bb:cc:01:02:03",
			VnicUUID:         vnicUUID,
			ConcentratorUUID: cnciUUID,
			ConcentratorIP:   "10.1.2.3",
			Subnet:           "10.2.0.0/16",
			SubnetKey:        "8",
		},
	}}},
	{"partial_start.yaml", false, &Start{Start: StartCmd{
		InstanceUUID:        instanceUUID,
		ImageUUID:           imageUUID,
		DockerImage:         "docker/latest",
		FWType:              FirmwareEFI,
		InstancePersistence: PersistenceHost,
		VMType:              HypervisorQEMU,
		RequestedResources:  []RequestedResource{{Type: VCPUs, Value: 2, Mandatory: true}},
	}}},
	{"stop.yaml", true, &Stop{Stop: StopCmd{InstanceUUID: instanceUUID, WorkloadAgentUUID: agentUUID}}},
	{"delete.yaml", true, &Delete{Delete: StopCmd{InstanceUUID: instanceUUID, WorkloadAgentUUID: agentUUID}}},
	{"restart.yaml", true, &Restart{Restart: RestartCmd{
		TenantUUID:          tenantUUID,
		InstanceUUID:        instanceUUID,
		ImageUUID:           imageUUID,
		WorkloadAgentUUID:   agentUUID,
		FWType:              FirmwareEFI,
		InstancePersistence: PersistenceHost,
		RequestedResources:  stdRequested,
		EstimatedResources:  stdEstimated,
	}}},
	{"partial_restart.yaml", false, &Restart{Restart: RestartCmd{
		InstanceUUID:        instanceUUID,
		WorkloadAgentUUID:   agentUUID,
		FWType:              FirmwareEFI,
		InstancePersistence: PersistenceHost,
		RequestedResources:  []RequestedResource{{Type: VCPUs, Value: 2, Mandatory: true}},
	}}},
	{"evacuate.yaml", true, &Evacuate{Evacuate: EvacuateCmd{WorkloadAgentUUID: agentUUID}}},
	{"stats.yaml", true, &Stat{
		NodeUUID:        agentUUID,
		Status:          "READY",
		MemTotalMB:      3896,
		MemAvailableMB:  3896,
		DiskTotalMB:     500000,
		DiskAvailableMB: 256000,
		Load:            0,
		CpusOnline:      4,
		NodeHostName:    "test",
		Networks: []NetworkStat{
			{NodeIP: "192.168.1.1", NodeMAC: "02:00:15:03:6f:49"},
			{NodeIP: "10.168.1.1", NodeMAC: "02:00:8c:ba:f9:45"},
		},
		Instances: []InstanceStat{
			{
				InstanceUUID:  "fe2970fa-7b36-460b-8b79-9eb4745e62f2",
				State:         InstanceActive,
				MemoryUsageMB: 40,
				DiskUsageMB:   2,
				CPUUsage:      90,
				Volumes:       []string{},
			},
			{
				InstanceUUID:  "cbda5bd8-33bd-4d39-9f52-ace8c9f0b99c",
				State:         InstanceActive,
				SSHIP:         "172.168.2.2",
				SSHPort:       8768,
				MemoryUsageMB: 50,
				DiskUsageMB:   10,
				CPUUsage:      0,
				Volumes:       []string{},
			},
			{
				InstanceUUID:  "1f5b2fe6-4493-4561-904a-8f4e956218d9",
				State:         InstanceExited,
				MemoryUsageMB: -1,
				DiskUsageMB:   2,
				CPUUsage:      -1,
				Volumes:       []string{volumeUUID},
			},
		},
	}},
	{"stats_default.yaml", true, &Stat{
		MemTotalMB: -1, MemAvailableMB: -1, DiskTotalMB: -1, DiskAvailableMB: -1, Load: -1, CpusOnline: -1,
		Networks:  []NetworkStat{},
		Instances: []InstanceStat{},
	}},
	{"ready.yaml", true, &Ready{
		NodeUUID:        agentUUID,
		MemTotalMB:      3896,
		MemAvailableMB:  3896,
		DiskTotalMB:     500000,
		DiskAvailableMB: 256000,
		Load:            0,
		CpusOnline:      4,
	}},
	{"configure.yaml", true, &Configure{Configure: ConfigurePayload{
		Scheduler: ConfigureScheduler{ConfigStorageURI: "/etc/ciao/ciao.json"},
		Storage:   ConfigureStorage{CephID: "ciao"},
		Controller: ConfigureController{
			VolumePort:       446,
			ComputePort:      443,
			HTTPSCACert:      "/etc/pki/ciao/compute_ca.pem",
			HTTPSKey:         "/etc/pki/ciao/compute_key.pem",
			IdentityUser:     "controller",
			IdentityPassword: "ciao",
		},
		Launcher: ConfigureLauncher{
			ComputeNetwork:    []string{"192.168.1.110"},
			ManagementNetwork: []string{"192.168.1.111"},
		},
		ImageService:    ConfigureService{Type: ServiceGlance, URL: "http://glance.example.com"},
		IdentityService: ConfigureService{Type: ServiceKeystone, URL: "http://keystone.example.com"},
	}}},
	{"configure_connected.yaml", true, &Configure{Configure: ConfigurePayload{
		Scheduler: ConfigureScheduler{ConfigStorageURI: "/etc/ciao/configuration.yaml"},
		Controller: ConfigureController{
			VolumePort:       8776,
			ComputePort:      8774,
			HTTPSCACert:      "/etc/pki/ciao/controller_cert.pem",
			HTTPSKey:         "/etc/pki/ciao/controller_key.pem",
			IdentityUser:     "csr",
			IdentityPassword: "hello",
		},
		Launcher: ConfigureLauncher{
			ComputeNetwork:    []string{},
			ManagementNetwork: []string{},
			DiskLimit:         true,
			MemoryLimit:       true,
		},
		ImageService:    ConfigureService{Type: ServiceGlance},
		IdentityService: ConfigureService{Type: ServiceKeystone, URL: "http://keystone.example.com"},
	}}},
	{"assign_public_ip.yaml", true, &CommandAssignPublicIP{AssignIP: stdPublicIP}},
	{"release_public_ip.yaml", true, &CommandReleasePublicIP{ReleaseIP: stdPublicIP}},
	{"attach_volume.yaml", true, &AttachVolume{Attach: stdVolume}},
	{"detach_volume.yaml", true, &DetachVolume{Detach: stdVolume}},
	{"tenant_added.yaml", true, &EventTenantAdded{TenantAdded: stdTenant}},
	{"tenant_removed.yaml", true, &EventTenantRemoved{TenantRemoved: stdTenant}},
	{"instance_deleted.yaml", true, &EventInstanceDeleted{InstanceDeleted: InstanceDeletedEvent{InstanceUUID: instanceUUID}}},
	{"concentrator_added.yaml", true, &EventConcentratorInstanceAdded{CNCIAdded: ConcentratorInstanceAddedEvent{
		InstanceUUID:    cnciUUID,
		TenantUUID:      tenantUUID,
		ConcentratorIP:  "10.1.2.3",
		ConcentratorMAC: "CA:FE:C0:00:01:02",
	}}},
	{"public_ip_assigned.yaml", true, &EventPublicIPAssigned{AssignedIP: PublicIPEvent{
		ConcentratorUUID: cnciUUID,
		InstanceUUID:     instanceUUID,
		PublicIP:         "10.1.2.3",
		PrivateIP:        "192.168.1.2",
	}}},
	{"trace.yaml", true, &Trace{Frames: []FrameTrace{{
		Label:          "instance-label",
		Type:           "COMMAND",
		Operand:        "START",
		StartTimestamp: "2016-10-18T17:00:00Z",
		EndTimestamp:   "2016-10-18T17:00:00.9Z",
		Nodes: []SSNTPNode{
			{SSNTPUUID: instanceUUID, SSNTPRole: "Controller-", TxTimestamp: "2016-10-18T17:00:00.001Z"},
			{SSNTPUUID: cnciUUID, SSNTPRole: "Scheduler-", TxTimestamp: "2016-10-18T17:00:00.003Z", RxTimestamp: "2016-10-18T17:00:00.002Z"},
			{SSNTPUUID: agentUUID, SSNTPRole: "CNAgent-", RxTimestamp: "2016-10-18T17:00:00.004Z"},
		},
	}}}},
	{"node_connected.yaml", true, &NodeConnected{Connected: NodeConnectedEvent{NodeUUID: agentUUID, NodeType: NetworkNode}}},
	{"node_disconnected.yaml", true, &NodeDisconnected{Disconnected: NodeConnectedEvent{NodeUUID: agentUUID, NodeType: ComputeNode}}},
	{"start_failure.yaml", true, &ErrorStartFailure{InstanceUUID: instanceUUID, Reason: StartFullCloud}},
	{"stop_failure.yaml", true, &ErrorStopFailure{InstanceUUID: instanceUUID, Reason: StopAlreadyStopped}},
	{"restart_failure.yaml", true, &ErrorRestartFailure{InstanceUUID: instanceUUID, Reason: RestartAlreadyRunning}},
	{"delete_failure.yaml", true, &ErrorDeleteFailure{InstanceUUID: instanceUUID, Reason: DeleteNoInstance}},
	{"attach_volume_failure.yaml", true, &ErrorAttachVolumeFailure{InstanceUUID: instanceUUID, VolumeUUID: volumeUUID, Reason: AttachVolumeAttachFailure}},
	{"detach_volume_failure.yaml", true, &ErrorDetachVolumeFailure{InstanceUUID: instanceUUID, VolumeUUID: volumeUUID, Reason: DetachVolumeDetachFailure}},
	{"public_ip_failure.yaml", true, &ErrorPublicIPFailure{
		ConcentratorUUID: cnciUUID,
		TenantUUID:       tenantUUID,
		InstanceUUID:     instanceUUID,
		PublicIP:         "10.1.2.3",
		PrivateIP:        "192.168.1.2",
		VnicMAC:          "aa:bb:cc:01:02:03",
		Reason:           PublicIPAssignFailure,
	}},
}

// newLike returns a pointer to a new zero value of the type v points to.
func newLike(v interface{}) interface{} {
	return reflect.New(reflect.TypeOf(v).Elem()).Interface()
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			in := readGolden(t, tc.file)
			got := newLike(tc.want)
			if err := yaml.UnmarshalStrict(in, got); err != nil {
				t.Fatalf("strict decode (a key not in the struct?): %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, tc.want)
			}
			out, err := yaml.Marshal(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if tc.exact && !bytes.Equal(out, in) {
				t.Fatalf("re-encoded\n%s\nwant\n%s", out, in)
			}
			again := newLike(tc.want)
			if err := yaml.Unmarshal(out, again); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalized(again), normalized(tc.want)) {
				t.Fatalf("round trip changed the value:\n%#v", again)
			}
		})
	}
}

// TestGoldenComplete checks that every file in testdata is exercised.
func TestGoldenComplete(t *testing.T) {
	seen := map[string]bool{"start_wire.txt": true}
	for _, tc := range goldenCases {
		seen[tc.file] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if info, err := os.Stat(f); err == nil && info.IsDir() {
			continue // fuzz corpora
		}
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no golden case", f)
		}
	}
}

// normalized returns a deep copy of the value v points to in which every nil
// slice is empty, since nil and empty both marshal as [] and decode as
// empty.
func normalized(v interface{}) interface{} {
	c := reflect.New(reflect.TypeOf(v).Elem())
	c.Elem().Set(normalize(reflect.ValueOf(v).Elem()))
	return c.Interface()
}

func normalize(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		for i := 0; i < v.NumField(); i++ {
			if c.Field(i).CanSet() {
				c.Field(i).Set(normalize(v.Field(i)))
			}
		}
		return c
	case reflect.Slice:
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			c.Index(i).Set(normalize(v.Index(i)))
		}
		return c
	}
	return v
}
