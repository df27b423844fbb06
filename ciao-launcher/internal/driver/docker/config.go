package docker

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/process"
)

// Labels put on every container. LabelInstance lets a restarted launcher
// find a container whose id it lost; LabelRoot scopes a hard reset to the
// containers of one launcher's state directory, so that two launchers (or
// two test packages) on one engine never remove each other's containers.
const (
	LabelInstance = "ciao.instance_uuid"
	LabelRoot     = "ciao.instances_root"
)

// minMemMB is the smallest memory limit the engine accepts (6 MiB).
const minMemMB = 6

// ContainerName is the name of an instance's container. The prefix keeps
// ciao's containers apart from the node's others in `docker ps`.
func ContainerName(instanceUUID string) string { return "ciao-" + instanceUUID }

// containerSpec is what ContainerCreate is given for an instance.
type containerSpec struct {
	Name   string
	Config *container.Config
	Host   *container.HostConfig
}

// containerConfig maps a START to a container. root is the launcher's
// instances directory (LabelRoot); hostCPUs bounds NanoCPUs because the
// engine refuses more CPUs than the host has. Errors wrap ErrBadSpec.
func containerConfig(spec driver.Spec, root string, hostCPUs int) (containerSpec, error) {
	if spec.InstanceUUID == "" {
		return containerSpec{}, fmt.Errorf("%w: no instance uuid", driver.ErrBadSpec)
	}
	if strings.TrimSpace(spec.Image) == "" {
		return containerSpec{}, fmt.Errorf("%w: no docker_image", driver.ErrBadSpec)
	}
	if spec.VCPUs < 0 || spec.MemMB < 0 {
		return containerSpec{}, fmt.Errorf("%w: negative vcpus %d or mem_mb %d", driver.ErrBadSpec, spec.VCPUs, spec.MemMB)
	}
	if spec.MemMB > 0 && spec.MemMB < minMemMB {
		return containerSpec{}, fmt.Errorf("%w: mem_mb %d is below the %d MB a container needs", driver.ErrBadSpec, spec.MemMB, minMemMB)
	}
	cfg := &container.Config{
		Hostname: hostname(spec),
		Image:    spec.Image,
		Cmd:      command(spec),
		Labels:   map[string]string{LabelInstance: spec.InstanceUUID, LabelRoot: root},
	}
	host := &container.HostConfig{}
	if spec.VCPUs > 0 {
		cpus := spec.VCPUs
		if hostCPUs > 0 && cpus > hostCPUs {
			glog.V(1).Infof("docker: %s asks for %d vcpus, the node has %d", spec.InstanceUUID, cpus, hostCPUs)
			cpus = hostCPUs
		}
		host.NanoCPUs = int64(cpus) * 1e9
	}
	if spec.MemMB > 0 {
		host.Memory = int64(spec.MemMB) << 20
	}
	if !spec.Network || spec.VnicPeer != "" {
		// A tenant VNIC is moved in once the container runs.
		host.NetworkMode = "none"
	}
	return containerSpec{Name: ContainerName(spec.InstanceUUID), Config: cfg, Host: host}, nil
}

// command is the container command: the first cloud-init runcmd entry if
// the user data has a usable one, else nil (the image's default).
func command(spec driver.Spec) []string {
	if len(spec.UserData) == 0 {
		return nil
	}
	argv, err := process.Command(spec.UserData)
	if err != nil {
		glog.V(1).Infof("docker: %s runs the image's default command: %v", spec.InstanceUUID, err)
		return nil
	}
	return argv
}

// hostname is the metadata's hostname, else the instance uuid (§8.2).
func hostname(spec driver.Spec) string {
	var md struct {
		Hostname string `json:"hostname"`
	}
	if json.Unmarshal(spec.MetaData, &md) == nil && md.Hostname != "" && len(md.Hostname) <= 63 {
		return md.Hostname
	}
	if len(spec.InstanceUUID) > 63 {
		return spec.InstanceUUID[:63]
	}
	return spec.InstanceUUID
}
