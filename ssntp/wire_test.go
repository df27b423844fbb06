package ssntp_test

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
	"go.uber.org/goleak"
)

// The byte dumps of ../shared/spec/ssntp.md §5.5 and §5.7. Gob assigns
// type ids process-wide in order of first use, so whole-stream equality is
// checked in a fresh child process whose first gob use is SSNTP.

var (
	clientUUID = uuid.MustParse("4cb19522-1e18-439a-883a-f9b2a3a95f5e")
	serverUUID = uuid.MustParse("7e84c2d6-5a84-4f9b-98e3-38980f722d1b")
)

const dumpConnect = `
66 7f 03 01 01 0c 43 6f 6e 6e 65 63 74 46 72 61
6d 65 01 ff 80 00 01 07 01 05 4d 61 6a 6f 72 01
06 00 01 05 4d 69 6e 6f 72 01 06 00 01 04 54 79
70 65 01 06 00 01 07 4f 70 65 72 61 6e 64 01 06
00 01 04 52 6f 6c 65 01 06 00 01 06 53 6f 75 72
63 65 01 0a 00 01 0b 44 65 73 74 69 6e 61 74 69
6f 6e 01 0a 00 00 00 2b ff 80 02 01 03 04 01 10
4c b1 95 22 1e 18 43 9a 88 3a f9 b2 a3 a9 5f 5e
01 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00`

const dumpConnected = `
ff 86 7f 03 01 01 0e 43 6f 6e 6e 65 63 74 65 64
46 72 61 6d 65 01 ff 80 00 01 09 01 05 4d 61 6a
6f 72 01 06 00 01 05 4d 69 6e 6f 72 01 06 00 01
04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61 6e
64 01 06 00 01 04 52 6f 6c 65 01 06 00 01 06 53
6f 75 72 63 65 01 0a 00 01 0b 44 65 73 74 69 6e
61 74 69 6f 6e 01 0a 00 01 0d 50 61 79 6c 6f 61
64 4c 65 6e 67 74 68 01 06 00 01 07 50 61 79 6c
6f 61 64 01 0a 00 00 00 2d ff 80 02 01 01 01 02
08 01 10 7e 84 c2 d6 5a 84 4f 9b 98 e3 38 98 0f
72 2d 1b 01 10 4c b1 95 22 1e 18 43 9a 88 3a f9
b2 a3 a9 5f 5e 00`

const dumpConnectedPayloadValue = `3f ff 80 02 01 01 01 02 08 01 10
7e 84 c2 d6 5a 84 4f 9b 98 e3 38 98 0f 72 2d 1b
01 10 4c b1 95 22 1e 18 43 9a 88 3a f9 b2 a3 a9 5f 5e
01 0e 01 0e 63 6f 6e 66 69 67 75 72 65 3a 20 7b 7d 0a 00`

const dumpFirstFrame = `
71 ff 81 03 01 01 05 46 72 61 6d 65 01 ff 82 00
01 08 01 05 4d 61 6a 6f 72 01 06 00 01 05 4d 69
6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01
07 4f 70 65 72 61 6e 64 01 06 00 01 06 4f 72 69
67 69 6e 01 ff 84 00 01 0d 50 61 79 6c 6f 61 64
4c 65 6e 67 74 68 01 06 00 01 05 54 72 61 63 65
01 ff 86 00 01 07 50 61 79 6c 6f 61 64 01 0a 00
00 00 14 ff 83 01 01 01 04 55 55 49 44 01 ff 84
00 01 06 01 20 00 00 61 ff 85 03 01 01 0a 46 72
61 6d 65 54 72 61 63 65 01 ff 86 00 01 05 01 05
4c 61 62 65 6c 01 0a 00 01 0e 53 74 61 72 74 54
69 6d 65 73 74 61 6d 70 01 ff 88 00 01 0c 45 6e
64 54 69 6d 65 73 74 61 6d 70 01 ff 88 00 01 0a
50 61 74 68 4c 65 6e 67 74 68 01 06 00 01 04 50
61 74 68 01 ff 8c 00 00 00 10 ff 87 05 01 01 04
54 69 6d 65 01 ff 88 00 00 00 1b ff 8b 02 01 01
0c 5b 5d 73 73 6e 74 70 2e 4e 6f 64 65 01 ff 8c
00 01 ff 8a 00 00 46 ff 89 03 01 01 04 4e 6f 64
65 01 ff 8a 00 01 04 01 04 55 55 49 44 01 0a 00
01 04 52 6f 6c 65 01 06 00 01 0b 54 78 54 69 6d
65 73 74 61 6d 70 01 ff 88 00 01 0b 52 78 54 69
6d 65 73 74 61 6d 70 01 ff 88 00 00 00 23 ff 82
02 01 01 01 01 02 01 10 4c ff b1 ff 95 22 1e 18
43 ff 9a ff 88 3a ff f9 ff b2 ff a3 ff a9 5f 5e
00`

