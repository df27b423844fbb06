package payloads

import "fmt"

// Configure is the CONFIGURE payload: the COMMAND CONFIGURE payload, the
// CONNECTED status payload, and (per the 2016 README, never sent) the
// InvalidConfiguration error payload.
type Configure struct {
	Configure ConfigurePayload `yaml:"configure"`
}

// ConfigurePayload is the cluster configuration, six sections in wire
// order.
type ConfigurePayload struct {
	Scheduler       ConfigureScheduler  `yaml:"scheduler"`
	Storage         ConfigureStorage    `yaml:"storage"`
	Controller      ConfigureController `yaml:"controller"`
	Launcher        ConfigureLauncher   `yaml:"launcher"`
	ImageService    ConfigureService    `yaml:"image_service"`
	IdentityService ConfigureService    `yaml:"identity_service"`
}

// ConfigureScheduler is the scheduler section.
type ConfigureScheduler struct {
	ConfigStorageURI string `yaml:"storage_uri"`
}

// ConfigureStorage is the storage section.
type ConfigureStorage struct {
	CephID string `yaml:"ceph_id"`
}

// ConfigureController is the controller section.
type ConfigureController struct {
	VolumePort       int    `yaml:"volume_port"`
	ComputePort      int    `yaml:"compute_port"`
	HTTPSCACert      string `yaml:"compute_ca"`
	HTTPSKey         string `yaml:"compute_cert"`
	IdentityUser     string `yaml:"identity_user"`
	IdentityPassword string `yaml:"identity_password"`
}

// ConfigureLauncher is the launcher section.
type ConfigureLauncher struct {
	ComputeNetwork    []string `yaml:"compute_net"` // CIDRs or IPs
	ManagementNetwork []string `yaml:"mgmt_net"`
	DiskLimit         bool     `yaml:"disk_limit"`
	MemoryLimit       bool     `yaml:"mem_limit"`
}

// ConfigureService is the image_service or identity_service section.
type ConfigureService struct {
	Type ServiceType `yaml:"type"`
	URL  string      `yaml:"url"`
}

// Defaults applied when the scheduler loads its configuration file.
const (
	DefaultVolumePort  = 8776
	DefaultComputePort = 8774
)

// InitDefaults sets the defaults the scheduler applies when loading its
// configuration file: call it before decoding the file so that only missing
// keys keep them. A CONFIGURE command from a Controller gets no defaults.
func (c *Configure) InitDefaults() {
	p := &c.Configure
	p.Controller.VolumePort = DefaultVolumePort
	p.Controller.ComputePort = DefaultComputePort
	p.Launcher.DiskLimit = true
	p.Launcher.MemoryLimit = true
	p.ImageService.Type = ServiceGlance
	p.IdentityService.Type = ServiceKeystone
}

// Validate makes the scheduler's checks on its configuration file: the keys
// it requires must be non-empty. A missing storage.ceph_id is only a
// warning there and is not checked. The error wraps ErrInvalidData and
// names the first missing key.
func (p *ConfigurePayload) Validate() error {
	required := []struct{ key, value string }{
		{"scheduler.storage_uri", p.Scheduler.ConfigStorageURI},
		{"controller.compute_ca", p.Controller.HTTPSCACert},
		{"controller.compute_cert", p.Controller.HTTPSKey},
		{"controller.identity_user", p.Controller.IdentityUser},
		{"controller.identity_password", p.Controller.IdentityPassword},
		{"identity_service.url", p.IdentityService.URL},
	}
	for _, r := range required {
		if r.value == "" {
			return fmt.Errorf("%w: configure: missing %s", ErrInvalidData, r.key)
		}
	}
	return nil
}
