package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimal is the README's minimal configuration; launchers' keys that are
// missing get their defaults.
const minimal = `configure:
  scheduler:
    storage_uri: /etc/ciao/configuration.yaml
  controller:
    compute_ca: /etc/pki/ciao/compute_ca.pem
    compute_cert: /etc/pki/ciao/compute_key.pem
    identity_user: controller
    identity_password: ciao
  launcher:
    compute_net: [192.168.1.0/24]
    mgmt_net: [192.168.1.0/24]
  image_service:
    url: http://glance.example.com:9292
  identity_service:
    url: http://keystone.example.com:35357
`

// fullValid is the exact normalised form (tooling.md §4.2).
const fullValid = `configure:
  scheduler:
    storage_uri: /etc/ciao/configuration.yaml
  storage:
    ceph_id: ""
  controller:
    volume_port: 8776
    compute_port: 8774
    compute_ca: /etc/pki/ciao/compute_ca.pem
    compute_cert: /etc/pki/ciao/compute_key.pem
    identity_user: controller
    identity_password: ciao
  launcher:
    compute_net:
    - 192.168.1.0/24
    mgmt_net:
    - 192.168.1.0/24
    disk_limit: true
    mem_limit: true
  image_service:
    type: glance
    url: http://glance.example.com:9292
  identity_service:
    type: keystone
    url: http://keystone.example.com:35357
`

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "configuration.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	got, err := Load("file://" + write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != fullValid {
		t.Fatalf("got\n%s\nwant\n%s", got, fullValid)
	}
	// Normalising the normal form changes nothing.
	again, err := Normalise(got)
	if err != nil || string(again) != fullValid {
		t.Fatalf("second pass: %v\n%s", err, again)
	}
}

func TestLoadKeepsExplicitValues(t *testing.T) {
	// Sections may come in any order; the output is in schema order.
	got, err := Load("file://" + write(t, minimal+"  storage:\n    ceph_id: ciao\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "  storage:\n    ceph_id: ciao\n"
	if !strings.Contains(string(got), want) {
		t.Fatalf("ceph_id lost:\n%s", got)
	}
	got, err = Normalise([]byte(minimal + "  controller_extra: 1\n"))
	if err != nil || string(got) != fullValid {
		t.Fatalf("unknown keys should be dropped: %v\n%s", err, got)
	}
}

func TestLoadErrors(t *testing.T) {
	missing := `configure:
  scheduler:
    storage_uri: /etc/ciao/configuration.yaml
`
	malformed := "malformed: [\n"
	notConfigure := "scheduler:\n  storage_uri: /x\n"
	tests := []struct {
		name string
		uri  string
		want error
	}{
		{"http scheme", "http://example.com/configuration.yaml", ErrScheme},
		{"no scheme", "/etc/ciao/configuration.yaml", ErrScheme},
		{"empty path", "file://", ErrEmptyPath},
		{"missing keys", "file://" + write(t, missing), ErrInvalid},
		{"malformed", "file://" + write(t, malformed), ErrInvalid},
		{"no configure section", "file://" + write(t, notConfigure), ErrInvalid},
		{"empty file", "file://" + write(t, ""), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.uri)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load(%q) = %v, want %v", tc.uri, err, tc.want)
			}
		})
	}
	if _, err := Load("file:///nonexistent/configuration.yaml"); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("missing file: %v", err)
	}
}
