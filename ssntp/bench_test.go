package ssntp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"io"
	"net"
	"runtime"
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
			srv, cs := benchServer(b)
			cl, err := ssntp.Dial(context.Background(), benchClientConfig(b, srv), nopClient{})
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

func benchServer(b *testing.B) (*ssntp.Server, *countingServer) {
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
	b.Cleanup(func() { srv.Close() })
	return srv, cs
}

func benchClientConfig(b *testing.B, srv *ssntp.Server) ssntp.Config {
	cfg := testutil.TestCerts(b).Config(b, ssntp.AGENT)
	cfg.Port, cfg.Log = srv.Addr().(*net.TCPAddr).Port, quiet{}
	return cfg
}

// BenchmarkConnect measures one complete connection set-up (mutual TLS
// with ECDSA P-256 plus CONNECT/CONNECTED), both ends in this process.
func BenchmarkConnect(b *testing.B) {
	srv, _ := benchServer(b)
	cfg := benchClientConfig(b, srv)
	b.SetParallelism(4) // several dialers, as agents arrive together
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cl, err := ssntp.Dial(context.Background(), cfg, nopClient{})
			if err != nil {
				b.Error(err)
				return
			}
			cl.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}

// BenchmarkIdleConnection reports the Go heap and stack held per idle
// connection, both ends together (ssntp-bench measures each side's RSS).
func BenchmarkIdleConnection(b *testing.B) {
	srv, _ := benchServer(b)
	cfg := benchClientConfig(b, srv)
	const n = 200
	for i := 0; i < b.N; i++ {
		before := heapAndStacks()
		clients := make([]*ssntp.Client, 0, n)
		for j := 0; j < n; j++ {
			cl, err := ssntp.Dial(context.Background(), cfg, nopClient{})
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, cl)
		}
		after := heapAndStacks()
		b.ReportMetric(float64(after-before)/n/1024, "KiB/conn-both-sides")
		for _, cl := range clients {
			cl.Close()
		}
	}
}

func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

type nopClient struct{}

func (nopClient) ConnectNotify()                            {}
func (nopClient) DisconnectNotify()                         {}
func (nopClient) StatusNotify(ssntp.Status, *ssntp.Frame)   {}
func (nopClient) CommandNotify(ssntp.Command, *ssntp.Frame) {}
func (nopClient) EventNotify(ssntp.Event, *ssntp.Frame)     {}
func (nopClient) ErrorNotify(ssntp.Error, *ssntp.Frame)     {}

// BenchmarkRawTLSWrites writes the bytes of one 64-byte-payload frame per
// TLS write, the baseline BenchmarkFrames/64B is compared with.
func BenchmarkRawTLSWrites(b *testing.B) {
	c := testutil.TestCerts(b)
	srvPair, err := tls.X509KeyPair(c.AnchorKey, c.AnchorKey)
	if err != nil {
		b.Fatal(err)
	}
	cliCert := c.Cert(b, ssntp.AGENT)
	cliPair, err := tls.X509KeyPair(cliCert, cliCert)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CACert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvPair},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	// The second value message of a stream is what SSNTP writes per frame.
	var msg bytes.Buffer
	enc := gob.NewEncoder(&msg)
	f := &ssntp.Frame{Minor: 1, Operand: 3, Payload: bytes.Repeat([]byte("y"), 64), PayloadLength: 64}
	_ = enc.Encode(f)
	first := msg.Len()
	_ = enc.Encode(f)
	one := msg.Bytes()[first:]
	done := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer conn.Close()
		n, _ := io.Copy(io.Discard, conn)
		done <- n
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cliPair},
		RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(one); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close()
	<-done
}
