package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
	"github.com/ciao-project/ciao/uuid"
)

type creds struct {
	ca, anchor, agent []byte
}

func makeCreds(kt string) (*creds, error) {
	k, err := certs.ParseKeyType(kt)
	if err != nil {
		return nil, err
	}
	ca, anchor, err := certs.CreateAnchor(certs.Template{Hosts: []string{"localhost", "127.0.0.1"},
		Roles: ssntp.SCHEDULER, KeyType: k})
	if err != nil {
		return nil, err
	}
	agent, err := certs.CreateCert(anchor, certs.Template{Hosts: []string{"localhost"}, Roles: ssntp.AGENT, KeyType: k})
	if err != nil {
		return nil, err
	}
	return &creds{ca: ca, anchor: anchor, agent: agent}, nil
}

type quietLog struct{}

func (quietLog) Infof(string, ...any)    {}
func (quietLog) Warningf(string, ...any) {}
func (quietLog) Errorf(string, ...any)   {}

// counter is a server notifier that counts frames and connections.
type counter struct {
	frames  atomic.Int64
	conns   atomic.Int64
	target  int64
	reached chan struct{}
	once    sync.Once
}

func (c *counter) ConnectNotify(uuid.UUID, ssntp.Role)    { c.conns.Add(1) }
func (c *counter) DisconnectNotify(uuid.UUID, ssntp.Role) { c.conns.Add(-1) }
func (c *counter) frame() {
	if c.frames.Add(1) == c.target {
		c.once.Do(func() { close(c.reached) })
	}
}
func (c *counter) StatusNotify(uuid.UUID, ssntp.Status, *ssntp.Frame)   { c.frame() }
func (c *counter) CommandNotify(uuid.UUID, ssntp.Command, *ssntp.Frame) { c.frame() }
func (c *counter) EventNotify(uuid.UUID, ssntp.Event, *ssntp.Frame)     { c.frame() }
func (c *counter) ErrorNotify(uuid.UUID, ssntp.Error, *ssntp.Frame)     { c.frame() }

type nopClient struct{}

func (nopClient) ConnectNotify()                          {}
func (nopClient) DisconnectNotify()                       {}
func (nopClient) StatusNotify(ssntp.Status, *ssntp.Frame) {}
func (nopClient) CommandNotify(ssntp.Command, *ssntp.Frame) {
}
func (nopClient) EventNotify(ssntp.Event, *ssntp.Frame) {}
func (nopClient) ErrorNotify(ssntp.Error, *ssntp.Frame) {}

func startServer(cr *creds, ntf ssntp.ServerNotifier) (*ssntp.Server, int, error) {
	srv, err := ssntp.NewServer(ssntp.Config{CACertPEM: cr.ca, CertPEM: cr.anchor, URI: "127.0.0.1",
		Port: ssntp.AnyPort, Log: quietLog{}}, ntf)
	if err != nil {
		return nil, 0, err
	}
	if err := srv.Listen(); err != nil {
		return nil, 0, err
	}
	go srv.Serve()
	return srv, srv.Addr().(*net.TCPAddr).Port, nil
}

func dial(cr *creds, port int) (*ssntp.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ssntp.Dial(ctx, ssntp.Config{CACertPEM: cr.ca, CertPEM: cr.agent, URI: "127.0.0.1", Port: port,
		Log: quietLog{}}, nopClient{})
}

func run(cfg config) error {
	raiseFileLimit()
	cr, err := makeCreds(cfg.keyType)
	if err != nil {
		return err
	}
	if cfg.serveIdle {
		return serveIdle(cr)
	}
	fmt.Printf("# ssntp-bench: %s, %d CPUs, %s certificates\n", runtime.Version(), runtime.NumCPU(), cfg.keyType)
	all := cfg.only == ""
	if all || cfg.only == "throughput" {
		for _, size := range []int{64, 1024} {
			if err := throughput(cr, size, cfg.frames); err != nil {
				return err
			}
		}
	}
	if all || cfg.only == "accept" {
		if err := accept(cr, cfg.dialers, cfg.acceptFor); err != nil {
			return err
		}
	}
	if all || cfg.only == "idle" {
		if err := idle(cr, cfg.idleClients); err != nil {
			return err
		}
	}
	return nil
}

// throughput sends n frames one way on one connection, then the same
// bytes with raw TLS writes, best of three each.
func throughput(cr *creds, size, n int) error {
	payload := bytes.Repeat([]byte("y"), size)
	var best, bestRaw float64
	for round := 0; round < 3; round++ {
		r, err := ssntpRate(cr, payload, n)
		if err != nil {
			return err
		}
		best = max(best, r)
		raw, err := rawRate(cr, payload, n)
		if err != nil {
			return err
		}
		bestRaw = max(bestRaw, raw)
	}
	fmt.Printf("frames/s one way, %4d-byte payload: ssntp %8.0f   raw TLS writes %8.0f   ratio %3.0f%% (goal >= 85%%)\n",
		size, best, bestRaw, 100*best/bestRaw)
	return nil
}

