package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
)

// TestUsageRetentionFlag: -usage-retention defaults to 90 days, is
// documented in -help, and a negative value is refused by name.
func TestUsageRetentionFlag(t *testing.T) {
	base := []string{"-httpscert", "h", "-httpskey", "k", "-tokens", "t"}
	cfg, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), base)
	if err != nil || cfg.UsageRetention != controller.DefaultUsageRetention || controller.DefaultUsageRetention != 90*24*time.Hour {
		t.Fatalf("default: %v %v", cfg.UsageRetention, err)
	}
	if cfg, err = parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(base, "-usage-retention", "0")); err != nil || cfg.UsageRetention != 0 {
		t.Fatalf("0: %v %v", cfg.UsageRetention, err)
	}
	if _, err := parseFlags(flag.NewFlagSet("t", flag.ContinueOnError), append(base, "-usage-retention", "-1h")); err == nil ||
		!strings.Contains(err.Error(), "-usage-retention") {
		t.Fatalf("negative: %v", err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	if _, err := parseFlags(fs, []string{"-help"}); err != flag.ErrHelp {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "-usage-retention") || !strings.Contains(out.String(), "2160h") {
		t.Fatalf("help:\n%s", out.String())
	}
}
