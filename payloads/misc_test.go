package payloads

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	yaml "gopkg.in/yaml.v2"
)

func deepEqual(a, b interface{}) bool { return reflect.DeepEqual(a, b) }

func TestPartialWithDefaults(t *testing.T) {
	const partial = "node_uuid: " + agentUUID + "\nload: 1\n"
	t.Run("ready", func(t *testing.T) {
		var r Ready
		r.Init()
		if err := yaml.Unmarshal([]byte(partial), &r); err != nil {
			t.Fatal(err)
		}
		want := Ready{NodeUUID: agentUUID, MemTotalMB: -1, MemAvailableMB: -1, DiskTotalMB: -1, DiskAvailableMB: -1, Load: 1, CpusOnline: -1}
		if r != want {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("ready default", func(t *testing.T) {
		var r Ready
		r.Init()
		out, err := yaml.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		want := "node_uuid: \"\"\nmem_total_mb: -1\nmem_available_mb: -1\ndisk_total_mb: -1\ndisk_available_mb: -1\nload: -1\ncpus_online: -1\n"
		if string(out) != want {
			t.Fatalf("got\n%s", out)
		}
	})
	t.Run("stats", func(t *testing.T) {
		var s Stat
		s.Init()
		if err := yaml.Unmarshal([]byte(partial), &s); err != nil {
			t.Fatal(err)
		}
		want := Stat{NodeUUID: agentUUID, MemTotalMB: -1, MemAvailableMB: -1, DiskTotalMB: -1, DiskAvailableMB: -1, Load: 1, CpusOnline: -1}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("got %+v", s)
		}
	})
	t.Run("stats default", func(t *testing.T) {
		var s Stat
		s.Init()
		out, err := yaml.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if want := string(readGolden(t, "stats_default.yaml")); string(out) != want {
			t.Fatalf("got\n%s", out)
		}
	})
	t.Run("node-only stats", func(t *testing.T) {
		const nodeOnly = "node_uuid: " + agentUUID + "\nmem_total_mb: 3896\nmem_available_mb: 3896\n" +
			"disk_total_mb: 500000\ndisk_available_mb: 256000\nload: 0\ncpus_online: 4\n"
		var s Stat
		s.Init()
		if err := yaml.Unmarshal([]byte(nodeOnly), &s); err != nil {
			t.Fatal(err)
		}
		if s.Instances != nil || s.Status != "" || s.Load != 0 || s.CpusOnline != 4 {
			t.Fatalf("got %+v", s)
		}
	})
	t.Run("configure defaults", func(t *testing.T) {
		const file = "configure:\n  scheduler:\n    storage_uri: /etc/ciao/configuration.yaml\n" +
			"  controller:\n    compute_ca: /etc/pki/ciao/controller_cert.pem\n" +
			"    compute_cert: /etc/pki/ciao/controller_key.pem\n    identity_user: csr\n    identity_password: hello\n" +
			"  identity_service:\n    url: http://keystone.example.com\n"
		var c Configure
		c.InitDefaults()
		if err := yaml.Unmarshal([]byte(file), &c); err != nil {
			t.Fatal(err)
		}
		if err := c.Configure.Validate(); err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if want := string(readGolden(t, "configure_connected.yaml")); string(out) != want {
			t.Fatalf("got\n%s\nwant\n%s", out, want)
		}
		c.Configure.Controller.IdentityPassword = ""
		if err := c.Configure.Validate(); !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), "identity_password") {
			t.Fatalf("Validate = %v", err)
		}
	})
}

func TestDecodeRules(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		v       interface{}
		want    interface{}
		wantErr bool
	}{
		{"subnet_key int into START string", "start:\n  networking:\n    subnet_key: 8\n", &Start{},
			&Start{Start: StartCmd{Networking: NetworkResources{SubnetKey: "8"}}}, false},
		{"subnet_key quoted into START string", "start:\n  networking:\n    subnet_key: \"8\"\n", &Start{},
			&Start{Start: StartCmd{Networking: NetworkResources{SubnetKey: "8"}}}, false},
		{"subnet_key int into TenantAdded int", "tenant_added:\n  subnet_key: 8\n", &EventTenantAdded{},
			&EventTenantAdded{TenantAdded: TenantAddedEvent{SubnetKey: 8}}, false},
		{"subnet_key quoted into TenantAdded int", "tenant_added:\n  subnet_key: \"8\"\n", &EventTenantAdded{}, nil, true},
		{"quoted value into int", "mem_total_mb: \"4096\"\n", &Ready{}, nil, true},
		{"null into string", "node_uuid: ~\n", &Ready{}, &Ready{}, false},
		{"plain bool into string", "node_uuid: true\n", &Ready{}, &Ready{NodeUUID: "true"}, false},
		{"YAML 1.1 booleans", "start:\n  requested_resources:\n  - mandatory: yes\n  - mandatory: on\n  - mandatory: off\n  networking:\n    public_ip: Yes\n", &Start{},
			&Start{Start: StartCmd{
				RequestedResources: []RequestedResource{{Mandatory: true}, {Mandatory: true}, {Mandatory: false}},
				Networking:         NetworkResources{PublicIP: true},
			}}, false},
		{"keys are case-sensitive", "Networks:\n- ip: 1.2.3.4\nnode_uuid: x\n", &Stat{}, &Stat{NodeUUID: "x"}, false},
		{"unknown keys ignored", "stop:\n  instance_uuid: a\n  future: 1\n", &Stop{}, &Stop{Stop: StopCmd{InstanceUUID: "a"}}, false},
		{"trace timestamp plain into string", "frames:\n- start_timestamp: 2016-10-18T17:00:00Z\n", &Trace{},
			&Trace{Frames: []FrameTrace{{StartTimestamp: "2016-10-18T17:00:00Z"}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := yaml.Unmarshal([]byte(tc.in), tc.v)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", tc.v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.v, tc.want) {
				t.Fatalf("got %#v\nwant %#v", tc.v, tc.want)
			}
		})
	}
}

