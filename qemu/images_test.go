package qemu

import (
	"errors"
	"reflect"
	"testing"
)

func TestOverlayArgs(t *testing.T) {
	tests := []struct {
		name string
		o    OverlayOptions
		want []string
	}{
		{"defaults", OverlayOptions{}, []string{"create", "-f", "qcow2", "-F", "qcow2", "-b", "/img/base", "/vm/image.qcow2"}},
		{"raw base, sized", OverlayOptions{BackingFormat: "raw", SizeMB: 2048},
			[]string{"create", "-f", "qcow2", "-F", "raw", "-b", "/img/base", "/vm/image.qcow2", "2048M"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := overlayArgs("/img/base", "/vm/image.qcow2", tc.o); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestISOTool(t *testing.T) {
	only := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, m := range names {
				if m == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	tests := []struct {
		name     string
		have     []string
		wantTool string
		wantArgs []string
	}{
		{"genisoimage preferred", []string{"genisoimage", "xorriso"}, "/usr/bin/genisoimage",
			[]string{"-quiet", "-R", "-J", "-V", "config-2", "-o", "/vm/seed.iso", "/vm/stage"}},
		{"xorriso", []string{"xorriso"}, "/usr/bin/xorriso",
			[]string{"-as", "mkisofs", "-quiet", "-R", "-J", "-V", "config-2", "-o", "/vm/seed.iso", "/vm/stage"}},
		{"genisoimage", []string{"genisoimage"}, "/usr/bin/genisoimage",
			[]string{"-quiet", "-R", "-J", "-V", "config-2", "-o", "/vm/seed.iso", "/vm/stage"}},
		{"mkisofs", []string{"mkisofs"}, "/usr/bin/mkisofs",
			[]string{"-quiet", "-R", "-J", "-V", "config-2", "-o", "/vm/seed.iso", "/vm/stage"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tool, prefix, err := isoTool(only(tc.have...))
			if err != nil || tool != tc.wantTool {
				t.Fatalf("isoTool = %q, %v", tool, err)
			}
			if got := isoArgs(prefix, "/vm/seed.iso", "/vm/stage"); !reflect.DeepEqual(got, tc.wantArgs) {
				t.Errorf("args %q, want %q", got, tc.wantArgs)
			}
		})
	}
	if _, _, err := isoTool(only()); !errors.Is(err, ErrNoISOTool) {
		t.Errorf("no tool: %v", err)
	}
}

func TestParseVirtualSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{`{"virtual-size": 907018240, "filename": "x"}`, 907018240, false},
		{`{"filename": "x"}`, 0, true},
		{`virtual size: 865M (907018240 bytes)`, 0, true},
		{`{"virtual-size": 18446744073709551615}`, 0, true},
	}
	for _, tc := range tests {
		got, err := parseVirtualSize([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseVirtualSize(%s) = %d, %v", tc.in, got, err)
		}
	}
}
