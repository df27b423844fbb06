package testutil

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// The 2016 fixture documents (payloads.md), which the helpers must
// reproduce byte for byte.
const (
	startYAML = `start:
  tenant_uuid: 2491851d-dce9-48d6-b83a-a717417072ce
  instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
  image_uuid: 59460b8a-5f53-4e3e-b5ce-b71fed8c7e64
  docker_image: docker/latest
  fw_type: efi
  persistence: host
  vm_type: qemu
  requested_resources:
  - type: vcpus
    value: 2
    mandatory: true
  - type: mem_mb
    value: 4096
    mandatory: true
  - type: disk_mb
    value: 10000
    mandatory: true
  estimated_resources:
  - type: vcpus
    value: 1
  - type: mem_mb
    value: 128
  - type: disk_mb
    value: 4096
  networking:
    vnic_mac: ""
    vnic_uuid: ""
    concentrator_uuid: ""
    concentrator_ip: ""
    subnet: ""
    subnet_key: ""
    subnet_uuid: ""
    private_ip: ""
    public_ip: false
`
	stopYAML = `stop:
  instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
  workload_agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
`
	evacuateYAML = `evacuate:
  workload_agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
`
	readyYAML = `node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
mem_total_mb: 3896
mem_available_mb: 3896
disk_total_mb: 500000
disk_available_mb: 256000
load: 0
cpus_online: 4
`
	tenantAddedYAML = `tenant_added:
  agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
  agent_ip: 10.2.3.4
  tenant_uuid: 2491851d-dce9-48d6-b83a-a717417072ce
  tenant_subnet: 10.2.0.0/16
  concentrator_uuid: 7e84c2d6-5a84-4f9b-98e3-38980f722d1b
  concentrator_ip: 10.1.2.3
  subnet_key: 8
`
	cnciAddedYAML = `concentrator_instance_added:
  instance_uuid: 7e84c2d6-5a84-4f9b-98e3-38980f722d1b
  tenant_uuid: 2491851d-dce9-48d6-b83a-a717417072ce
  concentrator_ip: 10.1.2.3
  concentrator_mac: CA:FE:C0:00:01:02
`
	attachVolumeYAML = `attach_volume:
  instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
  volume_uuid: 67d86208-b46c-4465-9018-e14187d4010
  workload_agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
`
	nodeConnectedYAML = `node_connected:
  node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
  node_type: network_node
`
	startFailureYAML = `instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
reason: full_cloud
`
	configureYAML = `configure:
  scheduler:
    storage_uri: /etc/ciao/ciao.json
  storage:
    ceph_id: ciao
  controller:
    volume_port: 446
    compute_port: 443
    compute_ca: /etc/pki/ciao/compute_ca.pem
    compute_cert: /etc/pki/ciao/compute_key.pem
    identity_user: controller
    identity_password: ciao
  launcher:
    compute_net:
    - 192.168.1.110
    mgmt_net:
    - 192.168.1.111
    disk_limit: false
    mem_limit: false
  image_service:
    type: glance
    url: http://glance.example.com
  identity_service:
    type: keystone
    url: http://keystone.example.com
`
)

func TestFixturesMatch2016(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"start", Marshal(t, payloads.Start{Start: StartCmd()}), startYAML},
		{"stop", StopPayload(InstanceUUID, AgentUUID), stopYAML},
		{"delete", DeletePayload(InstanceUUID, AgentUUID), strings.Replace(stopYAML, "stop:", "delete:", 1)},
		{"evacuate", EvacuatePayload(AgentUUID), evacuateYAML},
		{"ready", ReadyPayload(AgentUUID, 3896, 3896), readyYAML},
		{"tenant added", TenantAddedPayload(AgentUUID, TenantUUID, CNCIUUID), tenantAddedYAML},
		{"tenant removed", TenantRemovedPayload(AgentUUID, TenantUUID, CNCIUUID), strings.Replace(tenantAddedYAML, "tenant_added:", "tenant_removed:", 1)},
		{"cnci added", CNCIAddedPayload(CNCIUUID, TenantUUID), cnciAddedYAML},
		{"attach volume", AttachVolumePayload(InstanceUUID, VolumeUUID, AgentUUID), attachVolumeYAML},
		{"detach volume", DetachVolumePayload(InstanceUUID, VolumeUUID, AgentUUID), strings.Replace(attachVolumeYAML, "attach_volume:", "detach_volume:", 1)},
		{"node connected", NodeConnectedPayload(AgentUUID, payloads.NetworkNode), nodeConnectedYAML},
		{"start failure", StartFailurePayload(InstanceUUID, payloads.StartFullCloud), startFailureYAML},
		{"configure", ConfigurePayload(), configureYAML},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", tc.got, tc.want)
			}
		})
	}
}