const originGob = `4c ff b1 ff 95 22 1e 18 43 ff 9a ff 88 3a ff f9 ff b2 ff a3 ff a9 5f 5e`

var (
	dumpStartYAML       = `29 ff 82 02 01 02 01 01 10 ` + originGob + ` 01 04 02 04 59 41 4d 4c 00`
	dumpInvalidFrameTyp = `21 ff 82 02 01 01 02 02 10 ` + originGob + ` 00`
	dumpReady           = `57 ff 82 02 01 01 01 01 01 01 10 ` + originGob + ` 01 30 02 30 ` +
		hex.EncodeToString([]byte("node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\n")) + ` 00`
)

const dumpTracedStats = `
69 ff 82 01 ff 80 01 01 02 03 01 10 4c ff b1 ff
95 22 1e 18 43 ff 9a ff 88 3a ff f9 ff b2 ff a3
ff a9 5f 5e 01 01 01 01 01 4c 01 0f 01 00 00 00
0e cf 98 05 c0 00 00 00 00 ff ff 02 01 01 01 01
10 4c b1 95 22 1e 18 43 9a 88 3a f9 b2 a3 a9 5f
5e 01 04 01 0f 01 00 00 00 0e cf 98 05 c1 00 00
01 f4 ff ff 00 00 01 01 59 00`

var dumpLabelOnly = `2b ff 82 02 01 02 03 01 10 ` + originGob + ` 01 01 01 01 01 4c 00 01 01 59 00`

const (
	dumpConnFailureValue = `1b ff 80 02 01 01 02 01 03 01 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`
)

func unhex(s string) []byte {
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var traceStart = time.Date(2016, 10, 18, 12, 0, 0, 0, time.UTC)

// childStreams writes, in a fresh process, the byte streams the tests
// compare: which one is chosen by SSNTP_WIRE_CHILD.
func childStreams(which string) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	frame := func(t ssntp.Type, op uint8, payload []byte) *ssntp.Frame {
		return &ssntp.Frame{Major: 0, Minor: 1, Type: t, Operand: op, Origin: clientUUID,
			PayloadLength: uint32(len(payload)), Payload: payload}
	}
	switch which {
	case "client":
		must(enc.Encode(&ssntp.ConnectFrame{Minor: 1, Role: ssntp.AGENT,
			Source: clientUUID[:], Destination: uuid.Nil[:]}))
		must(enc.Encode(frame(ssntp.STATUS, uint8(ssntp.FULL), nil)))
		must(enc.Encode(frame(ssntp.COMMAND, uint8(ssntp.START), []byte("YAML"))))
		must(enc.Encode(frame(ssntp.ERROR, uint8(ssntp.InvalidFrameType), nil)))
		must(enc.Encode(frame(ssntp.STATUS, uint8(ssntp.READY),
			[]byte("node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\n"))))
		traced := frame(ssntp.COMMAND, uint8(ssntp.STATS), []byte("Y"))
		traced.Major = 0x80
		traced.Trace = &ssntp.FrameTrace{Label: []byte("L"), StartTimestamp: traceStart, PathLength: 1,
			Path: []ssntp.Node{{UUID: clientUUID[:], Role: uint32(ssntp.AGENT),
				TxTimestamp: traceStart.Add(time.Second + 500)}}}
		must(enc.Encode(traced))
		label := frame(ssntp.COMMAND, uint8(ssntp.STATS), []byte("Y"))
		label.Trace = &ssntp.FrameTrace{Label: []byte("L")}
		must(enc.Encode(label))
	case "server":
		must(enc.Encode(&ssntp.ConnectedFrame{Minor: 1, Type: ssntp.STATUS, Role: ssntp.SCHEDULER,
			Source: serverUUID[:], Destination: clientUUID[:]}))
		p := []byte("configure: {}\n")
		must(enc.Encode(&ssntp.ConnectedFrame{Minor: 1, Type: ssntp.STATUS, Role: ssntp.SCHEDULER,
			Source: serverUUID[:], Destination: clientUUID[:], PayloadLength: uint32(len(p)), Payload: p}))
	case "serverfail":
		must(enc.Encode(&ssntp.Frame{Minor: 1, Type: ssntp.ERROR, Operand: uint8(ssntp.ConnectionFailure)}))
	}
	return buf.Bytes()
}

