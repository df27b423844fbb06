package testutil

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

// The identifiers and addresses of the 2016 test suite (tooling.md §5.1).
// They are strings because that is how payloads carry them; VolumeUUID is
// deliberately not a well-formed UUID (its last group is short).
const (
	AgentIP           = "10.2.3.4"
	TenantSubnet      = "10.2.0.0/16"
	SubnetKey         = "8"
	InstancePublicIP  = "10.1.2.3"
	InstancePrivateIP = "192.168.1.2"
	VNICMAC           = "aa:bb:cc:01:02:03"
	VNICUUID          = "7f49d00d-1995-4156-8c79-5f5ab24ce138"
	TenantUUID        = "2491851d-dce9-48d6-b83a-a717417072ce"
	CNCIUUID          = "7e84c2d6-5a84-4f9b-98e3-38980f722d1b"
	CNCIIP            = "10.1.2.3"
	CNCIMAC           = "CA:FE:C0:00:01:02"
	SchedulerAddr     = "192.168.42.5"
	KeystoneURL       = "http://keystone.example.com"
	GlanceURL         = "http://glance.example.com"
	ComputeNet        = "192.168.1.110"
	MgmtNet           = "192.168.1.111"
	ManagementID      = "ciao"
	StorageURI        = "/etc/ciao/ciao.json"
	IdentityUser      = "controller"
	IdentityPassword  = "ciao"
	VolumePort        = "446"
	ComputePort       = "443"
	HTTPSKey          = "/etc/pki/ciao/compute_key.pem"
	HTTPSCACert       = "/etc/pki/ciao/compute_ca.pem"
	DockerImage       = "docker/latest"
	ImageUUID         = "59460b8a-5f53-4e3e-b5ce-b71fed8c7e64"
	InstanceUUID      = "3390740c-dce9-48d6-b83a-a717417072ce"
	CNCIInstanceUUID  = "c6beb8b5-0bfc-43fd-9638-7dd788179fd8"
	NetAgentUUID      = "6be56328-92e2-4ecd-b426-8fe529c04e0c"
	AgentUUID         = "4cb19522-1e18-439a-883a-f9b2a3a95f5e"
	VolumeUUID        = "67d86208-b46c-4465-9018-e14187d4010"
)

// AgentHostname is the hostname fakes put in STATS, as the 2016 fixtures.
const AgentHostname = "test"

// mustMarshal marshals a payload struct. The payload types hold only
// strings, numbers, booleans and slices of them, which yaml.v2 always
// marshals; a failure is a bug in this package.
func mustMarshal(v any) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("testutil: marshalling %T: %v", v, err))
	}
	return b
}

// Marshal encodes a payload struct as YAML, failing the test if it cannot.
func Marshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		tb.Fatalf("testutil: marshalling %T: %v", v, err)
	}
	return b
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("testutil: bad numeric constant " + s)
	}
	return n
}

// StartOption changes the START built by StartCmd and StartPayload. Any
// func(*payloads.StartCmd) will do; the Start… functions cover the usual.
type StartOption func(*payloads.StartCmd)

// StartInstance sets instance_uuid (default InstanceUUID).
func StartInstance(id string) StartOption {
	return func(c *payloads.StartCmd) { c.InstanceUUID = id }
}

// StartTenant sets tenant_uuid (default TenantUUID).
func StartTenant(id string) StartOption {
	return func(c *payloads.StartCmd) { c.TenantUUID = id }
}

// StartVMType sets vm_type (default qemu; docker_image is DockerImage).
func StartVMType(h payloads.Hypervisor) StartOption {
	return func(c *payloads.StartCmd) { c.VMType = h }
}

// StartMemMB sets the requested mem_mb (default 4096).
func StartMemMB(mb int) StartOption {
	return func(c *payloads.StartCmd) { setRequested(c, payloads.MemMB, mb) }
}

// StartVCPUs sets the requested vcpus (default 2).
func StartVCPUs(n int) StartOption {
	return func(c *payloads.StartCmd) { setRequested(c, payloads.VCPUs, n) }
}