// The payloads the 2016 fixtures do not pin down must still decode into
// what they were built from.
func TestFixturesDecode(t *testing.T) {
	var r payloads.Restart
	if err := yaml.UnmarshalStrict(RestartPayload(InstanceUUID, AgentUUID), &r); err != nil {
		t.Fatal(err)
	}
	if r.Restart.InstanceUUID != InstanceUUID || r.Restart.WorkloadAgentUUID != AgentUUID || len(r.Restart.RequestedResources) != 3 {
		t.Errorf("restart: %+v", r.Restart)
	}

	var st payloads.Stat
	in := payloads.InstanceStat{InstanceUUID: InstanceUUID, State: payloads.InstanceActive, Volumes: []string{VolumeUUID}}
	if err := yaml.UnmarshalStrict(StatsPayload(AgentUUID, AgentHostname, in), &st); err != nil {
		t.Fatal(err)
	}
	if st.NodeUUID != AgentUUID || st.NodeHostName != "test" || st.Status != "READY" || len(st.Instances) != 1 || st.Instances[0].Volumes[0] != VolumeUUID {
		t.Errorf("stats: %+v", st)
	}
	if !bytes.Contains(StatsPayload(AgentUUID, "h"), []byte("instances: []\n")) {
		t.Errorf("stats without instances should say instances: []:\n%s", StatsPayload(AgentUUID, "h"))
	}

	for name, b := range map[string][]byte{
		"stop failure":    StopFailurePayload(InstanceUUID, payloads.StopAlreadyStopped),
		"restart failure": RestartFailurePayload(InstanceUUID, payloads.RestartAlreadyRunning),
		"delete failure":  DeleteFailurePayload(InstanceUUID, payloads.DeleteNoInstance),
	} {
		var e struct {
			InstanceUUID string `yaml:"instance_uuid"`
			Reason       string `yaml:"reason"`
		}
		if err := yaml.UnmarshalStrict(b, &e); err != nil || e.InstanceUUID != InstanceUUID || e.Reason == "" {
			t.Errorf("%s: %+v, %v", name, e, err)
		}
	}
	var del payloads.EventInstanceDeleted
	if err := yaml.UnmarshalStrict(InstanceDeletedPayload(InstanceUUID), &del); err != nil || del.InstanceDeleted.InstanceUUID != InstanceUUID {
		t.Errorf("instance deleted: %+v, %v", del, err)
	}
	var dis payloads.NodeDisconnected
	if err := yaml.UnmarshalStrict(NodeDisconnectedPayload(NetAgentUUID, payloads.ComputeNode), &dis); err != nil ||
		dis.Disconnected != (payloads.NodeConnectedEvent{NodeUUID: NetAgentUUID, NodeType: payloads.ComputeNode}) {
		t.Errorf("node disconnected: %+v, %v", dis, err)
	}
}