func TestMain(m *testing.M) {
	if which := os.Getenv("SSNTP_WIRE_CHILD"); which != "" {
		os.Stdout.WriteString(hex.EncodeToString(childStreams(which)))
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		// Every client and server the tests started must be gone.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func freshStream(t *testing.T, which string) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SSNTP_WIRE_CHILD="+which)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v", which, err)
	}
	return unhex(string(out))
}

// expectPrefix checks that got starts with want and returns the rest.
func expectPrefix(t *testing.T, name string, got, want []byte) []byte {
	t.Helper()
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		n := min(len(got), len(want))
		for i := 0; i < n; i++ {
			if got[i] != want[i] {
				t.Fatalf("%s: first difference at byte %d: got % x…, want % x…", name, i,
					got[i:min(i+16, n)], want[i:min(i+16, n)])
			}
		}
		t.Fatalf("%s: got %d bytes, want at least %d", name, len(got), len(want))
	}
	return got[len(want):]
}

func TestWireClientStream(t *testing.T) {
	// T4, T6, T7, T8: the client stream of a fresh process.
	s := freshStream(t, "client")
	if want := unhex(dumpConnect); len(want) != 147 {
		t.Fatalf("spec dump (a) is %d bytes", len(want))
	}
	s = expectPrefix(t, "CONNECT (§5.5a)", s, unhex(dumpConnect))
	if want := unhex(dumpFirstFrame); len(want) != 385 {
		t.Fatalf("spec dump (c) is %d bytes", len(want))
	}
	s = expectPrefix(t, "first Frame FULL (§5.5c)", s, unhex(dumpFirstFrame))
	s = expectPrefix(t, "START YAML (§5.5d)", s, unhex(dumpStartYAML))
	s = expectPrefix(t, "InvalidFrameType (§5.5d)", s, unhex(dumpInvalidFrameTyp))
	s = expectPrefix(t, "READY (§5.5d)", s, unhex(dumpReady))
	s = expectPrefix(t, "traced STATS (§5.7)", s, unhex(dumpTracedStats))
	s = expectPrefix(t, "label-only trace (§5.7)", s, unhex(dumpLabelOnly))
	if len(s) != 0 {
		t.Fatalf("%d unexpected trailing bytes", len(s))
	}
}

func TestWireServerStream(t *testing.T) {
	// T5: CONNECTED without and with a configuration payload.
	s := freshStream(t, "server")
	if want := unhex(dumpConnected); len(want) != 182 {
		t.Fatalf("spec dump (b) is %d bytes", len(want))
	}
	s = expectPrefix(t, "CONNECTED (§5.5b)", s, unhex(dumpConnected))
	s = expectPrefix(t, "CONNECTED with payload (§5.5b)", s, unhex(dumpConnectedPayloadValue))
	if len(s) != 0 {
		t.Fatalf("%d unexpected trailing bytes", len(s))
	}
}

func TestWireServerFailure(t *testing.T) {
	// §5.5e: a fresh server's handshake failure is 376 bytes, ending in the
	// ConnectionFailure value with a nil origin.
	s := freshStream(t, "serverfail")
	if len(s) != 376 {
		t.Fatalf("failure stream is %d bytes, want 376", len(s))
	}
	if want := unhex(dumpConnFailureValue); !bytes.HasSuffix(s, want) {
		t.Fatalf("failure value: got % x", s[len(s)-len(want):])
	}
}

func TestWireDecodeSpecBytes(t *testing.T) {
	// T7: a decoder given the CONNECT bytes and then the 385 bytes of
	// §5.5(c) yields a FULL from the client; T8: the traced STATS decodes
	// with its hop and timestamps.
	stream := unhex(dumpConnect + dumpFirstFrame + dumpTracedStats)
	dec := gob.NewDecoder(bytes.NewReader(stream))
	var cf ssntp.ConnectFrame
	if err := dec.Decode(&cf); err != nil {
		t.Fatal(err)
	}
	if cf.Role != ssntp.AGENT || cf.Minor != 1 || !bytes.Equal(cf.Source, clientUUID[:]) || len(cf.Destination) != 16 {
		t.Fatalf("CONNECT decoded as %+v", cf)
	}
	var f ssntp.Frame
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if f.Type != ssntp.STATUS || f.Status() != ssntp.FULL || f.Origin != clientUUID || f.Trace != nil {
		t.Fatalf("FULL decoded as %+v", f)
	}
	var tf ssntp.Frame
	if err := dec.Decode(&tf); err != nil {
		t.Fatal(err)
	}
	if !tf.PathTrace() || tf.Version() != 0 || tf.Trace.PathLength != 1 || len(tf.Trace.Path) != 1 {
		t.Fatalf("traced frame decoded as %+v", tf)
	}
	wantTx := time.Date(2016, 10, 18, 12, 0, 1, 500, time.UTC)
	if !tf.Trace.Path[0].TxTimestamp.Equal(wantTx) || !tf.Trace.StartTimestamp.Equal(traceStart) {
		t.Fatalf("trace timestamps %v %v", tf.Trace.Path[0].TxTimestamp, tf.Trace.StartTimestamp)
	}
	if string(tf.Trace.Label) != "L" || string(tf.Payload) != "Y" || tf.Command() != ssntp.STATS {
		t.Fatalf("traced frame content %+v", tf)
	}
}