// StartNetworkNode makes the START a CNCI launch: network_node 1, which
// the scheduler places on a NETAGENT, and the CNCI networking section of
// the 2016 CNCIStartYaml (VNIC, concentrator, tenant subnet and key).
func StartNetworkNode() StartOption {
	return func(c *payloads.StartCmd) {
		setRequested(c, payloads.NetworkNode, 1)
		c.Networking = payloads.NetworkResources{
			VnicMAC:          VNICMAC,
			VnicUUID:         VNICUUID,
			ConcentratorUUID: CNCIUUID,
			ConcentratorIP:   CNCIIP,
			Subnet:           TenantSubnet,
			SubnetKey:        SubnetKey,
		}
	}
}

// setRequested replaces the value of a requested resource, or adds it.
func setRequested(c *payloads.StartCmd, r payloads.Resource, v int) {
	for i := range c.RequestedResources {
		if c.RequestedResources[i].Type == r {
			c.RequestedResources[i].Value = v
			return
		}
	}
	c.RequestedResources = append(c.RequestedResources, payloads.RequestedResource{Type: r, Value: v, Mandatory: true})
}

// StartCmd returns the 2016 StartYaml command (tenant TenantUUID, instance
// InstanceUUID, image ImageUUID, qemu, 2 vcpus, 4096 MB, 10000 MB of disk,
// no networking) with opts applied.
func StartCmd(opts ...StartOption) payloads.StartCmd {
	c := payloads.StartCmd{
		TenantUUID:          TenantUUID,
		InstanceUUID:        InstanceUUID,
		ImageUUID:           ImageUUID,
		DockerImage:         DockerImage,
		FWType:              payloads.FirmwareEFI,
		InstancePersistence: payloads.PersistenceHost,
		VMType:              payloads.HypervisorQEMU,
		RequestedResources: []payloads.RequestedResource{
			{Type: payloads.VCPUs, Value: 2, Mandatory: true},
			{Type: payloads.MemMB, Value: 4096, Mandatory: true},
			{Type: payloads.DiskMB, Value: 10000, Mandatory: true},
		},
		EstimatedResources: []payloads.EstimatedResource{
			{Type: payloads.VCPUs, Value: 1},
			{Type: payloads.MemMB, Value: 128},
			{Type: payloads.DiskMB, Value: 4096},
		},
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// StartUserData is the cloud-init user data StartPayload carries: the
// smallest document the launcher splits as a controller's START.
const StartUserData = "---\n#cloud-config\n...\n"

// StartPayload is StartCmd as the controller sends it: three YAML
// documents (START, StartUserData, metadata).
func StartPayload(opts ...StartOption) []byte {
	c := StartCmd(opts...)
	host := c.InstanceUUID
	if nn, _ := c.NetworkNode(); nn {
		host = "cnci-" + c.TenantUUID // as the controller names CNCIs
	}
	b, err := payloads.ComposeStart(&payloads.Start{Start: c}, StartUserData, payloads.StartMetadata{UUID: c.InstanceUUID, Hostname: host})
	if err != nil {
		panic("testutil: composing START: " + err.Error())
	}
	return b
}

// StopPayload asks agent to stop instance.
func StopPayload(instance, agent string) []byte {
	return mustMarshal(payloads.Stop{Stop: payloads.StopCmd{InstanceUUID: instance, WorkloadAgentUUID: agent}})
}

// DeletePayload asks agent to delete instance.
func DeletePayload(instance, agent string) []byte {
	return mustMarshal(payloads.Delete{Delete: payloads.StopCmd{InstanceUUID: instance, WorkloadAgentUUID: agent}})
}

// RestartPayload asks agent to restart instance, with the resources of
// the default StartCmd as the 2016 RestartYaml.
func RestartPayload(instance, agent string) []byte {
	s := StartCmd()
	return mustMarshal(payloads.Restart{Restart: payloads.RestartCmd{
		TenantUUID:          s.TenantUUID,
		InstanceUUID:        instance,
		ImageUUID:           s.ImageUUID,
		WorkloadAgentUUID:   agent,
		FWType:              s.FWType,
		InstancePersistence: s.InstancePersistence,
		RequestedResources:  s.RequestedResources,
		EstimatedResources:  s.EstimatedResources,
	}})
}

// EvacuatePayload asks agent to evacuate.
func EvacuatePayload(agent string) []byte {
	return mustMarshal(payloads.Evacuate{Evacuate: payloads.EvacuateCmd{WorkloadAgentUUID: agent}})
}

// AttachVolumePayload asks agent to attach volume to instance.
func AttachVolumePayload(instance, volume, agent string) []byte {
	return mustMarshal(payloads.AttachVolume{Attach: payloads.VolumeCmd{InstanceUUID: instance, VolumeUUID: volume, WorkloadAgentUUID: agent}})
}

// DetachVolumePayload asks agent to detach volume from instance.
func DetachVolumePayload(instance, volume, agent string) []byte {
	return mustMarshal(payloads.DetachVolume{Detach: payloads.VolumeCmd{InstanceUUID: instance, VolumeUUID: volume, WorkloadAgentUUID: agent}})
}

// ConfigureCmd is the 2016 ConfigureYaml: every key set from the
// constants, resource limits off.
func ConfigureCmd() payloads.Configure {
	return payloads.Configure{Configure: payloads.ConfigurePayload{
		Scheduler: payloads.ConfigureScheduler{ConfigStorageURI: StorageURI},
		Storage:   payloads.ConfigureStorage{CephID: ManagementID},
		Controller: payloads.ConfigureController{
			VolumePort:       atoi(VolumePort),
			ComputePort:      atoi(ComputePort),
			HTTPSCACert:      HTTPSCACert,
			HTTPSKey:         HTTPSKey,
			IdentityUser:     IdentityUser,
			IdentityPassword: IdentityPassword,
		},
		Launcher: payloads.ConfigureLauncher{
			ComputeNetwork:    []string{ComputeNet},
			ManagementNetwork: []string{MgmtNet},
		},
		ImageService:    payloads.ConfigureService{Type: payloads.ServiceGlance, URL: GlanceURL},
		IdentityService: payloads.ConfigureService{Type: payloads.ServiceKeystone, URL: KeystoneURL},
	}}
}

// ConfigurePayload is ConfigureCmd marshalled.
func ConfigurePayload() []byte { return mustMarshal(ConfigureCmd()) }

// ReadyPayload is a READY from node with the given memory and the rest of
// the 2016 ReadyYaml (disk 500000/256000 MB, load 0, 4 CPUs).
func ReadyPayload(node string, memTotalMB, memAvailMB int) []byte {
	return mustMarshal(payloads.Ready{
		NodeUUID:        node,
		MemTotalMB:      memTotalMB,
		MemAvailableMB:  memAvailMB,
		DiskTotalMB:     500000,
		DiskAvailableMB: 256000,
		Load:            0,
		CpusOnline:      4,
	})
}

// StatsCmd is a READY node's STATS with the node figures and networks of
// the 2016 StatsYaml and the given instances.
func StatsCmd(node, hostname string, instances ...payloads.InstanceStat) payloads.Stat {
	if instances == nil {
		instances = []payloads.InstanceStat{} // "[]", as a launcher with none sends
	}
	return payloads.Stat{
		NodeUUID:        node,
		Status:          ssntp.READY.String(),
		MemTotalMB:      3896,
		MemAvailableMB:  3896,
		DiskTotalMB:     500000,
		DiskAvailableMB: 256000,
		Load:            0,
		CpusOnline:      4,
		NodeHostName:    hostname,
		Networks: []payloads.NetworkStat{
			{NodeIP: "192.168.1.1", NodeMAC: "02:00:15:03:6f:49"},
			{NodeIP: "10.168.1.1", NodeMAC: "02:00:8c:ba:f9:45"},
		},
		Instances: instances,
	}
}

// StatsPayload is StatsCmd marshalled.
func StatsPayload(node, hostname string, instances ...payloads.InstanceStat) []byte {
	return mustMarshal(StatsCmd(node, hostname, instances...))
}

// tenantEvent is the 2016 TenantAddedYaml with the given parties.
func tenantEvent(agent, tenant, concentrator string) payloads.TenantAddedEvent {
	return payloads.TenantAddedEvent{
		AgentUUID:        agent,
		AgentIP:          AgentIP,
		TenantUUID:       tenant,
		TenantSubnet:     TenantSubnet,
		ConcentratorUUID: concentrator,
		ConcentratorIP:   CNCIIP,
		SubnetKey:        atoi(SubnetKey),
	}
}

// TenantAddedPayload says agent opened a tunnel for tenant to the CNCI
// concentrator (the scheduler's routing key).
func TenantAddedPayload(agent, tenant, concentrator string) []byte {
	return mustMarshal(payloads.EventTenantAdded{TenantAdded: tenantEvent(agent, tenant, concentrator)})
}

// TenantRemovedPayload says agent closed its tunnel for tenant.
func TenantRemovedPayload(agent, tenant, concentrator string) []byte {
	return mustMarshal(payloads.EventTenantRemoved{TenantRemoved: tenantEvent(agent, tenant, concentrator)})
}

// CNCIAddedPayload announces the CNCI cnci (its SSNTP UUID) serving
// tenant, at CNCIIP / CNCIMAC.
func CNCIAddedPayload(cnci, tenant string) []byte {
	return mustMarshal(payloads.EventConcentratorInstanceAdded{CNCIAdded: payloads.ConcentratorInstanceAddedEvent{
		InstanceUUID:    cnci,
		TenantUUID:      tenant,
		ConcentratorIP:  CNCIIP,
		ConcentratorMAC: CNCIMAC,
	}})
}

// InstanceDeletedPayload says instance is gone.
func InstanceDeletedPayload(instance string) []byte {
	return mustMarshal(payloads.EventInstanceDeleted{InstanceDeleted: payloads.InstanceDeletedEvent{InstanceUUID: instance}})
}

// NodeConnectedPayload is the scheduler's news of an agent; nodeType is
// payloads.ComputeNode or payloads.NetworkNode.
func NodeConnectedPayload(node string, nodeType payloads.Resource) []byte {
	return mustMarshal(payloads.NodeConnected{Connected: payloads.NodeConnectedEvent{NodeUUID: node, NodeType: nodeType}})
}

// NodeDisconnectedPayload is the scheduler's news of an agent leaving.
func NodeDisconnectedPayload(node string, nodeType payloads.Resource) []byte {
	return mustMarshal(payloads.NodeDisconnected{Disconnected: payloads.NodeConnectedEvent{NodeUUID: node, NodeType: nodeType}})
}

// StartFailurePayload reports a failed START.
func StartFailurePayload(instance string, r payloads.StartFailureReason) []byte {
	return mustMarshal(payloads.ErrorStartFailure{InstanceUUID: instance, Reason: r})
}

// StopFailurePayload reports a failed STOP.
func StopFailurePayload(instance string, r payloads.StopFailureReason) []byte {
	return mustMarshal(payloads.ErrorStopFailure{InstanceUUID: instance, Reason: r})
}

// RestartFailurePayload reports a failed RESTART.
func RestartFailurePayload(instance string, r payloads.RestartFailureReason) []byte {
	return mustMarshal(payloads.ErrorRestartFailure{InstanceUUID: instance, Reason: r})
}

// DeleteFailurePayload reports a failed DELETE.
func DeleteFailurePayload(instance string, r payloads.DeleteFailureReason) []byte {
	return mustMarshal(payloads.ErrorDeleteFailure{InstanceUUID: instance, Reason: r})
}

// FrameTrace turns a received traced frame into its TraceReport entry, as
// ciao-launcher reports the START frames it traced.
func FrameTrace(f *ssntp.Frame) payloads.FrameTrace {
	ft := payloads.FrameTrace{Type: f.Type.String(), Operand: f.OperandString()}
	if f.Trace == nil {
		return ft
	}
	ft.Label = string(f.Trace.Label)
	ft.StartTimestamp = f.Trace.StartTimestamp.Format(payloads.TimestampLayout)
	ft.EndTimestamp = f.Trace.EndTimestamp.Format(payloads.TimestampLayout)
	for _, n := range f.Trace.Path {
		ft.Nodes = append(ft.Nodes, payloads.SSNTPNode{
			SSNTPUUID:   uuidString(n.UUID),
			SSNTPRole:   ssntp.Role(n.Role).String(),
			TxTimestamp: stamp(n.TxTimestamp),
			RxTimestamp: stamp(n.RxTimestamp),
		})
	}
	return ft
}

// TraceReportPayload is the TraceReport of the given traced frames.
func TraceReportPayload(frames ...*ssntp.Frame) []byte {
	tr := payloads.Trace{Frames: []payloads.FrameTrace{}}
	for _, f := range frames {
		tr.Frames = append(tr.Frames, FrameTrace(f))
	}
	return mustMarshal(tr)
}

// stamp formats a hop timestamp; an absent one is "", as in 2016.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(payloads.TimestampLayout)
}

// uuidString prints a hop UUID; the library refuses hops that are not 16
// bytes, so the hex fallback is for hand-built frames only.
func uuidString(b []byte) string {
	if id, err := uuid.FromBytes(b); err == nil {
		return id.String()
	}
	return fmt.Sprintf("%x", b)
}
