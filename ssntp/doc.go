// Package ssntp implements SSNTP, the Simple and Secure Node Transfer
// Protocol that every Ciao daemon speaks: an asynchronous, unacknowledged
// exchange of frames over mutual TLS in a star around one server (the
// scheduler). It is wire-compatible with the 2016 implementation
// (ciao-project/ciao@74c1e8d4); ../shared/spec/ssntp.md is the full
// specification.
//
// # Wire format
//
// There is no fixed binary header. Each direction of a connection is one
// encoding/gob stream, written by one encoder and read by one decoder for
// the connection's whole life. The client's stream starts with one
// ConnectFrame (CONNECT), the server's with one ConnectedFrame (CONNECTED)
// or, when it refuses the client, one ERROR Frame; every later value is a
// Frame:
//
//	Frame {Major, Minor uint8; Type Type; Operand uint8;
//	       Origin [16]uint8; PayloadLength uint32;
//	       Trace *FrameTrace; Payload []byte}
//
// Major is 0 (bit 7 set: path-traced), Minor 1, Type COMMAND 0, STATUS 1,
// ERROR 2, EVENT 3. Origin is the endpoint that created the frame and is
// kept when the server relays it. Payloads are YAML documents (package
// payloads). Field names, order and kinds are the schema: gob matches
// fields by name, so they must not change.
//
// # Message flow
//
//	client                                   server
//	  | TLS handshake, both sides verified     |
//	  | CONNECT {role, client UUID}  -------->  | role ⊆ certificate roles?
//	  | <------- CONNECTED {role, server UUID,  |
//	  |                     cluster config}    |
//	  | role ⊆ server certificate roles?        |
//	  | <========= Frames, both ways =========> |
//
// Roles (Controller, AGENT, NETAGENT, CNCIAGENT, SCHEDULER, SERVER) are
// proven by private Extended Key Usage OIDs 1.3.6.1.4.1.343.8.{1..6} in
// each peer's certificate. The server relays frames between clients by
// ForwardRules: to every client holding a role, or wherever a Forwarder
// callback decides. Nothing is acknowledged; failures travel as ERROR
// frames with application payloads.
//
// Clients reconnect by themselves with backoff. There is no heartbeat: the
// launchers' periodic STATUS and STATS frames are the liveness signal.
//
// # Versions
//
// ProtocolVersion dates the wire behaviour this package implements:
//
//	2016-10-18  0.1  the ciao-project/ciao@74c1e8d4 protocol: operand values
//	                 of that commit (STOP 2 … DetachVolume 11; events up to
//	                 NodeDisconnected 7; errors up to DetachVolumeFailure 9).
//	2026-11-27  0.1  this implementation: same wire; refuses CONNECT role 0
//	                 and short UUIDs (which crash 2016 peers), bounds frame
//	                 size, retries retryable handshake failures.
package ssntp

// ProtocolVersion is the major.minor this package speaks and the date of
// the wire behaviour it implements (see the package documentation).
const ProtocolVersion = "0.1 (2016-10-18)"