// Shapes of Frame that other implementations might send (T9).
type frameNoTrace struct {
	Major, Minor  uint8
	Type          uint8
	Operand       uint8
	Origin        [16]uint8
	PayloadLength uint32
	Payload       []byte
}

type frameExtra struct {
	Extra         string
	Major, Minor  uint8
	Type          uint8
	Operand       uint8
	Origin        [16]uint8
	PayloadLength uint32
	Payload       []byte
	More          []int
}

type frameSliceOrigin struct {
	Major, Minor uint8
	Type         uint8
	Operand      uint8
	Origin       []byte
}

func TestWireTolerance(t *testing.T) {
	// T9: definitions with other ids, without Trace, with extra fields are
	// read; Origin as a byte slice is refused.
	cases := []struct {
		name    string
		value   any
		wantErr bool
	}{
		{"no trace field", &frameNoTrace{Minor: 1, Type: 1, Operand: 1, Origin: clientUUID, PayloadLength: 2, Payload: []byte("ok")}, false},
		{"extra fields", &frameExtra{Extra: "x", Minor: 1, Type: 1, Operand: 1, Origin: clientUUID, PayloadLength: 2, Payload: []byte("ok"), More: []int{1, 2}}, false},
		{"origin as slice", &frameSliceOrigin{Minor: 1, Type: 1, Operand: 1, Origin: clientUUID[:]}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			// Burn a few type ids first so ids differ from 64–70.
			_ = gob.NewEncoder(&bytes.Buffer{}).Encode(struct{ A, B, C int }{1, 2, 3})
			if err := gob.NewEncoder(&buf).Encode(tc.value); err != nil {
				t.Fatal(err)
			}
			var f ssntp.Frame
			err := gob.NewDecoder(&buf).Decode(&f)
			if tc.wantErr {
				if err == nil {
					t.Fatal("decoded without error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Origin != clientUUID || f.Status() != ssntp.READY || string(f.Payload) != "ok" {
				t.Fatalf("decoded %+v", f)
			}
		})
	}
}

func TestCodeValues(t *testing.T) {
	// §6: every code with its value and name.
	checks := []struct {
		got, want string
	}{
		{fmt.Sprint(uint8(ssntp.ERROR), uint8(ssntp.EVENT)), "2 3"},
		{fmt.Sprint(uint8(ssntp.DetachVolume), uint8(ssntp.CONFIGURE), uint8(ssntp.RESTART)), "11 9 6"},
		{fmt.Sprint(uint8(ssntp.MAINTENANCE)), "4"},
		{fmt.Sprint(uint8(ssntp.NodeDisconnected), uint8(ssntp.TraceReport)), "7 5"},
		{fmt.Sprint(uint8(ssntp.ConnectionFailure), uint8(ssntp.RestartFailure), uint8(ssntp.DeleteFailure), uint8(ssntp.ConnectionAborted), uint8(ssntp.DetachVolumeFailure)), "3 4 5 6 9"},
		{ssntp.STATS.String(), "STATISTICS"},
		{ssntp.AssignPublicIP.String(), "Assign public IP"},
		{ssntp.ConcentratorInstanceAdded.String(), "Network Concentrator Instance Added"},
		{ssntp.InvalidConfiguration.String(), "Cluster configuration is invalid"},
		{ssntp.Command(42).String(), ""},
		{ssntp.AttachVolumeFailure.String(), ""},
		{(ssntp.AGENT | ssntp.NETAGENT).String(), "CNAgent-NetworkingAgent-"},
		{ssntp.UNKNOWN.String(), ""},
		{(ssntp.SERVER | ssntp.Controller | ssntp.AGENT | ssntp.SCHEDULER | ssntp.NETAGENT | ssntp.CNCIAGENT).String(),
			"Server-Controller-CNAgent-Scheduler-NetworkingAgent-CNCIAgent-"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	f := &ssntp.Frame{Type: ssntp.ERROR, Operand: uint8(ssntp.StartFailure)}
	if f.OperandString() != "1" {
		t.Errorf("error operand string %q", f.OperandString())
	}
}
