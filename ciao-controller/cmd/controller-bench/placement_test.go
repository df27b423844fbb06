package main

import (
	"os"
	"strings"
	"testing"
)

func TestApplyPlacement(t *testing.T) {
	_, shmErr := os.Stat("/dev/shm")
	shm := ""
	if shmErr == nil {
		shm = "/dev/shm"
	}
	cases := []struct {
		name       string
		o          options
		set        map[string]bool
		wantShares int
		wantDir    string
		bestEffort bool
	}{
		{"elsewhere defaults", options{placement: "elsewhere"}, nil, 2, shm, true},
		{"elsewhere keeps given shares", options{placement: "elsewhere", launcherCPUShares: 0},
			map[string]bool{"launcher-cpu-shares": true}, 0, shm, false},
		{"elsewhere keeps given state dir", options{placement: "elsewhere", launcherStateDir: "/var/tmp"},
			map[string]bool{"launcher-state-dir": true}, 2, "/var/tmp", true},
		{"shared", options{placement: "shared"}, nil, 0, "", false},
		{"shared with shares", options{placement: "shared", launcherCPUShares: 8},
			map[string]bool{"launcher-cpu-shares": true}, 8, "", false},
	}
	for _, c := range cases {
		o := c.o
		if err := applyPlacement(&o, c.set); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if o.launcherCPUShares != c.wantShares || o.launcherStateDir != c.wantDir || o.sharesBestEffort != c.bestEffort {
			t.Errorf("%s: shares %d dir %q best-effort %v, want %d %q %v", c.name,
				o.launcherCPUShares, o.launcherStateDir, o.sharesBestEffort, c.wantShares, c.wantDir, c.bestEffort)
		}
	}
	o := options{placement: "nearby"}
	if err := applyPlacement(&o, nil); err == nil || !strings.Contains(err.Error(), "elsewhere or shared") {
		t.Errorf("unknown placement: %v, want an error naming the choices", err)
	}
}
