package devcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderedUnitsVerify renders the dev cluster's units and target and
// has systemd check them (with the binaries present, as systemd wants).
func TestRenderedUnitsVerify(t *testing.T) {
	c := testConfig(t)
	if err := os.MkdirAll(c.Path("bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	ds := c.Daemons(false)
	dir := t.TempDir()
	var files []string
	for _, d := range ds {
		if err := os.WriteFile(d.Path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		text := RenderUnit(d, c.Path("logs", d.Name+".log"))
		u, err := ParseUnit(text)
		if err != nil {
			t.Fatalf("%s: %v\n%s", d.Name, err, text)
		}
		svc := u["Service"]
		if svc["Restart"][0] != "always" || svc["RestartSec"][0] != "1" || !strings.HasPrefix(svc["ExecStart"][0], d.Path+" ") {
			t.Errorf("%s: service section %v", d.Name, svc)
		}
		if (len(svc["KillMode"]) > 0 && svc["KillMode"][0] == "process") != d.KeepChildren {
			t.Errorf("%s: KillMode %v, keep children %v", d.Name, svc["KillMode"], d.KeepChildren)
		}
		for _, a := range d.After {
			if !strings.Contains(u["Unit"]["After"][0], "ciao-dev-"+a+".service") {
				t.Errorf("%s is not ordered after %s: %v", d.Name, a, u["Unit"]["After"])
			}
		}
		f := filepath.Join(dir, UnitName(d))
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	target := filepath.Join(dir, TargetName)
	if err := os.WriteFile(target, []byte(RenderTarget(ds)), 0o644); err != nil {
		t.Fatal(err)
	}
	err := VerifyUnits(context.Background(), append(files, target)...)
	if errors.Is(err, ErrNoSystemdAnalyze) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestQuoteArg(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "/a/b", "a b": `"a b"`, `x"$%\`: `"x\"$$%%\\"`, "": `""`} {
		if got := quoteArg(in); got != want {
			t.Errorf("quoteArg(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseUnitRejectsGarbage(t *testing.T) {
	for _, text := range []string{"Key=value\n", "[Service]\nno equals sign\n"} {
		if _, err := ParseUnit(text); err == nil {
			t.Errorf("ParseUnit(%q) accepted it", text)
		}
	}
}
