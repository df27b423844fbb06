package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"))
}

const testUUID = "6f1c0e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"

func TestContainerConfig(t *testing.T) {
	base := driver.Spec{InstanceUUID: testUUID, Dir: "/var/lib/ciao/instances/" + testUUID, Image: "busybox:latest", Network: true}
	for _, tc := range []struct {
		name     string
		spec     func(*driver.Spec)
		hostCPUs int
		check    func(t *testing.T, cs containerSpec)
	}{
		{"defaults", nil, 4, func(t *testing.T, cs containerSpec) {
			if cs.Name != "ciao-"+testUUID || cs.Config.Image != "busybox:latest" || cs.Config.Cmd != nil {
				t.Errorf("name %q image %q cmd %q", cs.Name, cs.Config.Image, cs.Config.Cmd)
			}
			if cs.Config.Labels[LabelInstance] != testUUID || cs.Config.Labels[LabelRoot] != "/root" {
				t.Errorf("labels %v", cs.Config.Labels)
			}
			if cs.Host.NanoCPUs != 0 || cs.Host.Memory != 0 || cs.Host.NetworkMode != "" || cs.Config.Hostname != testUUID {
				t.Errorf("host config %+v, hostname %q", cs.Host.Resources, cs.Config.Hostname)
			}
		}},
		{"resources", func(s *driver.Spec) { s.VCPUs, s.MemMB = 2, 128 }, 4, func(t *testing.T, cs containerSpec) {
			if cs.Host.NanoCPUs != 2e9 || cs.Host.Memory != 128<<20 {
				t.Errorf("NanoCPUs %d Memory %d", cs.Host.NanoCPUs, cs.Host.Memory)
			}
		}},
		{"more vcpus than the host", func(s *driver.Spec) { s.VCPUs = 8 }, 2, func(t *testing.T, cs containerSpec) {
			if cs.Host.NanoCPUs != 2e9 {
				t.Errorf("NanoCPUs %d, want the host's 2 CPUs", cs.Host.NanoCPUs)
			}
		}},
		{"no network", func(s *driver.Spec) { s.Network = false }, 1, func(t *testing.T, cs containerSpec) {
			if cs.Host.NetworkMode != container.NetworkMode("none") {
				t.Errorf("network mode %q", cs.Host.NetworkMode)
			}
		}},
		{"runcmd list", func(s *driver.Spec) {
			s.UserData = []byte("#cloud-config\nruncmd:\n  - [ /bin/sleep, 60 ]\n  - [ ignored ]\n")
		}, 1, func(t *testing.T, cs containerSpec) {
			if strings.Join(cs.Config.Cmd, "|") != "/bin/sleep|60" {
				t.Errorf("cmd %q", cs.Config.Cmd)
			}
		}},
		{"runcmd string", func(s *driver.Spec) { s.UserData = []byte("runcmd:\n  - echo hi\n") }, 1, func(t *testing.T, cs containerSpec) {
			if strings.Join(cs.Config.Cmd, "|") != "/bin/sh|-c|echo hi" {
				t.Errorf("cmd %q", cs.Config.Cmd)
			}
		}},
		{"unusable runcmd keeps the image default", func(s *driver.Spec) { s.UserData = []byte("#cloud-config\nruncmd: [ {a: b} ]\n") }, 1, func(t *testing.T, cs containerSpec) {
			if cs.Config.Cmd != nil {
				t.Errorf("cmd %q", cs.Config.Cmd)
			}
		}},
		{"hostname from metadata", func(s *driver.Spec) { s.MetaData = []byte(`{"uuid":"x","hostname":"web-1"}`) }, 1, func(t *testing.T, cs containerSpec) {
			if cs.Config.Hostname != "web-1" {
				t.Errorf("hostname %q", cs.Config.Hostname)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := base
			if tc.spec != nil {
				tc.spec(&spec)
			}
			cs, err := containerConfig(spec, "/root", tc.hostCPUs)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cs)
		})
	}
	for name, mutate := range map[string]func(*driver.Spec){
		"no image":     func(s *driver.Spec) { s.Image = " " },
		"no uuid":      func(s *driver.Spec) { s.InstanceUUID = "" },
		"tiny memory":  func(s *driver.Spec) { s.MemMB = 4 },
		"negative cpu": func(s *driver.Spec) { s.VCPUs = -1 },
	} {
		spec := base
		mutate(&spec)
		if _, err := containerConfig(spec, "/root", 1); !errors.Is(err, driver.ErrBadSpec) {
			t.Errorf("%s: %v, want ErrBadSpec", name, err)
		}
	}
}

func TestApplyStats(t *testing.T) {
	var st container.StatsResponse
	st.MemoryStats.Usage = 300 << 10 // under a MiB still counts as 1 MB
	st.CPUStats.CPUUsage.TotalUsage = 1500000000
	s := driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}
	applyStats(&s, st)
	if s.MemMB != 1 || s.CPUTime.Seconds() != 1.5 {
		t.Errorf("%+v", s)
	}
	s = driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}
	applyStats(&s, container.StatsResponse{})
	if s.MemMB != -1 || s.CPUTime != -1 {
		t.Errorf("empty stats gave %+v", s)
	}
}