func ssntpRate(cr *creds, payload []byte, n int) (float64, error) {
	cnt := &counter{target: int64(n), reached: make(chan struct{})}
	srv, port, err := startServer(cr, cnt)
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	cl, err := dial(cr, port)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	runtime.GC()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := cl.SendCommand(ssntp.STATS, payload); err != nil {
			return 0, err
		}
	}
	select {
	case <-cnt.reached:
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("only %d of %d frames arrived", cnt.frames.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// frameBytes is one Frame value message exactly as SSNTP writes it after
// the stream's type definitions.
func frameBytes(payload []byte) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	f := &ssntp.Frame{Minor: 1, Type: ssntp.COMMAND, Operand: uint8(ssntp.STATS), Origin: uuid.Generate(),
		PayloadLength: uint32(len(payload)), Payload: payload}
	_ = enc.Encode(f)
	first := buf.Len()
	_ = enc.Encode(f)
	return append([]byte(nil), buf.Bytes()[first:]...)
}

func rawRate(cr *creds, payload []byte, n int) (float64, error) {
	msg := frameBytes(payload)
	pair, err := tls.X509KeyPair(cr.anchor, cr.anchor)
	if err != nil {
		return 0, err
	}
	cpair, err := tls.X509KeyPair(cr.agent, cr.agent)
	if err != nil {
		return 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cr.ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.CopyN(io.Discard, c, int64(n*len(msg)))
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cpair},
		RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	runtime.GC()
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := c.Write(msg); err != nil {
			return 0, err
		}
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// accept measures complete SSNTP connection set-ups (TLS handshake plus
// CONNECT/CONNECTED) per second by one server, with several dialling
// goroutines in the same process, so both ends share the CPUs.
func accept(cr *creds, dialers int, d time.Duration) error {
	cnt := &counter{reached: make(chan struct{})}
	srv, port, err := startServer(cr, cnt)
	if err != nil {
		return err
	}
	defer srv.Close()
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	for i := 0; i < dialers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				cl, err := dial(cr, port)
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				cl.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(max(ok.Load(), 1))
	fmt.Printf("connections set up per second (mutual TLS + CONNECT, one server, %d dialers): %6.0f (goal >= 900)   CPU per connection, both ends: %v   failures: %d\n",
		dialers, float64(ok.Load())/el.Seconds(), cpu.Round(time.Microsecond), failed.Load())
	return nil
}

// idle holds n idle connections between this process (clients) and a
// child process (server) and reports each side's RSS growth per
// connection.
func idle(cr *creds, n int) error {
	dir, err := os.MkdirTemp("", "ssntp-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca := dir + "/ca.pem"
	anchor := dir + "/anchor.pem"
	if err := os.WriteFile(ca, cr.ca, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(anchor, cr.anchor, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-serve-idle")
	cmd.Env = append(os.Environ(), "SSNTP_BENCH_CA="+ca, "SSNTP_BENCH_CERT="+anchor)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	readLine := func() (string, error) {
		if !lines.Scan() {
			return "", errors.New("server child exited")
		}
		return lines.Text(), nil
	}
	portLine, err := readLine()
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portLine)
	if err != nil {
		return fmt.Errorf("server child said %q", portLine)
	}
	childRSS := func() (int64, error) {
		if _, err := io.WriteString(stdin, "rss\n"); err != nil {
			return 0, err
		}
		l, err := readLine()
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(l, 10, 64)
	}
	srv0, err := childRSS()
	if err != nil {
		return err
	}
	cli0 := settledRSS()
	clients := make([]*ssntp.Client, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var dialErr atomic.Value
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(cr, port)
			if err != nil {
				dialErr.Store(err)
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if e := dialErr.Load(); e != nil {
		return fmt.Errorf("dialling %d clients: %v", n, e)
	}
	setup := time.Since(start)
	srv1, err := childRSS()
	if err != nil {
		return err
	}
	cli1 := settledRSS()
	writeHeap("client")
	if _, err := io.WriteString(stdin, "heap\n"); err != nil {
		return err
	}
	if _, err := readLine(); err != nil {
		return err
	}
	fmt.Printf("memory per idle connection, %d clients: server %5.1f KiB   client %5.1f KiB (goal <= 20 KiB per side)   set-up %v\n",
		n, float64(srv1-srv0)/1024/float64(n), float64(cli1-cli0)/1024/float64(n), setup.Round(time.Millisecond))
	return nil
}

// serveIdle is the child of idle: it serves, prints its port, and answers
// each "rss" line on stdin with its settled RSS in bytes.
func serveIdle(cr *creds) error {
	// The parent made the certificates; use its anchor as CA and key.
	b, err := os.ReadFile(os.Getenv("SSNTP_BENCH_CERT"))
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(os.Getenv("SSNTP_BENCH_CA"))
	if err != nil {
		return err
	}
	cr.anchor, cr.ca = b, ca
	cnt := &counter{reached: make(chan struct{})}
	srv, port, err := startServer(cr, cnt)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println(port)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "rss":
			fmt.Println(settledRSS())
		case "heap":
			writeHeap("server")
			fmt.Println("ok")
		}
	}
	return nil
}

// settledRSS returns resident memory after the garbage collector has run
// and returned what it can, so the figure is the live cost.
func settledRSS() int64 {
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// writeHeap saves a heap profile when SSNTP_BENCH_HEAP names a path
// prefix, to see what an idle connection holds.
func writeHeap(side string) {
	prefix := os.Getenv("SSNTP_BENCH_HEAP")
	if prefix == "" {
		return
	}
	f, err := os.Create(prefix + "." + side)
	if err != nil {
		return
	}
	defer f.Close()
	runtime.GC()
	_ = pprof.WriteHeapProfile(f)
}
