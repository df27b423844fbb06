package main

import (
	"flag"
	"io"
	"strings"
	"testing"
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
