package payloads

import "time"

// Trace is the TraceReport event payload, flat: one FrameTrace per traced
// frame.
type Trace struct {
	Frames []FrameTrace `yaml:"frames"`
}

// TimestampLayout is the layout of every trace timestamp (RFC 3339 with
// nanoseconds, trailing zeros dropped; a zero time.Time formats as
// 0001-01-01T00:00:00Z).
const TimestampLayout = time.RFC3339Nano

// FrameTrace is the trace of one frame along its path.
type FrameTrace struct {
	Label          string      `yaml:"label"`
	Type           string      `yaml:"type"`    // COMMAND, STATUS, EVENT or ERROR
	Operand        string      `yaml:"operand"` // operand name; the decimal code for ERROR
	StartTimestamp string      `yaml:"start_timestamp"`
	EndTimestamp   string      `yaml:"end_timestamp"`
	Nodes          []SSNTPNode `yaml:"nodes"`
}

// SSNTPNode is one hop of a traced frame. A timestamp is "" when absent.
type SSNTPNode struct {
	SSNTPUUID   string `yaml:"ssntp_node_uuid"`
	SSNTPRole   string `yaml:"ssntp_role"` // ssntp.Role.String(), e.g. "Controller-"
	TxTimestamp string `yaml:"tx_timestamp"`
	RxTimestamp string `yaml:"rx_timestamp"`
}

// plainTimestamp is a string that marshals as a plain YAML scalar when it
// is a canonical TimestampLayout time. yaml.v2 v2.4 double-quotes strings
// that read as timestamps; the 2016 library did not, and time.Time values
// are the one thing v2.4 writes as a plain timestamp.
type plainTimestamp string

// MarshalYAML implements yaml.Marshaler.
func (p plainTimestamp) MarshalYAML() (interface{}, error) {
	s := string(p)
	if t, err := time.Parse(TimestampLayout, s); err == nil && t.Format(TimestampLayout) == s {
		return t, nil
	}
	return s, nil
}

// frameTraceWire is FrameTrace as marshalled.
type frameTraceWire struct {
	Label          string         `yaml:"label"`
	Type           string         `yaml:"type"`
	Operand        string         `yaml:"operand"`
	StartTimestamp plainTimestamp `yaml:"start_timestamp"`
	EndTimestamp   plainTimestamp `yaml:"end_timestamp"`
	Nodes          []SSNTPNode    `yaml:"nodes"`
}

// MarshalYAML implements yaml.Marshaler, writing the timestamps plain as
// the 2016 peers did.
func (f FrameTrace) MarshalYAML() (interface{}, error) {
	return frameTraceWire{
		Label:          f.Label,
		Type:           f.Type,
		Operand:        f.Operand,
		StartTimestamp: plainTimestamp(f.StartTimestamp),
		EndTimestamp:   plainTimestamp(f.EndTimestamp),
		Nodes:          f.Nodes,
	}, nil
}

// ssntpNodeWire is SSNTPNode as marshalled.
type ssntpNodeWire struct {
	SSNTPUUID   string         `yaml:"ssntp_node_uuid"`
	SSNTPRole   string         `yaml:"ssntp_role"`
	TxTimestamp plainTimestamp `yaml:"tx_timestamp"`
	RxTimestamp plainTimestamp `yaml:"rx_timestamp"`
}

// MarshalYAML implements yaml.Marshaler, writing the timestamps plain as
// the 2016 peers did.
func (n SSNTPNode) MarshalYAML() (interface{}, error) {
	return ssntpNodeWire{
		SSNTPUUID:   n.SSNTPUUID,
		SSNTPRole:   n.SSNTPRole,
		TxTimestamp: plainTimestamp(n.TxTimestamp),
		RxTimestamp: plainTimestamp(n.RxTimestamp),
	}, nil
}
