package controller

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/uuid"
)

const (
	specImage  = "73a86d7e-93c0-480e-9c41-ab42f69b7799"
	specQEMU   = `{"description":"Ubuntu VM","fw_type":"efi","vm_type":"qemu","image_id":"` + specImage + `","requirements":{"vcpus":2,"mem_mb":512},"config":"#cloud-config\nruncmd:\n  - [ touch, /etc/bootdone ]\n"}`
	specDocker = `{"description":"Debian","vm_type":"docker","image_name":"debian:latest","requirements":{"vcpus":1,"mem_mb":64,"disk_mb":10},"config":"---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"top -b\" ]\n...\n"}`
	specDisk   = `{"description":"disk boot","vm_type":"qemu","requirements":{"vcpus":1,"mem_mb":128},"config":"#cloud-config\n","storage":[{"source_type":"image","source_id":"` + specImage + `","bootable":true,"ephemeral":true}]}`
)

// apiWorkloads are workloads as the workloads API builds them.
func apiWorkloads(t testing.TB) []datastore.Workload {
	t.Helper()
	var out []datastore.Workload
	for i, body := range []string{specQEMU, specDocker, specDisk} {
		s, err := ParseWorkloadSpec([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.Build([]string{"", "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"}[i%2])
		if err != nil {
			t.Fatal(err)
		}
		w.ID = uuid.Generate().String()
		out = append(out, w)
	}
	return out
}

// TestWorkloadSpecBuild: the accepted shapes become the workload the START
// needs (defaults, firmware, image, one cloud-init document).
func TestWorkloadSpecBuild(t *testing.T) {
	ws := apiWorkloads(t)
	q, d, k := ws[0], ws[1], ws[2]
	if q.VMType != "qemu" || q.FWType != "efi" || q.ImageID != specImage || q.TenantID != "" || len(q.Defaults) != 2 ||
		q.Defaults[1] != (datastore.RequestedResource{Type: datastore.ResMemMB, Value: 512, Mandatory: true}) ||
		q.Config != "---\n#cloud-config\nruncmd:\n  - [ touch, /etc/bootdone ]\n...\n" {
		t.Errorf("qemu: %+v", q)
	}
	if d.ImageName != "debian:latest" || d.FWType != "" || d.TenantID == "" || len(d.Defaults) != 3 || d.Defaults[2].Value != 10 ||
		d.Config != "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"top -b\" ]\n...\n" {
		t.Errorf("docker: %+v", d)
	}
	if k.ImageID != specImage || k.FWType != "legacy" || len(k.Storage) != 1 || !k.Storage[0].Bootable {
		t.Errorf("bootable disk: %+v", k)
	}
	s, _ := ParseWorkloadSpec([]byte(strings.Replace(specDocker, `"vm_type"`, `"fw_type":"legacy","vm_type"`, 1)))
	if w, err := s.Build(""); err != nil || w.FWType != "" {
		t.Errorf("docker with fw_type legacy: %+v %v, want it accepted without firmware", w, err)
	}
	if v := ViewOf(d); v.Visibility != "private" || v.Requirements != (WorkloadRequirements{1, 64, 10}) || v.ImageName != "debian:latest" {
		t.Errorf("view: %+v", v)
	}
}

// TestWorkloadSpecRefused: every refused definition says why.
func TestWorkloadSpecRefused(t *testing.T) {
	mod := func(from, old, new string) string {
		if !strings.Contains(from, old) {
			t.Fatalf("%q not in %s", old, from)
		}
		return strings.Replace(from, old, new, 1)
	}
	for _, c := range []struct{ body, want string }{
		{``, "empty body"},
		{`{"description":`, "malformed JSON"},
		{`[]`, "malformed JSON"},
		{specQEMU + `{}`, "data after"},
		{mod(specQEMU, `"description"`, `"descr"`), `unknown field "descr"`},
		{mod(specQEMU, `"vcpus":2`, `"vcpus":"2"`), "malformed JSON"},
		{mod(specQEMU, `"Ubuntu VM"`, `" "`), "description is required"},
		{mod(specQEMU, `"Ubuntu VM"`, `"a\u0007b"`), "printable"},
		{mod(specQEMU, `"Ubuntu VM"`, `"`+strings.Repeat("x", 257)+`"`), "at most 256"},
		{mod(specQEMU, `"qemu"`, `"kvm"`), `unknown vm_type "kvm"`},
		{mod(specQEMU, `"vm_type":"qemu",`, ``), "vm_type is required"},
		{mod(specQEMU, `"efi"`, `"bios"`), `unknown fw_type "bios"`},
		{mod(specQEMU, `"image_id":"`+specImage+`",`, ``), "qemu workload needs an image"},
		{mod(specQEMU, specImage, "nope"), "not a UUID"},
		{mod(specQEMU, `"fw_type"`, `"image_name":"x","fw_type"`), "image_name is for docker"},
		{mod(specDocker, `"image_name":"debian:latest",`, ``), "docker workload needs image_name"},
		{mod(specDocker, `debian:latest`, `debian latest`), "not an image reference"},
		{mod(specDocker, `"vm_type"`, `"fw_type":"bios","vm_type"`), "docker workload has no firmware"},
		{mod(specDocker, `"vm_type"`, `"image_id":"x","vm_type"`), "not a UUID"},
		{mod(specDocker, `"vm_type"`, `"storage":[{"source_type":"image","source_id":"`+specImage+`","bootable":true}],"vm_type"`), "takes no disks"},
		{mod(specQEMU, `"vcpus":2`, `"vcpus":0`), "vcpus 0 not in"},
		{mod(specQEMU, `"vcpus":2`, `"vcpus":-1`), "vcpus -1 not in"},
		{mod(specQEMU, `"vcpus":2`, `"vcpus":100000`), "vcpus 100000 not in"},
		{mod(specQEMU, `"mem_mb":512`, `"mem_mb":0`), "mem_mb 0 not in"},
		{mod(specQEMU, `"mem_mb":512`, `"mem_mb":-5`), "mem_mb -5 not in"},
		{mod(specQEMU, `"mem_mb":512`, `"mem_mb":512,"disk_mb":-1`), "disk_mb -1 not in"},
		{mod(specQEMU, `"requirements":{"vcpus":2,"mem_mb":512},`, ``), "vcpus 0 not in"},
		{mod(specQEMU, `"config":"#cloud-config\nruncmd:\n  - [ touch, /etc/bootdone ]\n"`, `"config":""`), "config (the cloud-init document) is required"},
		{mod(specQEMU, `runcmd:\n  - [ touch, /etc/bootdone ]`, `runcmd: [unclosed`), "config is not YAML"},
		{mod(specQEMU, `runcmd:\n  - [ touch, /etc/bootdone ]`, `a: b\n\tc: d`), "config is not YAML"},
		{mod(specQEMU, `runcmd:\n  - [ touch, /etc/bootdone ]`, `just text`), "not a cloud-config mapping"},
		{mod(specQEMU, `runcmd:\n  - [ touch, /etc/bootdone ]`, `a: 1\n---\nb: 2`), "more than one YAML document"},
		{mod(specQEMU, `runcmd:\n  - [ touch, /etc/bootdone ]`, `a: 1\n...\n# after`), "does not survive the START"},
		{mod(specDisk, `"source_type":"image"`, `"source_type":"volume"`), "need block storage"},
		{mod(specDisk, `"source_type":"image"`, `"source_type":"nfs"`), `source_type "nfs"`},
		{mod(specDisk, `"source_type":"image"`, `"source_type":"empty"`), "empty data disk needs block storage"},
		{mod(specDisk, `"source_type":"image"`, `"id":"v1","source_type":"image"`), "need block storage"},
		{mod(specDisk, `"bootable":true`, `"bootable":false`), "only a bootable image disk"},
		{mod(specDisk, `"ephemeral":true}`, `"ephemeral":true},{"source_type":"image","source_id":"`+specImage+`","bootable":true}`), "second bootable disk"},
		{mod(specDisk, `"ephemeral":true}`, `"ephemeral":true,"size":-1}`), "negative size"},
		{mod(specDisk, `"source_id":"`+specImage, `"source_id":"x`), "not an image UUID"},
		{mod(specDisk, `"vm_type":"qemu",`, `"vm_type":"qemu","image_id":"df3768da-31f5-4ba6-82f0-127a1a705169",`), "differ"},
	} {
		s, err := ParseWorkloadSpec([]byte(c.body))
		if err == nil {
			_, err = s.Build("")
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.body, err, c.want)
		}
	}
}

// FuzzWorkloadSpec: any body either is refused with ErrWorkloadSpec or
// builds a workload whose START composes, decodes back with its
// resources, hands the launcher its cloud-init whole, and whose fast
// START is ComposeStart's bytes.
func FuzzWorkloadSpec(f *testing.F) {
	for _, s := range []string{specQEMU, specDocker, specDisk, `{}`, `{"config":"a: [1"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := ParseWorkloadSpec(body)
		if err == nil {
			var w datastore.Workload
			if w, err = s.Build("1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"); err == nil {
				w.ID = uuid.Generate().String()
				checkAPIStart(t, w)
				return
			}
		}
		if err == nil || !strings.Contains(err.Error(), ErrWorkloadSpec.Error()) {
			t.Fatalf("refused without ErrWorkloadSpec: %v", err)
		}
	})
}

// checkAPIStart: w's START decodes back, carries w's config whole as the
// user-data, and the fast path (when taken) gives ComposeStart's bytes.
func checkAPIStart(t testing.TB, w datastore.Workload) {
	t.Helper()
	in := datastore.Instance{ID: uuid.Generate().String(), TenantID: w.TenantID, IP: "172.16.0.2", MAC: "02:00:ac:10:00:02"}
	if in.TenantID == "" {
		in.TenantID = uuid.Generate().String()
	}
	p, err := startPayload(w, in, datastore.CNCI{ID: uuid.Generate().String(), IP: "198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := payloads.DecodeStart(p)
	if err != nil || s.Start.InstanceUUID != in.ID || len(s.Start.RequestedResources) != len(w.Defaults) ||
		string(s.Start.VMType) != w.VMType {
		t.Fatalf("START of %+v does not decode back: %+v %v\n%s", w, s, err, p)
	}
	if _, ud, _, err := payloads.SplitStart(p); err != nil || string(ud) != w.Config {
		t.Fatalf("launcher gets user-data %q (%v), want %q", ud, err, w.Config)
	}
	if w.VMType == "docker" && s.Start.DockerImage != w.ImageName {
		t.Fatalf("docker_image %q, want %q", s.Start.DockerImage, w.ImageName)
	}
	if slow := slowStart(t, w, s.Start, payloads.StartMetadata{UUID: in.ID, Hostname: in.ID}); !bytes.Equal(p, slow) {
		t.Fatalf("START differs from ComposeStart's:\n%s\nwant:\n%s", p, slow)
	}
}

func TestAPIWorkloadStart(t *testing.T) {
	for _, w := range apiWorkloads(t) {
		checkAPIStart(t, w)
	}
}

// FuzzWorkloadConfig: for any cloud-init text and docker image name, the
// definition is refused with ErrWorkloadSpec or its START hands the
// launcher that cloud-init whole (checkAPIStart).
func FuzzWorkloadConfig(f *testing.F) {
	f.Add("#cloud-config\nruncmd:\n  - [ ls ]\n", "debian:latest")
	f.Add("---\na: 1\n...\n", "ubuntu")
	f.Add("start:\n  a: 1\n", "x:y")
	f.Add("a: |\n  ---\n  ...\n", "'q'")
	f.Fuzz(func(t *testing.T, config, image string) {
		s, err := ParseWorkloadSpec([]byte(specDocker))
		if err != nil {
			t.Fatal(err)
		}
		s.Config, s.ImageName = config, image
		w, err := s.Build("")
		if err != nil {
			if !strings.Contains(err.Error(), ErrWorkloadSpec.Error()) {
				t.Fatalf("refused without ErrWorkloadSpec: %v", err)
			}
			return
		}
		w.ID = uuid.Generate().String()
		checkAPIStart(t, w)
	})
}
