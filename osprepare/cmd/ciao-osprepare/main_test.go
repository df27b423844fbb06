package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/osprepare"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    []osprepare.Component
		dryRun  bool
		wantErr bool
	}{
		{nil, []osprepare.Component{osprepare.Launcher}, false, false},
		{[]string{"-component", "scheduler", "-dry-run"}, []osprepare.Component{osprepare.Scheduler}, true, false},
		{[]string{"-component=all"}, osprepare.Components(), false, false},
		{[]string{"-component", "webui"}, nil, false, true},
		{[]string{"extra"}, nil, false, true},
	}
	for _, tc := range tests {
		cfg, err := parseFlags(tc.args, io.Discard)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if err == nil && (!reflect.DeepEqual(cfg.components, tc.want) || cfg.dryRun != tc.dryRun) {
			t.Errorf("%q: got %+v", tc.args, cfg)
		}
	}
}

// TestRunDryRun exercises the real detection on the build host without
// installing anything.
func TestRunDryRun(t *testing.T) {
	if _, err := os.Stat("/etc/os-release"); err != nil {
		t.Skip("no /etc/os-release")
	}
	var out bytes.Buffer
	err := run(context.Background(), config{components: osprepare.Components(), dryRun: true}, &out,
		stdLogger{log.New(io.Discard, "", 0)})
	if errors.Is(err, osprepare.ErrUnsupportedDistro) {
		t.Skipf("unsupported host: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "present") {
		t.Fatalf("output %q", out.String())
	}
	t.Log(out.String())
}
