package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/payloads"
)

// composedStart is a START as the controller builds it: three documents,
// the first marshalled by yaml.v2.
func composedStart(tb testing.TB, instance string, mem int, netNode bool) []byte {
	tb.Helper()
	s := payloads.Start{Start: payloads.StartCmd{
		TenantUUID:          "2491851d-dce9-48d6-b83a-a717417072ce",
		InstanceUUID:        instance,
		ImageUUID:           "59460b8a-5f53-4e3e-b5ce-b71fed8c7e64",
		DockerImage:         "docker/latest",
		FWType:              payloads.FirmwareEFI,
		InstancePersistence: payloads.PersistenceHost,
		VMType:              payloads.HypervisorQEMU,
		RequestedResources: []payloads.RequestedResource{
			{Type: payloads.VCPUs, Value: 2, Mandatory: true},
			{Type: payloads.MemMB, Value: mem, Mandatory: true},
			{Type: payloads.DiskMB, Value: 10000, Mandatory: true},
		},
		EstimatedResources: []payloads.EstimatedResource{
			{Type: payloads.VCPUs, Value: 1}, {Type: payloads.MemMB, Value: 128},
		},
		Networking: payloads.NetworkResources{VnicMAC: "02:00:ac:10:00:02", Subnet: "172.16.0.0/24", PrivateIP: "172.16.0.2"},
	}}
	if netNode {
		s.Start.RequestedResources = append(s.Start.RequestedResources,
			payloads.RequestedResource{Type: payloads.NetworkNode, Value: 1, Mandatory: true})
	}
	b, err := payloads.ComposeStart(&s, "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n...\n",
		payloads.StartMetadata{UUID: instance, Hostname: instance})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// cnciStart is the 2016 fixture style: hand-written, lists indented.
const cnciStart = `start:
  instance_uuid: c6beb8b5-0bfc-43fd-9638-7dd788179fd8
  image_uuid: 59460b8a-5f53-4e3e-b5ce-b71fed8c7e64
  fw_type: efi
  persistence: host
  vm_type: qemu
  requested_resources:
    - type: vcpus
      value: 4
      mandatory: true
    - type: mem_mb
      value: 4096
      mandatory: true
    - type: network_node
      value: 1
      mandatory: true
  networking:
    vnic_mac: aa:bb:cc:01:02:03
    vnic_uuid: 7f49d00d-1995-4156-8c79-5f5ab24ce138
    concentrator_uuid: 7e84c2d6-5a84-4f9b-98e3-38980f722d1b
    concentrator_ip: 10.1.2.3
    subnet: 10.2.0.0/16
    subnet_key: 8
    subnet_uuid: ""
    private_ip: ""
    public_ip: false
`

func TestDecodeStart(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		fast     bool
		instance string
		req      placement.Request
		err      error
	}{
		{"composed", string(composedStart(t, "3390740c-dce9-48d6-b83a-a717417072ce", 256, false)), true,
			"3390740c-dce9-48d6-b83a-a717417072ce", placement.Request{MemMB: 256, VCPUs: 2, DiskMB: 10000}, nil},
		{"composed network node", string(composedStart(t, "c6beb8b5-0bfc-43fd-9638-7dd788179fd8", 4096, true)), true,
			"c6beb8b5-0bfc-43fd-9638-7dd788179fd8", placement.Request{MemMB: 4096, VCPUs: 2, DiskMB: 10000, NetworkNode: true}, nil},
		{"2016 fixture style", cnciStart, true,
			"c6beb8b5-0bfc-43fd-9638-7dd788179fd8", placement.Request{MemMB: 4096, VCPUs: 4, NetworkNode: true}, nil},
		{"last entry wins", "start:\n  instance_uuid: a\n  requested_resources:\n  - type: mem_mb\n    value: 1\n  - type: mem_mb\n    value: 2\n", true,
			"a", placement.Request{MemMB: 2}, nil},
		{"quoted values", "---\nstart:\n  instance_uuid: \"a-b\"\n  requested_resources:\n  - type: 'mem_mb'\n    value: 64\n...\n", true,
			"a-b", placement.Request{MemMB: 64}, nil},
		{"comment goes to yaml", "start:\n  instance_uuid: a # comment\n  requested_resources:\n  - type: mem_mb\n    value: 64\n", false,
			"a", placement.Request{MemMB: 64}, nil},
		{"hex goes to yaml", "start:\n  instance_uuid: a\n  requested_resources:\n  - type: mem_mb\n    value: 0x40\n", false,
			"a", placement.Request{MemMB: 64}, nil},
		{"flow list goes to yaml", "start:\n  instance_uuid: a\n  requested_resources: [{type: mem_mb, value: 64}]\n", false,
			"a", placement.Request{MemMB: 64}, nil},
		{"no mem_mb", "start:\n  instance_uuid: a\n  requested_resources:\n  - type: vcpus\n    value: 2\n", false,
			"a", placement.Request{}, payloads.ErrInvalidData},
		{"zero mem_mb", "start:\n  instance_uuid: a\n  requested_resources:\n  - type: mem_mb\n    value: 0\n", false,
			"a", placement.Request{}, payloads.ErrInvalidData},
		{"network_node 2", "start:\n  instance_uuid: a\n  requested_resources:\n  - type: mem_mb\n    value: 1\n  - type: network_node\n    value: 2\n", false,
			"a", placement.Request{}, payloads.ErrInvalidData},
		{"bad yaml", "start:\n  instance_uuid: [a\n", false, "", placement.Request{}, payloads.ErrInvalidPayload},
		{"wrong type", "start:\n  requested_resources:\n  - type: mem_mb\n    value: lots\n", false, "", placement.Request{}, payloads.ErrInvalidPayload},
		{"empty", "", false, "", placement.Request{}, payloads.ErrInvalidData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			si, fast, err := decodeStart([]byte(tc.payload))
			if fast != tc.fast {
				t.Errorf("fast path = %v, want %v", fast, tc.fast)
			}
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.instance != "" && string(si.instance) != tc.instance {
				t.Errorf("instance = %q, want %q", si.instance, tc.instance)
			}
			if err == nil && si.req != tc.req {
				t.Errorf("req = %+v, want %+v", si.req, tc.req)
			}
		})
	}
}

