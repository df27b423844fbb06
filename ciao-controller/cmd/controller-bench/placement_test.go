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

// TestOptionsValidate: each bad option is refused with an error naming
// it; the defaults pass.
func TestOptionsValidate(t *testing.T) {
	good := options{agents: "process", launchers: 1, instances: 1, clients: 1, creates: 1, batch: 1, launcherGOMAXPROCS: 1}
	if err := good.validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for _, c := range []struct {
		change func(*options)
		want   string
	}{
		{func(o *options) { o.agents = "heavy" }, "-agents"},
		{func(o *options) { o.launcherNice = 20 }, "-launcher-nice"},
		{func(o *options) { o.launcherNice = -1 }, "-launcher-nice"},
		{func(o *options) { o.launcherCPUShares = 1 }, "-launcher-cpu-shares"},
		{func(o *options) { o.launcherCPUShares = 262145 }, "-launcher-cpu-shares"},
		{func(o *options) { o.launcherGOMAXPROCS = -1 }, "-launcher-gomaxprocs"},
		{func(o *options) { o.launcherGOGC = "fast" }, "-launcher-gogc"},
		{func(o *options) { o.launcherGOGC = "-5" }, "-launcher-gogc"},
		{func(o *options) { o.batch = 0 }, "counts must be positive"},
		{func(o *options) { o.launchers = -1 }, "counts must be positive"},
	} {
		o := good
		c.change(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", o, err, c.want)
		}
	}
	for _, g := range []string{"", "off", "50"} {
		o := good
		o.launcherGOGC = g
		if err := o.validate(); err != nil {
			t.Errorf("-launcher-gogc %q: %v", g, err)
		}
	}
}
