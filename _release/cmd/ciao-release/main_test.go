package main

import (
	"errors"
	"io"
	"testing"

	"github.com/ciao-project/ciao/_release/relnotes"
)

func TestFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-version", "v1.0.0"}, io.Discard); !errors.Is(err, relnotes.ErrVersion) {
		t.Errorf("-version v1.0.0: %v", err)
	}
	if _, err := parseFlags(nil, io.Discard); !errors.Is(err, relnotes.ErrVersion) {
		t.Errorf("no -version: %v", err)
	}
	if _, err := parseFlags([]string{"-version", "1.0.0", "extra"}, io.Discard); err == nil {
		t.Error("extra argument accepted")
	}
	c, err := parseFlags([]string{"-version", "1.0.0", "-out", "/tmp/d"}, io.Discard)
	if err != nil || c.OutDir != "/tmp/d" || c.Name() != "ciao-1.0.0-linux-amd64" {
		t.Errorf("%+v %v", c, err)
	}
}
