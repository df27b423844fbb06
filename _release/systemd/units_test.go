// Package systemd holds Ciao's systemd units, tmpfiles.d and sysusers.d
// snippets (installed by the release tarball); this test checks them.
package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/_release/devcluster"
)

var services = []string{"ciao-scheduler", "ciao-controller", "ciao-launcher", "ciao-webui"}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnitsAreSane parses every unit and checks the restart policy, the
// ordering, the users and the launcher's KillMode.
func TestUnitsAreSane(t *testing.T) {
	after := map[string]string{"ciao-controller": "ciao-scheduler.service", "ciao-launcher": "ciao-scheduler.service",
		"ciao-webui": "ciao-controller.service"}
	for _, s := range services {
		u, err := devcluster.ParseUnit(read(t, s+".service"))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		svc := u["Service"]
		exec := svc["ExecStart"]
		if len(exec) != 1 || !strings.HasPrefix(exec[0], "/usr/local/bin/"+s+" ") {
			t.Errorf("%s: ExecStart %q", s, exec)
		}
		if first(svc["Restart"]) != "on-failure" || first(svc["RestartSec"]) == "" {
			t.Errorf("%s: Restart %v RestartSec %v", s, svc["Restart"], svc["RestartSec"])
		}
		if first(u["Unit"]["PartOf"]) != "ciao.target" || first(u["Install"]["WantedBy"]) != "ciao.target" {
			t.Errorf("%s: not part of ciao.target", s)
		}
		if want := after[s]; want != "" && !strings.Contains(first(u["Unit"]["After"]), want) {
			t.Errorf("%s: not ordered after %s: %v", s, want, u["Unit"]["After"])
		}
		if s == "ciao-launcher" {
			if first(svc["KillMode"]) != "process" || first(svc["User"]) != "" {
				t.Errorf("launcher: KillMode %v User %v; want process, root", svc["KillMode"], svc["User"])
			}
		} else if first(svc["User"]) != "ciao" {
			t.Errorf("%s: runs as %v, want the ciao user", s, svc["User"])
		}
	}
	for _, f := range []string{"ciao.target", "ciao.conf", "ciao.sysusers"} {
		if strings.TrimSpace(read(t, f)) == "" {
			t.Errorf("%s is empty", f)
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestUnitsVerify has systemd-analyze check the units, with their
// /usr/local/bin binaries replaced by stand-ins in a temporary directory.
func TestUnitsVerify(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, name := range append(append([]string{}, services...), "ciao") {
		file := name + ".service"
		if name == "ciao" {
			file = "ciao.target"
		} else if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(read(t, file), "/usr/local/bin/", dir+"/")
		f := filepath.Join(dir, file)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	err := devcluster.VerifyUnits(context.Background(), files...)
	if errors.Is(err, devcluster.ErrNoSystemdAnalyze) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
}
