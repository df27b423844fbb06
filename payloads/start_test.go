package payloads

import (
	"errors"
	"strings"
	"testing"
)

// wireStart is the Start of the spec's three-document example.
func wireStart() *Start {
	return &Start{Start: StartCmd{
		TenantUUID:          tenantUUID,
		InstanceUUID:        instanceUUID,
		ImageUUID:           "fa7d86d8-fa46-11e5-8493-38607786d9ec",
		DockerImage:         "ubuntu:latest",
		InstancePersistence: PersistenceHost,
		VMType:              HypervisorDocker,
		RequestedResources: []RequestedResource{
			{Type: VCPUs, Value: 2, Mandatory: true},
			{Type: MemMB, Value: 128, Mandatory: true},
		},
		EstimatedResources: []EstimatedResource{},
		Networking: NetworkResources{
			VnicMAC:          "02:00:ac:10:00:02",
			VnicUUID:         vnicUUID,
			ConcentratorUUID: cnciUUID,
			ConcentratorIP:   "10.1.2.3",
			Subnet:           "172.16.0.0/24",
			PrivateIP:        "172.16.0.2",
		},
	}}
}

const wireUserData = "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n...\n"

func TestComposeStart(t *testing.T) {
	want := string(readGolden(t, "start_wire.txt"))
	got, err := ComposeStart(wireStart(), wireUserData, StartMetadata{UUID: instanceUUID, Hostname: instanceUUID})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	t.Run("user-data without final newline", func(t *testing.T) {
		got, err := ComposeStart(wireStart(), strings.TrimSuffix(wireUserData, "\n"), StartMetadata{UUID: instanceUUID, Hostname: instanceUUID})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got\n%s", got)
		}
	})
}

