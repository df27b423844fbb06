package client

import "time"

// Link is the {id, links} object of a server's flavor and image.
type Link struct {
	ID    string `json:"id"`
	Links []any  `json:"links"`
}

// PrivateAddress is one element of addresses.private.
type PrivateAddress struct {
	Addr               string `json:"addr"`
	OSEXTIPSMACMacAddr string `json:"OS-EXT-IPS-MAC:mac_addr"`
	OSEXTIPSType       string `json:"OS-EXT-IPS:type"`
	Version            int    `json:"version"`
}

// Addresses holds a server's addresses.
type Addresses struct {
	Private []PrivateAddress `json:"private"`
}

// Server is a server-details record (controller §6.2.9). The Go field
// names are part of ciao-cli's -f template interface (cli.md §9).
type Server struct {
	Addresses                        Addresses `json:"addresses"`
	Created                          time.Time `json:"created"`
	Flavor                           Link      `json:"flavor"`
	HostID                           string    `json:"hostId"`
	ID                               string    `json:"id"`
	Image                            Link      `json:"image"`
	KeyName                          string    `json:"key_name"`
	Links                            []any     `json:"links"`
	Name                             string    `json:"name"`
	AccessIPv4                       string    `json:"accessIPv4"`
	AccessIPv6                       string    `json:"accessIPv6"`
	ConfigDrive                      string    `json:"config_drive"`
	OSDCFDiskConfig                  string    `json:"OS-DCF:diskConfig"`
	OSEXTAZAvailabilityZone          string    `json:"OS-EXT-AZ:availability_zone"`
	OSEXTSRVATTRHost                 string    `json:"OS-EXT-SRV-ATTR:host"`
	OSEXTSRVATTRHypervisorHostname   string    `json:"OS-EXT-SRV-ATTR:hypervisor_hostname"`
	OSEXTSRVATTRInstanceName         string    `json:"OS-EXT-SRV-ATTR:instance_name"`
	OSEXTSTSPowerState               int       `json:"OS-EXT-STS:power_state"`
	OSEXTSTSTaskState                string    `json:"OS-EXT-STS:task_state"`
	OSEXTSTSVMState                  string    `json:"OS-EXT-STS:vm_state"`
	OSSRVUSGLaunchedAt               time.Time `json:"OS-SRV-USG:launched_at"`
	OSSRVUSGTerminatedAt             time.Time `json:"OS-SRV-USG:terminated_at"`
	OsExtendedVolumesVolumesAttached []any     `json:"os-extended-volumes:volumes_attached"`
	Progress                         int       `json:"progress"`
	SecurityGroups                   []any     `json:"security_groups"`
	Status                           string    `json:"status"`
	HostStatus                       string    `json:"host_status"`
	TenantID                         string    `json:"tenant_id"`
	Updated                          time.Time `json:"updated"`
	UserID                           string    `json:"user_id"`
	SSHIP                            string    `json:"ssh_ip"`
	SSHPort                          int       `json:"ssh_port"`
}

// Instance states reported by the controller.
const (
	StatePending = "pending"
	StateActive  = "active"
	StateExited  = "exited"
)

// Flavor is a flavor-details record: a Ciao workload. Disk holds the
// workload's image UUID, as at the 2016 baseline.
type Flavor struct {
	OSFLVDISABLEDDisabled  bool   `json:"OS-FLV-DISABLED:disabled"`
	Disk                   string `json:"disk"`
	OSFLVEXTDATAEphemeral  int    `json:"OS-FLV-EXT-DATA:ephemeral"`
	OsFlavorAccessIsPublic bool   `json:"os-flavor-access:is_public"`
	ID                     string `json:"id"`
	Links                  []any  `json:"links"`
	Name                   string `json:"name"`
	RAM                    int    `json:"ram"`
	Swap                   string `json:"swap"`
	Vcpus                  int    `json:"vcpus"`
}

// Event is one entry of the controller's event log.
type Event struct {
	Timestamp time.Time `json:"time_stamp"`
	TenantID  string    `json:"tenant_id"`
	EventType string    `json:"type"`
	Message   string    `json:"message"`
}

// Tenant is one tenant (project).
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Quotas are a tenant's limits and usage; -1 means unlimited.
type Quotas struct {
	ID            string    `json:"id"`
	Timestamp     time.Time `json:"updated"`
	InstanceLimit int       `json:"instances_limit"`
	InstanceUsage int       `json:"instances_usage"`
	VCPULimit     int       `json:"cpus_limit"`
	VCPUUsage     int       `json:"cpus_usage"`
	MemLimit      int       `json:"ram_limit"`
	MemUsage      int       `json:"ram_usage"`
	DiskLimit     int       `json:"disk_limit"`
	DiskUsage     int       `json:"disk_usage"`
}
