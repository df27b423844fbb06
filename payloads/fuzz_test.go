package payloads

import (
	"bytes"
	"reflect"
	"testing"

	yaml "gopkg.in/yaml.v2"
)

// checkRoundTrip decodes data into a new value of v's type and, if that
// works, checks that the value re-encodes, re-decodes to an equal value
// (nil and empty slices being the same on the wire) and re-encodes to the
// same bytes.
func checkRoundTrip(t *testing.T, data []byte, v interface{}) {
	t.Helper()
	first := newLike(v)
	if yaml.Unmarshal(data, first) != nil {
		return
	}
	out, err := yaml.Marshal(first)
	if err != nil {
		t.Fatalf("re-encoding %#v: %v", first, err)
	}
	second := newLike(v)
	if err := yaml.Unmarshal(out, second); err != nil {
		t.Fatalf("re-decoding %q: %v", out, err)
	}
	if !reflect.DeepEqual(normalized(first), normalized(second)) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v\nvia %q", first, second, out)
	}
	again, err := yaml.Marshal(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Fatalf("encoding not stable:\n%q\n%q", out, again)
	}
}

// addSeeds adds the golden files to f's corpus, each prefixed by the
// selector byte sel when sel >= 0.
func addSeeds(f *testing.F, sel int, files ...string) {
	for _, name := range files {
		b := readGolden(f, name)
		if sel >= 0 {
			b = append([]byte{byte(sel)}, b...)
		}
		f.Add(b)
	}
}

func FuzzStart(f *testing.F) {
	addSeeds(f, -1, "start.yaml", "start_storage.yaml", "cnci_start.yaml", "partial_start.yaml", "start_wire.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeStart(data)
		if err != nil {
			return
		}
		c := &s.Start
		c.VCPUs()
		c.DiskMB()
		_ = c.ValidateForScheduler()
		_ = c.ValidateForLauncher()
		checkRoundTrip(t, data, &Start{})
	})
}

func FuzzSplitStart(f *testing.F) {
	addSeeds(f, -1, "start.yaml", "cnci_start.yaml", "partial_start.yaml", "start_wire.txt", "stop.yaml")
	f.Add([]byte("%YAML 1.1\n---\nstart:\n  a: 1\n...\n---\nb\n...\n"))
	f.Add([]byte("---\nstart:\r\n  a\n#x\n...\n---\n{}\n...\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		start, user, meta, err := SplitStart(data)
		if !bytes.Equal(orig, data) {
			t.Fatal("SplitStart modified its input")
		}
		if len(start)+len(user)+len(meta) > len(data) {
			t.Fatalf("pieces longer than the payload: %d+%d+%d > %d", len(start), len(user), len(meta), len(data))
		}
		if err != nil {
			if start != nil {
				t.Fatalf("error %v with a start section %q", err, start)
			}
			return
		}
		found := false
		for _, l := range splitLines(start) {
			if startLine.Match(trimNewline(l)) {
				found = true
			}
		}
		if !found {
			t.Fatalf("start section %q has no start line", start)
		}
		if len(start) > 0 && &start[0] == &data[0] {
			t.Fatal("start section aliases the input")
		}
		if s, err := DecodeStart(start); err == nil {
			_ = s.Start.ValidateForLauncher()
		}
	})
}

func FuzzStat(f *testing.F) {
	addSeeds(f, -1, "stats.yaml", "stats_default.yaml", "ready.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, &Stat{})
	})
}

func FuzzReady(f *testing.F) {
	addSeeds(f, -1, "ready.yaml", "stats.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, &Ready{})
	})
}

func FuzzConfigure(f *testing.F) {
	addSeeds(f, -1, "configure.yaml", "configure_connected.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Configure
		c.InitDefaults()
		if yaml.Unmarshal(data, &c) == nil {
			_ = c.Configure.Validate()
		}
		checkRoundTrip(t, data, &Configure{})
	})
}

func FuzzTrace(f *testing.F) {
	addSeeds(f, -1, "trace.yaml")
	f.Add([]byte("frames:\n- start_timestamp: 2016-10-18T18:00:00.12+01:00\n  end_timestamp: 2016-10-18\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, &Trace{})
	})
}

// selected returns a new value of the type chosen by data[0] among types,
// and the rest of data.
func selected(data []byte, types []interface{}) (interface{}, []byte) {
	if len(data) == 0 {
		return nil, nil
	}
	return types[int(data[0])%len(types)], data[1:]
}

var eventTypes = []interface{}{
	&EventTenantAdded{}, &EventTenantRemoved{}, &EventInstanceDeleted{},
	&EventConcentratorInstanceAdded{}, &EventPublicIPAssigned{}, &Trace{},
	&NodeConnected{}, &NodeDisconnected{},
}

func FuzzEvents(f *testing.F) {
	for i, name := range []string{
		"tenant_added.yaml", "tenant_removed.yaml", "instance_deleted.yaml",
		"concentrator_added.yaml", "public_ip_assigned.yaml", "trace.yaml",
		"node_connected.yaml", "node_disconnected.yaml",
	} {
		addSeeds(f, i, name)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, rest := selected(data, eventTypes); v != nil {
			checkRoundTrip(t, rest, v)
		}
	})
}

var errorTypes = []interface{}{
	&ErrorStartFailure{}, &ErrorStopFailure{}, &ErrorRestartFailure{},
	&ErrorDeleteFailure{}, &ErrorAttachVolumeFailure{}, &ErrorDetachVolumeFailure{},
	&ErrorPublicIPFailure{},
}

func FuzzErrors(f *testing.F) {
	for i, name := range []string{
		"start_failure.yaml", "stop_failure.yaml", "restart_failure.yaml",
		"delete_failure.yaml", "attach_volume_failure.yaml", "detach_volume_failure.yaml",
		"public_ip_failure.yaml",
	} {
		addSeeds(f, i, name)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, rest := selected(data, errorTypes); v != nil {
			checkRoundTrip(t, rest, v)
		}
	})
}

var commandTypes = []interface{}{
	&Stop{}, &Delete{}, &Restart{}, &Evacuate{},
	&CommandAssignPublicIP{}, &CommandReleasePublicIP{},
	&AttachVolume{}, &DetachVolume{},
}

func FuzzCommands(f *testing.F) {
	for i, name := range []string{
		"stop.yaml", "delete.yaml", "restart.yaml", "evacuate.yaml",
		"assign_public_ip.yaml", "release_public_ip.yaml",
		"attach_volume.yaml", "detach_volume.yaml",
	} {
		addSeeds(f, i, name)
	}
	addSeeds(f, 2, "partial_restart.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, rest := selected(data, commandTypes)
		if v == nil {
			return
		}
		checkRoundTrip(t, rest, v)
		switch c := newLike(v).(type) {
		case *AttachVolume:
			if yaml.Unmarshal(rest, c) == nil {
				_ = c.Attach.Validate()
			}
		case *Stop:
			if yaml.Unmarshal(rest, c) == nil {
				_ = c.Stop.Validate()
			}
		}
	})
}
