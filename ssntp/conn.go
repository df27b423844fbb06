package ssntp

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ciao-project/ciao/uuid"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrFrameTooLarge: a gob message longer than Config.MaxFrameSize.
	ErrFrameTooLarge = errors.New("ssntp: frame too large")
	// ErrCorruptStream: bytes that are not a gob message header.
	ErrCorruptStream = errors.New("ssntp: corrupt frame stream")
	// ErrBadUUID: a UUID field that is not 16 bytes long.
	ErrBadUUID = errors.New("ssntp: uuid is not 16 bytes")
	// ErrClosed: the client or server has been closed.
	ErrClosed = errors.New("ssntp: closed")
	// ErrNotConnected: no session to send on (client between connections,
	// or unknown destination UUID on the server).
	ErrNotConnected = errors.New("ssntp: not connected")
	// ErrRoleMismatch: an advertised role not proven by the certificate.
	ErrRoleMismatch = errors.New("ssntp: role not in certificate")
	// ErrHandshake: the peer refused or botched the CONNECT exchange.
	ErrHandshake = errors.New("ssntp: handshake failed")
)

// frameReader sits between the TLS connection and the gob decoder. It
// follows gob's message framing so that an oversized message is refused
// from its length prefix, before gob allocates a buffer for it. It also
// implements io.ByteReader so gob does not wrap it in a 4 KiB bufio.Reader:
// tls.Conn already buffers a whole record, and 4 KiB per idle connection
// matters with thousands of them.
type frameReader struct {
	r         io.Reader
	max       uint64
	remaining uint64 // body bytes left in the current message
	need      int    // header bytes still expected after the first
	count     uint64 // length being assembled from the header
	err       error  // sticky: the stream is unusable after a bad header
	one       [1]byte
}

func (fr *frameReader) Read(p []byte) (int, error) {
	if fr.err != nil {
		return 0, fr.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if fr.remaining > 0 {
		if uint64(len(p)) > fr.remaining {
			p = p[:fr.remaining]
		}
		n, err := fr.r.Read(p)
		fr.remaining -= uint64(n)
		return n, err
	}
	// Header: hand gob one byte at a time so we see the whole count. A bad
	// header returns no byte, only the error: io.ReadFull would drop an
	// error that came with the last byte it asked for.
	n, err := fr.r.Read(p[:1])
	if n == 0 {
		return 0, err
	}
	b := p[0]
	switch {
	case fr.need == 0 && b < 0x80:
		fr.count = uint64(b)
	case fr.need == 0:
		fr.need = int(-int8(b))
		if fr.need < 1 || fr.need > 8 {
			fr.err = fmt.Errorf("%w: bad length prefix 0x%02x", ErrCorruptStream, b)
			return 0, fr.err
		}
		fr.count = 0
		return 1, err
	default:
		fr.count = fr.count<<8 | uint64(b)
		fr.need--
		if fr.need > 0 {
			return 1, err
		}
	}
	if fr.count > fr.max {
		fr.err = fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, fr.count, fr.max)
		return 0, fr.err
	}
	fr.remaining = fr.count
	return 1, err
}

func (fr *frameReader) ReadByte() (byte, error) {
	_, err := io.ReadFull(fr, fr.one[:])
	return fr.one[0], err
}

// wireConn is one SSNTP connection: one gob stream per direction for the
// connection's whole life (a second encoder would resend type ids and
// break the peer's decoder). Reads happen on one goroutine; mu serialises
// writers.
type wireConn struct {
	nc           net.Conn
	dec          *gob.Decoder
	writeTimeout time.Duration
	self         Node // this endpoint, as it appears in trace hops

	mu  sync.Mutex // guards enc and the write side of nc
	enc *gob.Encoder
}

func newWireConn(nc net.Conn, maxFrame uint64, writeTimeout time.Duration, self Node) *wireConn {
	return &wireConn{
		nc:           nc,
		dec:          gob.NewDecoder(&frameReader{r: nc, max: maxFrame}),
		enc:          gob.NewEncoder(nc),
		writeTimeout: writeTimeout,
		self:         self,
	}
}

// encode writes one value under the write lock with the write deadline.
func (c *wireConn) encode(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.encodeLocked(v)
}

func (c *wireConn) encodeLocked(v any) error {
	if c.writeTimeout > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
			return err
		}
	}
	return c.enc.Encode(v)
}

// writeFrame sends f. For path-traced frames the last hop is this
// endpoint; its transmit time is stamped at the moment of writing.
func (c *wireConn) writeFrame(f *Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.PathTrace() && len(f.Trace.Path) > 0 {
		f.Trace.Path[len(f.Trace.Path)-1].TxTimestamp = time.Now().UTC()
	}
	return c.encodeLocked(f)
}

// readFrame decodes the next frame. A path-traced frame gets this
// endpoint's receive hop appended.
func (c *wireConn) readFrame() (*Frame, error) {
	f := new(Frame)
	if err := c.dec.Decode(f); err != nil {
		return nil, err
	}
	if f.Trace != nil {
		for i := range f.Trace.Path {
			if len(f.Trace.Path[i].UUID) != 16 {
				// Short hop UUIDs crash 2016 peers that dump traces;
				// never pass one on.
				return nil, fmt.Errorf("%w: trace hop %d", ErrBadUUID, i)
			}
		}
		if f.PathTrace() {
			hop := c.self
			hop.RxTimestamp = time.Now().UTC()
			f.Trace.Path = append(f.Trace.Path, hop)
			f.Trace.PathLength++
		}
	}
	return f, nil
}

func (c *wireConn) close() error { return c.nc.Close() }

// handshakeFailure sends a payload-less ERROR frame the way the 2016 server
// does after a failed CONNECT, then the caller closes the connection.
func (c *wireConn) sendError(op Error, origin uuid.UUID) error {
	return c.writeFrame(newFrame(ERROR, uint8(op), origin, nil, nil, Node{}))
}
