package main

import (
	"context"
	"flag"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-scheduler/internal/placement"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

func TestParseFlags(t *testing.T) {
	parse := func(args ...string) error {
		fs := flag.NewFlagSet("ciao-scheduler", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, _, err := parseFlags(fs, args)
		return err
	}
	fs := flag.NewFlagSet("ciao-scheduler", flag.ContinueOnError)
	cfg, opt, err := parseFlags(fs, []string{"-cert", "c.pem", "-cacert", "ca.pem", "-listen", "127.0.0.1:9999",
		"-metrics-addr", ":9102", "-policy", "spread", "-heartbeat", "-cpuprofile", "p.out", "-configuration-uri", "file:///x.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cert != "c.pem" || cfg.CACert != "ca.pem" || cfg.Listen != "127.0.0.1:9999" || cfg.MetricsAddr != ":9102" ||
		cfg.Policy != placement.Spread || !cfg.Heartbeat || opt.cpuProfile != "p.out" || cfg.ConfigURI != "file:///x.yaml" {
		t.Fatalf("flags not applied: %+v %+v", cfg, opt)
	}
	fs = flag.NewFlagSet("ciao-scheduler", flag.ContinueOnError)
	cfg, opt, err = parseFlags(fs, nil)
	if err != nil || cfg.Listen != ":8888" || cfg.MetricsAddr != "" || cfg.Policy != placement.FirstFit ||
		cfg.Cert != "/etc/pki/ciao/cert-Scheduler-localhost.pem" || cfg.CACert != "/etc/pki/ciao/CAcert-server-localhost.pem" ||
		cfg.ConfigURI != "file:///etc/ciao/configuration.yaml" || opt.gcPercent != 400 || opt.memoryLimit != 768<<20 {
		t.Fatalf("defaults: %+v %+v, %v", cfg, opt, err)
	}
	fs = flag.NewFlagSet("ciao-scheduler", flag.ContinueOnError)
	_, opt, err = parseFlags(fs, []string{"-memory-limit", "2GiB", "-gc-percent", "150"})
	if err != nil || opt.memoryLimit != 2<<30 || opt.gcPercent != 150 {
		t.Fatalf("GC flags: %+v, %v", opt, err)
	}
	for in, want := range map[string]int64{"off": 0, "0": 0, "1024": 1024, "768MiB": 768 << 20, "4KiB": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range [][]string{{"-policy", "best"}, {"-listen", "nope"}, {"extra"}, {"-cert", ""}, {"-memory-limit", "lots"}, {"-memory-limit", "-5MiB"}} {
		if parse(bad...) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRun starts the daemon as main does, with certificate files, sees a
// client connect and stops it by cancelling the context.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	certs := testutil.TestCerts(t)
	ca, cert := certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	fs := flag.NewFlagSet("ciao-scheduler", flag.ContinueOnError)
	cfg, opt, err := parseFlags(fs, []string{"-cert", cert, "-cacert", ca, "-listen", "127.0.0.1:" + strconv.Itoa(port),
		"-configuration-uri", "file://" + dir + "/missing.yaml", "-cpuprofile", dir + "/cpu.out"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, opt) }()

	ccfg := certs.Config(t, ssntp.AGENT)
	ccfg.Port = port
	ccfg.BackoffUnit = 10 * time.Millisecond
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	cl, err := ssntp.Dial(dctx, ccfg, nopClient{})
	if err != nil {
		cancel()
		<-done
		t.Fatalf("dialling the scheduler: %v", err)
	}
	cl.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

type nopClient struct{}

func (nopClient) ConnectNotify()                            {}
func (nopClient) DisconnectNotify()                         {}
func (nopClient) StatusNotify(ssntp.Status, *ssntp.Frame)   {}
func (nopClient) CommandNotify(ssntp.Command, *ssntp.Frame) {}
func (nopClient) EventNotify(ssntp.Event, *ssntp.Frame)     {}
func (nopClient) ErrorNotify(ssntp.Error, *ssntp.Frame)     {}