func TestDecodeReady(t *testing.T) {
	const full = "node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\nmem_total_mb: 3896\nmem_available_mb: 3800\ndisk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 4\n"
	tests := []struct {
		name    string
		payload string
		fast    bool
		want    readyInfo
		bad     bool
	}{
		{"full", full, true, readyInfo{3896, 3800, 500000, 256000, 0, 4}, false},
		{"partial", "mem_available_mb: 12\n", true, readyInfo{-1, 12, -1, -1, -1, -1}, false},
		{"negative load", "---\nload: -1\nmem_available_mb: 5\n...\n", true, readyInfo{-1, 5, -1, -1, -1, -1}, false},
		{"empty", "", false, readyInfo{-1, -1, -1, -1, -1, -1}, false},
		{"empty document", "---\n", false, readyInfo{0, 0, 0, 0, 0, 0}, false},
		{"unknown key to yaml", full + "hostname: x\n", false, readyInfo{3896, 3800, 500000, 256000, 0, 4}, false},
		{"bad yaml", "mem_available_mb: [\n", false, readyInfo{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ri, fast, err := decodeReady([]byte(tc.payload))
			if fast != tc.fast || (err != nil) != tc.bad {
				t.Fatalf("fast %v err %v", fast, err)
			}
			if !tc.bad && ri != tc.want {
				t.Fatalf("got %+v, want %+v", ri, tc.want)
			}
		})
	}
}

func startSeeds(f *testing.F) {
	f.Add(composedStart(f, "3390740c-dce9-48d6-b83a-a717417072ce", 256, false))
	f.Add(composedStart(f, "c6beb8b5-0bfc-43fd-9638-7dd788179fd8", 4096, true))
	f.Add([]byte(cnciStart))
	f.Add([]byte(strings.Replace(cnciStart, "    - type: vcpus", "  - type: vcpus", 1)))
	f.Add([]byte("start:\n  instance_uuid: a\n  requested_resources:\n  - type: mem_mb\n    value: 1\n...\n\xff"))
	f.Add([]byte("---\nstart:\n  instance_uuid: 'x'\n  requested_resources:\n    - type: mem_mb\n      value: 7\n  storage:\n    id: v\n    boot: true\n---\nfoo: [\n"))
}

// FuzzStartFastPath checks that whenever the fast path answers, yaml.v2
// decodes the payload without error to the same instance and request.
func FuzzStartFastPath(f *testing.F) {
	startSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) {
		fast, ok := fastStart(p)
		if !ok {
			return
		}
		slow, err := slowStart(p)
		if err != nil {
			t.Fatalf("fast path accepted what yaml.v2 rejects (%v):\n%q", err, p)
		}
		if string(fast.instance) != string(slow.instance) || fast.req != slow.req {
			t.Fatalf("fast %q %+v, yaml.v2 %q %+v:\n%q", fast.instance, fast.req, slow.instance, slow.req, p)
		}
	})
}

// FuzzReadyFastPath does the same for READY.
func FuzzReadyFastPath(f *testing.F) {
	f.Add([]byte("node_uuid: 4cb19522\nmem_total_mb: 3896\nmem_available_mb: 3896\ndisk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 4\n"))
	f.Add([]byte("---\nmem_available_mb: -1\n...\n"))
	f.Add([]byte("load: 1\n---\nx: [\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		fast, ok := fastReady(p)
		if !ok {
			return
		}
		slow, err := slowReady(p)
		if err != nil {
			t.Fatalf("fast path accepted what yaml.v2 rejects (%v):\n%q", err, p)
		}
		if fast != slow {
			t.Fatalf("fast %+v, yaml.v2 %+v:\n%q", fast, slow, p)
		}
	})
}

func BenchmarkDecodeStart(b *testing.B) {
	p := composedStart(b, "3390740c-dce9-48d6-b83a-a717417072ce", 256, false)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, ok := fastStart(p); !ok {
				b.Fatal("fast path refused")
			}
		}
	})
	b.Run("yaml.v2", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := slowStart(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeReady(b *testing.B) {
	p := []byte("node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\nmem_total_mb: 3896\nmem_available_mb: 3896\ndisk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 4\n")
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, ok := fastReady(p); !ok {
				b.Fatal("fast path refused")
			}
		}
	})
	b.Run("yaml.v2", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := slowReady(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
