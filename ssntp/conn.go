package ssntp

import (
	"bytes"
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

// maxPending bounds the bytes queued on one connection: a sender blocks
// beyond it until the peer has taken some, so a slow peer slows its
// senders instead of growing memory without bound.
const maxPending = 256 << 10

// idleBuffer is the largest send buffer kept when the writer stops;
// bigger ones, grown by a burst, go back to the garbage collector so that
// thousands of quiet connections stay cheap.
const idleBuffer = 64 << 10

// wireConn is one SSNTP connection: one gob stream per direction for the
// connection's whole life (a second encoder would resend type ids and
// break the peer's decoder). One goroutine reads. Senders encode into a
// pending buffer under mu; a writer goroutine, started only while there
// is something to send, writes whatever has accumulated in one go. Frames
// sent back to back therefore share TLS records and system calls, and an
// idle connection has no writer goroutine at all.
type wireConn struct {
	nc           net.Conn
	dec          *frameDecoder
	writeTimeout time.Duration
	maxFrame     uint64
	self         Node // this endpoint, as it appears in trace hops
	wg           sync.WaitGroup

	mu      sync.Mutex // guards everything below
	cond    sync.Cond  // broadcast when the writer drains, stops or fails
	enc     *gob.Encoder
	frameID int64     // gob's id for Frame, once enc has defined it (see encode.go)
	pending []byte    // encoded frames not yet handed to the socket
	spare   []byte    // the writer's previous batch, reused
	writing bool      // a writer goroutine is running
	werr    error     // sticky: the connection can no longer send
	drainBy time.Time // if set, writes must finish by then (closing)
}

// pendingWriter is the gob encoder's io.Writer: it appends to the pending
// buffer; the caller holds mu.
type pendingWriter struct{ c *wireConn }

func (w pendingWriter) Write(b []byte) (int, error) {
	w.c.pending = append(w.c.pending, b...)
	return len(b), nil
}

func newWireConn(nc net.Conn, maxFrame uint64, writeTimeout time.Duration, self Node) *wireConn {
	c := &wireConn{
		nc:           nc,
		dec:          newFrameDecoder(nc, maxFrame),
		writeTimeout: writeTimeout,
		maxFrame:     maxFrame,
		self:         self,
	}
	c.cond.L = &c.mu
	c.enc = gob.NewEncoder(pendingWriter{c})
	return c
}

// encode writes one handshake value synchronously (CONNECT, CONNECTED, a
// refusal), each of which must be on the wire before the next step. It
// uses a one-shot encoder: the handshake types share no gob type with
// Frame, so the frame encoder later defines everything it needs, and the
// stream is byte for byte what one encoder would write. The one-shot
// encoder's per-type state is garbage once the handshake is over, which
// matters with thousands of mostly idle connections.
func (c *wireConn) encode(v any) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing {
		c.cond.Wait()
	}
	if c.werr != nil {
		return c.werr
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(buf.Bytes()); err != nil {
		c.werr = err
		return err
	}
	return nil
}

// decodeHandshake reads one handshake value with a one-shot decoder, for
// the same reason as encode. It reads exactly the messages of that value
// (frameReader does no read-ahead), so nothing of the frame stream is
// lost.
func (c *wireConn) decodeHandshake(v any) error {
	return gob.NewDecoder(&frameReader{r: c.nc, max: c.maxFrame}).Decode(v)
}

// writeFrame queues f for sending. For path-traced frames the last hop is
// this endpoint; its transmit time is stamped now. An error means the
// connection cannot send any more (an earlier write failed, or it is
// closed); frames queued before a failure may be lost with it, as on any
// broken connection.
func (c *wireConn) writeFrame(f *Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) >= maxPending && c.werr == nil {
		c.cond.Wait()
	}
	if c.werr != nil {
		return c.werr
	}
	if f.PathTrace() && len(f.Trace.Path) > 0 {
		f.Trace.Path[len(f.Trace.Path)-1].TxTimestamp = time.Now().UTC()
	}
	if c.frameID != 0 && f.Trace == nil {
		c.pending = appendFrame(c.pending, c.frameID, f)
	} else {
		start := len(c.pending)
		if err := c.enc.Encode(f); err != nil {
			return err
		}
		if c.frameID == 0 {
			c.frameID = lastValueTypeID(c.pending[start:])
		}
	}
	if !c.writing {
		c.writing = true
		c.wg.Add(1)
		go c.writer()
	}
	return nil
}

// writer hands the pending bytes to the socket until none are left.
func (c *wireConn) writer() {
	defer c.wg.Done()
	c.mu.Lock()
	for len(c.pending) > 0 && c.werr == nil {
		batch := c.pending
		c.pending, c.spare = c.spare[:0], nil
		deadline := time.Now().Add(c.writeTimeout)
		if !c.drainBy.IsZero() && c.drainBy.Before(deadline) {
			deadline = c.drainBy
		}
		c.mu.Unlock()
		err := c.nc.SetWriteDeadline(deadline)
		if err == nil {
			_, err = c.nc.Write(batch)
		}
		c.mu.Lock()
		if err != nil {
			// A connection that cannot write within the timeout is dead;
			// closing it makes the reader notice, so the session ends (or
			// the client reconnects) instead of hanging half-open.
			c.werr = fmt.Errorf("ssntp: write: %w", err)
			c.nc.Close()
		}
		c.spare = batch[:0]
		c.cond.Broadcast()
	}
	c.writing = false
	if cap(c.spare) > idleBuffer {
		c.spare = nil
	}
	if len(c.pending) == 0 && cap(c.pending) > idleBuffer {
		c.pending = nil
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// drain waits, at most d, for queued frames to reach the socket.
func (c *wireConn) drain(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.writing {
		return
	}
	c.drainBy = time.Now().Add(d)
	_ = c.nc.SetWriteDeadline(c.drainBy)
	for c.writing {
		c.cond.Wait()
	}
}

// readFrame decodes the next frame. A path-traced frame gets this
// endpoint's receive hop appended.
func (c *wireConn) readFrame() (*Frame, error) {
	f, err := c.dec.decode()
	if err != nil {
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

// close closes the socket, which stops the reader and any blocked writer,
// and waits for the writer goroutine. Later sends fail with ErrClosed.
func (c *wireConn) close() error {
	c.mu.Lock()
	if c.werr == nil {
		c.werr = ErrClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	err := c.nc.Close()
	c.wg.Wait()
	return err
}

// sendError sends a payload-less ERROR frame synchronously, the way the
// 2016 server does after a failed CONNECT; the caller then closes.
func (c *wireConn) sendError(op Error, origin uuid.UUID) error {
	return c.encode(newFrame(ERROR, uint8(op), origin, nil, nil, Node{}))
}
