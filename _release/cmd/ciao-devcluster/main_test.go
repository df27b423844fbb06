package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/_release/devcluster"
)

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	cmd, cfg, err := parseFlags([]string{"up", "-state-dir", "/var/lib/x-dev", "-api-port", "18774", "-network", "off"}, &stderr)
	if err != nil || cmd != "up" || cfg.StateDir != "/var/lib/x-dev" || cfg.APIPort != 18774 || cfg.Network != "off" {
		t.Fatalf("%s %+v %v", cmd, cfg, err)
	}
	for _, args := range [][]string{nil, {"-state-dir", "/x"}} {
		if _, _, err := parseFlags(args, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: %v, want usage", args, err)
		}
	}
	for args, want := range map[string]string{
		"launch":                      "unknown command",
		"up -state-dir /":             "too close to /",
		"down -network maybe":         "network",
		"up extra":                    "unexpected arguments",
		"status -scheduler-port 8774": "must differ",
	} {
		_, _, err := parseFlags(strings.Fields(args), &stderr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %q", args, err, want)
		}
	}
	if _, _, err := parseFlags([]string{"up", "-accel", "xen"}, &stderr); !errors.Is(err, devcluster.ErrConfig) {
		t.Errorf("-accel xen: %v", err)
	}
}
