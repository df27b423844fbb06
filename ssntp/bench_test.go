package ssntp_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

type countingServer struct {
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
}

func (c *countingServer) ConnectNotify(uuid.UUID, ssntp.Role)                {}
func (c *countingServer) DisconnectNotify(uuid.UUID, ssntp.Role)             {}
func (c *countingServer) StatusNotify(uuid.UUID, ssntp.Status, *ssntp.Frame) {}
func (c *countingServer) EventNotify(uuid.UUID, ssntp.Event, *ssntp.Frame)   {}
func (c *countingServer) ErrorNotify(uuid.UUID, ssntp.Error, *ssntp.Frame)   {}
func (c *countingServer) CommandNotify(uuid.UUID, ssntp.Command, *ssntp.Frame) {
	if c.n.Add(1) == c.want.Load() {
		c.done <- struct{}{}
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)    {}
func (quiet) Warningf(string, ...any) {}
func (quiet) Errorf(string, ...any)   {}

// BenchmarkFrames measures frames one way on one connection, sender to
// the server application's callback.
func BenchmarkFrames(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(map[int]string{64: "64B", 1024: "1KiB"}[size], func(b *testing.B) {
			c := testutil.TestCerts(b)
			cfg := c.Config(b, ssntp.SCHEDULER|ssntp.SERVER)
			cfg.Port, cfg.Log = ssntp.AnyPort, quiet{}
			cs := &countingServer{done: make(chan struct{}, 1)}
			srv, err := ssntp.NewServer(cfg, cs)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Listen(); err != nil {
				b.Fatal(err)
			}
			go srv.Serve()
			defer srv.Close()
			ccfg := c.Config(b, ssntp.AGENT)
			ccfg.Port, ccfg.Log = srv.Addr().(*net.TCPAddr).Port, quiet{}
			cl, err := ssntp.Dial(context.Background(), ccfg, clientRecorder{newRecorder()})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			payload := bytes.Repeat([]byte("y"), size)
			cs.want.Store(int64(b.N))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := cl.SendCommand(ssntp.STATS, payload); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-cs.done:
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d frames arrived", cs.n.Load(), b.N)
			}
		})
	}
}