func TestDecodeStart(t *testing.T) {
	t.Run("wire form decodes the first document only", func(t *testing.T) {
		s, err := DecodeStart(readGolden(t, "start_wire.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if !equalNormalized(s, wireStart()) {
			t.Fatalf("got %#v", s)
		}
	})
	t.Run("later documents are not parsed", func(t *testing.T) {
		in := "---\nstart:\n  instance_uuid: abc\n...\n---\n: : [ {\n...\n"
		s, err := DecodeStart([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if s.Start.InstanceUUID != "abc" {
			t.Fatalf("instance_uuid %q", s.Start.InstanceUUID)
		}
	})
	t.Run("start in a later document is not seen", func(t *testing.T) {
		in := "---\n#cloud-config\n...\n---\nstart:\n  instance_uuid: abc\n...\n"
		s, err := DecodeStart([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if s.Start.InstanceUUID != "" {
			t.Fatalf("instance_uuid %q", s.Start.InstanceUUID)
		}
	})
	t.Run("quoted integer", func(t *testing.T) {
		in := "start:\n  requested_resources:\n  - type: mem_mb\n    value: \"4096\"\n"
		_, err := DecodeStart([]byte(in))
		if !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("err = %v, want ErrInvalidPayload", err)
		}
	})
	t.Run("not yaml", func(t *testing.T) {
		_, err := DecodeStart([]byte("start: [\n"))
		if !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("err = %v, want ErrInvalidPayload", err)
		}
	})
}

func TestSplitStart(t *testing.T) {
	startDoc := "---\nstart:\n  instance_uuid: abc\n...\n"
	metaDoc := "---\n{\n\t\"uuid\": \"abc\"\n}\n...\n"
	tests := []struct {
		name              string
		in                string
		start, user, meta string
		wantErr           error
	}{
		{
			name:  "spec wire example",
			in:    string(readGolden(t, "start_wire.txt")),
			start: "---\n" + startOfWire(t),
			user:  wireUserData,
			meta:  "---\n{\n\t\"uuid\": \"3390740c-dce9-48d6-b83a-a717417072ce\",\n\t\"hostname\": \"3390740c-dce9-48d6-b83a-a717417072ce\"\n}\n...\n",
		},
		{
			name:  "3 documents, start second",
			in:    wireUserData + startDoc + metaDoc,
			start: startDoc, user: wireUserData, meta: metaDoc,
		},
		{
			name:  "3 documents, start last",
			in:    wireUserData + metaDoc + startDoc,
			start: startDoc, user: wireUserData, meta: metaDoc,
		},
		{
			name:  "4 documents, only the first three count",
			in:    startDoc + wireUserData + metaDoc + "---\nextra: 1\n...\n",
			start: startDoc, user: wireUserData, meta: metaDoc,
		},
		{
			name:    "4 documents, start in the fourth",
			in:      wireUserData + metaDoc + "---\nx: 1\n...\n" + startDoc,
			wantErr: ErrNoStart,
		},
		{
			name:    "3 documents, no start line",
			in:      wireUserData + metaDoc + "---\nx: 1\n...\n",
			wantErr: ErrNoStart,
		},
		{
			name:  "directive lines belong to the next document",
			in:    "%YAML 1.1\n%TAG ! tag:x,2016:\n" + startDoc + "%YAML 1.1\n" + wireUserData + metaDoc,
			start: "%YAML 1.1\n%TAG ! tag:x,2016:\n" + startDoc, user: "%YAML 1.1\n" + wireUserData, meta: metaDoc,
		},
		{
			name:  "lines between documents are ignored",
			in:    "junk\n" + startDoc + "# between\n" + wireUserData + metaDoc + "trailer\n",
			start: startDoc, user: wireUserData, meta: metaDoc,
		},
		{
			name:  "document without terminator runs on over ---",
			in:    "---\nstart:\n  a: 1\n---\nuser: 1\n...\n" + metaDoc,
			start: "start:\n  a: 1\n", user: "---\n---\nuser: 1\n", meta: metaDoc,
		},
		{
			name:  "2 documents, start first, with user-data after the indented run",
			in:    "---\nstart:\n  instance_uuid: abc\n\n  image_uuid: def\n#cloud-config\nruncmd:\n- ls\n...\n" + metaDoc,
			start: "start:\n  instance_uuid: abc\n\n  image_uuid: def\n",
			user:  "---\n#cloud-config\nruncmd:\n- ls\n",
			meta:  metaDoc,
		},
		{
			name:  "2 documents, start second",
			in:    metaDoc + startDoc,
			start: "start:\n  instance_uuid: abc\n", user: "---\n", meta: metaDoc,
		},
		{
			name:  "2 documents, quirky indented rule swallows lines with inner spaces",
			in:    "---\nstart:\n  a: 1\nruncmd: [ls]\n#cloud-config\nb: 2\n...\n" + metaDoc,
			start: "start:\n  a: 1\nruncmd: [ls]\n", user: "---\n#cloud-config\nb: 2\n", meta: metaDoc,
		},
		{
			name:    "2 documents, no start line",
			in:      wireUserData + metaDoc,
			user:    "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n",
			meta:    metaDoc,
			wantErr: ErrNoStart,
		},
		{
			name:  "1 bare document",
			in:    string(readGolden(t, "start.yaml")),
			start: string(readGolden(t, "start.yaml")),
		},
		{
			name:  "1 document with user-data before and after",
			in:    "---\n#cloud-config\nstart :  \n  a: 1\nruncmd:\n- ls\n...\n",
			start: "start :  \n  a: 1\n", user: "---\n#cloud-config\nruncmd:\n- ls\n",
		},
		{
			name:  "1 implicit document ends at ...",
			in:    "start:\n  a: 1\n...\nignored: 1\n",
			start: "start:\n  a: 1\n",
		},
		{
			name:  "no final newline",
			in:    "start:\n  a: 1",
			start: "start:\n  a: 1",
		},
		{
			name:  "CRLF lines all count as indented",
			in:    "start:\r\n  a: 1\r\nb:\r\n",
			start: "start:\r\n  a: 1\r\nb:\r\n",
		},
		{
			name:    "1 document, no start line",
			in:      "#cloud-config\nstarts:\n  a: 1\n",
			user:    "#cloud-config\nstarts:\n  a: 1\n",
			wantErr: ErrNoStart,
		},
		{
			name:    "start line with a value is not a start line",
			in:      "start: {}\n",
			user:    "start: {}\n",
			wantErr: ErrNoStart,
		},
		{
			name:    "indented start line is not a start line",
			in:      " start:\n",
			user:    " start:\n",
			wantErr: ErrNoStart,
		},
		{
			name:    "empty",
			in:      "",
			wantErr: ErrNoStart,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, user, meta, err := SplitStart([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if string(start) != tc.start {
				t.Errorf("start = %q, want %q", start, tc.start)
			}
			if string(user) != tc.user {
				t.Errorf("user-data = %q, want %q", user, tc.user)
			}
			if string(meta) != tc.meta {
				t.Errorf("metadata = %q, want %q", meta, tc.meta)
			}
		})
	}
}

// startOfWire returns the first document of the wire example after its
// "---" line.
func startOfWire(t *testing.T) string {
	w := string(readGolden(t, "start_wire.txt"))
	w = strings.TrimPrefix(w, "---\n")
	return w[:strings.Index(w, "...\n")+len("...\n")]
}

func TestSplitStartNoAliasing(t *testing.T) {
	in := readGolden(t, "start_wire.txt")
	start, _, _, err := SplitStart(in)
	if err != nil {
		t.Fatal(err)
	}
	start[0] = 'X'
	if in[0] != '-' {
		t.Fatal("SplitStart result aliases its input")
	}
}

func TestSplitComposeRoundTrip(t *testing.T) {
	meta := StartMetadata{UUID: instanceUUID, Hostname: "cnci-" + tenantUUID}
	wire, err := ComposeStart(wireStart(), wireUserData, meta)
	if err != nil {
		t.Fatal(err)
	}
	start, user, metaDoc, err := SplitStart(wire)
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeStart(start)
	if err != nil {
		t.Fatal(err)
	}
	if !equalNormalized(s, wireStart()) {
		t.Errorf("start = %#v", s)
	}
	if string(user) != wireUserData {
		t.Errorf("user-data = %q", user)
	}
	if !strings.Contains(string(metaDoc), `"hostname": "cnci-`+tenantUUID+`"`) {
		t.Errorf("metadata = %q", metaDoc)
	}
}

func TestStartCmdHelpers(t *testing.T) {
	s, err := DecodeStart(readGolden(t, "cnci_start.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := &s.Start
	if v, ok := c.VCPUs(); v != 4 || !ok {
		t.Errorf("VCPUs = %d, %v", v, ok)
	}
	if v, ok := c.MemMB(); v != 4096 || !ok {
		t.Errorf("MemMB = %d, %v", v, ok)
	}
	if v, ok := c.DiskMB(); v != 0 || ok {
		t.Errorf("DiskMB = %d, %v", v, ok)
	}
	if nn, err := c.NetworkNode(); !nn || err != nil {
		t.Errorf("NetworkNode = %v, %v", nn, err)
	}
	if err := c.ValidateForScheduler(); err != nil {
		t.Errorf("ValidateForScheduler: %v", err)
	}
	if err := c.ValidateForLauncher(); err != nil {
		t.Errorf("ValidateForLauncher: %v", err)
	}

	t.Run("last entry wins", func(t *testing.T) {
		c := StartCmd{RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}, {Type: MemMB, Value: 2}}}
		if v, _ := c.MemMB(); v != 2 {
			t.Errorf("MemMB = %d", v)
		}
	})

	partial, err := DecodeStart(readGolden(t, "partial_start.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	invalid := []struct {
		name          string
		cmd           StartCmd
		sched, launch bool // whether the check must fail
	}{
		{"partial start has no mem_mb", partial.Start, true, false},
		{"mem_mb zero", StartCmd{InstanceUUID: "ab", RequestedResources: []RequestedResource{{Type: MemMB}}}, true, false},
		{"network_node 2", StartCmd{InstanceUUID: "ab", RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}, {Type: NetworkNode, Value: 2}}}, true, false},
		{"bad instance uuid", StartCmd{InstanceUUID: "xyz", RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, true},
		{"empty instance uuid", StartCmd{RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, true},
		{"bad fw_type", StartCmd{InstanceUUID: "ab", FWType: "bios", RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, true},
		{"bad vm_type", StartCmd{InstanceUUID: "ab", VMType: "lxc", RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, true},
		{"docker without image", StartCmd{InstanceUUID: "ab", VMType: HypervisorDocker, RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, true},
		{"valid docker", StartCmd{InstanceUUID: " ab-01 ", VMType: HypervisorDocker, DockerImage: "ubuntu:latest", RequestedResources: []RequestedResource{{Type: MemMB, Value: 1}}}, false, false},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.ValidateForScheduler()
			if (err != nil) != tc.sched || (err != nil && !errors.Is(err, ErrInvalidData)) {
				t.Errorf("ValidateForScheduler = %v", err)
			}
			err = tc.cmd.ValidateForLauncher()
			if (err != nil) != tc.launch || (err != nil && !errors.Is(err, ErrInvalidData)) {
				t.Errorf("ValidateForLauncher = %v", err)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		var c StartCmd
		if fw, err := c.Firmware(); fw != FirmwareEFI || err != nil {
			t.Errorf("Firmware = %q, %v", fw, err)
		}
		if vm, err := c.Hypervisor(); vm != HypervisorQEMU || err != nil {
			t.Errorf("Hypervisor = %q, %v", vm, err)
		}
		if nn, err := c.NetworkNode(); nn || err != nil {
			t.Errorf("NetworkNode = %v, %v", nn, err)
		}
	})
}

func TestStorageOmitted(t *testing.T) {
	in := readGolden(t, "start.yaml")
	if strings.Contains(string(in), "storage") {
		t.Fatal("start.yaml unexpectedly has storage")
	}
	for _, st := range []StorageResources{{ID: "x"}, {Bootable: true}} {
		out, err := ComposeStart(&Start{Start: StartCmd{Storage: st}}, "", StartMetadata{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "\n  storage:\n") {
			t.Errorf("storage %+v omitted:\n%s", st, out)
		}
	}
}

func equalNormalized(a, b *Start) bool {
	return deepEqual(normalized(a), normalized(b))
}