// StartPayload must survive the launcher's split and carry the options.
func TestStartPayload(t *testing.T) {
	tests := []struct {
		name     string
		opts     []StartOption
		check    func(t *testing.T, c payloads.StartCmd)
		hostname string
	}{
		{"default", nil, func(t *testing.T, c payloads.StartCmd) {
			if c.InstanceUUID != InstanceUUID || c.TenantUUID != TenantUUID || c.VMType != payloads.HypervisorQEMU {
				t.Errorf("%+v", c)
			}
			if mem, _ := c.MemMB(); mem != 4096 {
				t.Errorf("mem %d", mem)
			}
			if nn, err := c.NetworkNode(); nn || err != nil {
				t.Errorf("network node %v %v", nn, err)
			}
		}, InstanceUUID},
		{"options", []StartOption{StartInstance("abcd-1234"), StartTenant("5678"), StartVMType(payloads.HypervisorDocker), StartMemMB(64), StartVCPUs(8)}, func(t *testing.T, c payloads.StartCmd) {
			vcpus, _ := c.VCPUs()
			mem, _ := c.MemMB()
			if c.InstanceUUID != "abcd-1234" || c.TenantUUID != "5678" || c.VMType != payloads.HypervisorDocker || mem != 64 || vcpus != 8 || len(c.RequestedResources) != 3 {
				t.Errorf("%+v", c)
			}
			if err := c.ValidateForLauncher(); err != nil {
				t.Error(err)
			}
		}, "abcd-1234"},
		{"network node", []StartOption{StartInstance(CNCIInstanceUUID), StartNetworkNode()}, func(t *testing.T, c payloads.StartCmd) {
			if nn, err := c.NetworkNode(); !nn || err != nil {
				t.Errorf("network node %v %v", nn, err)
			}
			if c.Networking.ConcentratorUUID != CNCIUUID || c.Networking.SubnetKey != SubnetKey || c.Networking.VnicMAC != VNICMAC {
				t.Errorf("networking %+v", c.Networking)
			}
			if err := c.ValidateForScheduler(); err != nil {
				t.Error(err)
			}
		}, "cnci-" + TenantUUID},
		{"raw mutator", []StartOption{func(c *payloads.StartCmd) { c.RequestedResources = nil }}, func(t *testing.T, c payloads.StartCmd) {
			if c.ValidateForScheduler() == nil {
				t.Error("a START without mem_mb passes the scheduler's check")
			}
		}, InstanceUUID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := StartPayload(tc.opts...)
			startPart, userData, meta, err := payloads.SplitStart(b)
			if err != nil {
				t.Fatalf("SplitStart: %v\n%s", err, b)
			}
			var s payloads.Start
			if err := yaml.UnmarshalStrict(startPart, &s); err != nil {
				t.Fatal(err)
			}
			tc.check(t, s.Start)
			if string(userData) != StartUserData {
				t.Errorf("user data %q", userData)
			}
			var md payloads.StartMetadata
			js := bytes.TrimSuffix(bytes.TrimPrefix(meta, []byte("---\n")), []byte("...\n"))
			if err := json.Unmarshal(js, &md); err != nil || md.UUID != s.Start.InstanceUUID || md.Hostname != tc.hostname {
				t.Errorf("metadata %+v (%v) from %q", md, err, meta)
			}
			// The scheduler reads only the first document.
			d, err := payloads.DecodeStart(b)
			if err != nil || d.Start.InstanceUUID != s.Start.InstanceUUID {
				t.Errorf("DecodeStart: %v", err)
			}
		})
	}
}

func TestFrameTrace(t *testing.T) {
	t0 := time.Date(2016, 10, 18, 17, 0, 0, 0, time.UTC)
	ctrl, sched, agent := uuid.MustParse(InstanceUUID), uuid.MustParse(CNCIUUID), uuid.MustParse(AgentUUID)
	f := &ssntp.Frame{
		Major:   0x80,
		Type:    ssntp.COMMAND,
		Operand: uint8(ssntp.START),
		Trace: &ssntp.FrameTrace{
			Label:          []byte("instance-label"),
			StartTimestamp: t0,
			EndTimestamp:   t0.Add(900 * time.Millisecond),
			PathLength:     3,
			Path: []ssntp.Node{
				{UUID: ctrl[:], Role: uint32(ssntp.Controller), TxTimestamp: t0.Add(time.Millisecond)},
				{UUID: sched[:], Role: uint32(ssntp.SCHEDULER), RxTimestamp: t0.Add(2 * time.Millisecond), TxTimestamp: t0.Add(3 * time.Millisecond)},
				{UUID: agent[:], Role: uint32(ssntp.AGENT), RxTimestamp: t0.Add(4 * time.Millisecond)},
			},
		},
	}
	// payloads.md §5.5, generated by the 2016 code for this very trace.
	want := `frames:
- label: instance-label
  type: COMMAND
  operand: START
  start_timestamp: 2016-10-18T17:00:00Z
  end_timestamp: 2016-10-18T17:00:00.9Z
  nodes:
  - ssntp_node_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
    ssntp_role: Controller-
    tx_timestamp: 2016-10-18T17:00:00.001Z
    rx_timestamp: ""
  - ssntp_node_uuid: 7e84c2d6-5a84-4f9b-98e3-38980f722d1b
    ssntp_role: Scheduler-
    tx_timestamp: 2016-10-18T17:00:00.003Z
    rx_timestamp: 2016-10-18T17:00:00.002Z
  - ssntp_node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
    ssntp_role: CNAgent-
    tx_timestamp: ""
    rx_timestamp: 2016-10-18T17:00:00.004Z
`
	if got := string(TraceReportPayload(f)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(TraceReportPayload()); got != "frames: []\n" {
		t.Errorf("empty report: %q", got)
	}
	if ft := FrameTrace(&ssntp.Frame{Type: ssntp.ERROR, Operand: uint8(ssntp.StartFailure)}); ft.Operand != "1" || ft.Nodes != nil {
		t.Errorf("untraced error frame: %+v", ft)
	}
}
