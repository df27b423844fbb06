package main

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "-controller is required"},
		{[]string{"-controller", "ftp://ctl"}, "must be http(s)"},
		{[]string{"-controller", "https://ctl:8774", "-cert", "c.pem"}, "-cert and -key go together"},
		{[]string{"-controller", "https://ctl:8774", "extra"}, "unexpected arguments"},
		{[]string{"-controller", "https://ctl:8774", "-request-timeout", "0s"}, "timeout must be > 0"},
		{[]string{"-controller", "https://ctl:8774"}, ""},
	} {
		fs := flag.NewFlagSet("ciao-webui", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg, err := parseFlags(fs, tc.args)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
		case tc.err == "" && cfg.Listen != DefaultListen:
			t.Errorf("default listen %q", cfg.Listen)
		}
	}
}

// TestRun starts the daemon in-process with a generated certificate,
// serves the UI and refuses an unsigned-in session, then stops cleanly
// on cancel with no goroutine left behind.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := newConfig()
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg.Server.ControllerURL = "https://127.0.0.1:1" // nothing listens: errors are words
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, cfg) }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the generated certificate
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var resp *http.Response
	waitFor(t, "the UI", 20*time.Second, func() bool {
		var err error
		resp, err = client.Get("https://" + cfg.Listen + "/")
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, err := client.Get("https://" + cfg.Listen + "/api/v2.1/t/servers/detail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a session: %d", resp.StatusCode)
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("run: %v", err)
	}
}