func TestEncodeQuoting(t *testing.T) {
	tests := []struct {
		mac, want string
	}{
		{"02:00:ac:10:00:02", "02:00:ac:10:00:02"},
		{"02:00:15:03:16:49", `"02:00:15:03:16:49"`}, // base 60
		{"1:20", `"1:20"`},
		{"", `""`},
		{"8", `"8"`},
		{"yes", `"yes"`},
		{"~", `"~"`},
		{"null", `"null"`},
		{"10.1.2.3", "10.1.2.3"},
		{"10.2.0.0/16", "10.2.0.0/16"},
	}
	for _, tc := range tests {
		t.Run(tc.mac, func(t *testing.T) {
			out, err := yaml.Marshal(&NetworkStat{NodeMAC: tc.mac})
			if err != nil {
				t.Fatal(err)
			}
			if want := "ip: \"\"\nmac: " + tc.want + "\n"; string(out) != want {
				t.Fatalf("got %q, want %q", out, want)
			}
		})
	}
}

func TestTraceTimestamps(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	ts := func(tm time.Time) string { return tm.Format(TimestampLayout) }
	tr := Trace{Frames: []FrameTrace{{
		Label:          "l",
		Type:           "ERROR",
		Operand:        "1",
		StartTimestamp: ts(time.Time{}),
		EndTimestamp:   ts(time.Date(2016, 10, 18, 18, 0, 0, 120000000, cet)),
		Nodes: []SSNTPNode{{
			SSNTPUUID:   agentUUID,
			SSNTPRole:   "CNAgent-NetworkingAgent-",
			TxTimestamp: "2016-10-18",          // timestamp-like but not the layout: quoted
			RxTimestamp: "2016-10-18T17:00:00", // not a YAML timestamp: plain
		}},
	}}}
	out, err := yaml.Marshal(&tr)
	if err != nil {
		t.Fatal(err)
	}
	const want = `frames:
- label: l
  type: ERROR
  operand: "1"
  start_timestamp: 0001-01-01T00:00:00Z
  end_timestamp: 2016-10-18T18:00:00.12+01:00
  nodes:
  - ssntp_node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
    ssntp_role: CNAgent-NetworkingAgent-
    tx_timestamp: "2016-10-18"
    rx_timestamp: 2016-10-18T17:00:00
`
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	var back Trace
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, tr) {
		t.Fatalf("round trip: %#v", back)
	}

	out, err = yaml.Marshal(&Trace{})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "frames: []\n" {
		t.Fatalf("empty trace: %q", out)
	}
}

func TestValidIDs(t *testing.T) {
	for _, id := range []string{instanceUUID, volumeUUID, "ab", " ab-01 \n", "ABCDEF"} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", " ", "xyz", "ab--cd", "-ab", "ab-", "ab cd", "g1"} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
	if err := (&VolumeCmd{VolumeUUID: volumeUUID}).Validate(); !errors.Is(err, ErrInvalidData) {
		t.Errorf("attach with only volume_uuid: %v", err)
	}
	if err := (&VolumeCmd{InstanceUUID: instanceUUID}).Validate(); !errors.Is(err, ErrInvalidData) {
		t.Errorf("detach with only instance_uuid: %v", err)
	}
	if err := stdVolume.Validate(); err != nil {
		t.Errorf("valid volume command: %v", err)
	}
	if err := (&StopCmd{}).Validate(); !errors.Is(err, ErrInvalidData) {
		t.Errorf("stop without instance: %v", err)
	}
	if err := (&RestartCmd{InstanceUUID: instanceUUID}).Validate(); err != nil {
		t.Errorf("restart: %v", err)
	}
	if !errors.Is(ErrNoStart, ErrInvalidPayload) {
		t.Error("ErrNoStart does not wrap ErrInvalidPayload")
	}
}
