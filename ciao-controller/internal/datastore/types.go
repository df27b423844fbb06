package datastore

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Sentinel errors. Compare with errors.Is; implementations wrap them with
// the step that failed.
var (
	// ErrNotFound: the tenant, workload, instance, CNCI, node, statistics
	// entry or list marker does not exist.
	ErrNotFound = errors.New("datastore: not found")
	// ErrExists: a record with the same id (or a conflicting address) is
	// already stored.
	ErrExists = errors.New("datastore: already exists")
	// ErrQuota: admitting the request would take a tenant over a limit
	// (spec §4.5: limit > 0 and usage + request > limit).
	ErrQuota = errors.New("datastore: over tenant limits")
	// ErrNoAddress: the tenant cannot get another private address (no free
	// host and no unclaimed /24 left in 172.16.0.0/12).
	ErrNoAddress = errors.New("datastore: no free address")
	// ErrInUse: the record is still referenced (a tenant with instances, a
	// workload used by instances).
	ErrInUse = errors.New("datastore: in use")
	// ErrInvalid: the argument is malformed (empty id, bad count, ...).
	ErrInvalid = errors.New("datastore: invalid argument")
)

// Resource names (spec §4.5). The store keeps limits and usage for any
// resource name; these are the ones the controller knows about.
const (
	ResInstances   = "instances"
	ResVCPUs       = "vcpus"
	ResMemMB       = "mem_mb"
	ResDiskMB      = "disk_mb"
	ResNetworkNode = "network_node"
)

// Resources lists the known resource names in their spec id order (1..5).
var Resources = []string{ResInstances, ResVCPUs, ResMemMB, ResDiskMB, ResNetworkNode}

// Instance states the controller sets itself; launchers may report others.
const (
	StatePending = "pending"
	StateActive  = "active"
	StateExited  = "exited"
)

// Event types (spec §4.12).
const (
	EventInfo  = "info"
	EventWarn  = "warn"
	EventError = "error"
)

// Tenant is a Keystone project known to the controller.
type Tenant struct {
	ID   string
	Name string // "" for auto-registered tenants
	// CNCIMAC is generated when the tenant is registered (spec §4.1) and
	// becomes the VNIC MAC of the tenant's CNCI.
	CNCIMAC   string
	CreatedAt time.Time
}

// Quota is one resource's limit and usage for a tenant. Limit -1 means
// no limit is set.
type Quota struct {
	Resource string
	Limit    int
	Usage    int
}

// RequestedResource is one default resource of a workload.
type RequestedResource struct {
	Type      string // resource name, e.g. ResVCPUs
	Value     int
	Mandatory bool
}

// Workload is a "flavor" (spec §4.4, §8).
type Workload struct {
	ID          string
	TenantID    string // "" = public, visible to every tenant
	Description string // "CNCI" marks the CNCI workload
	Filename    string
	FWType      string
	VMType      string
	ImageID     string
	ImageName   string
	Config      string // cloud-init text
	Internal    bool   // hidden from listings (CNCI)
	Defaults    []RequestedResource
	Storage     []WorkloadDisk // disks of an API-made workload (migration 0006)
}

// WorkloadDisk is one disk of a workload definition (the 2017 workloads
// API's storage item).
type WorkloadDisk struct {
	ID         string `json:"id,omitempty"` // an existing volume (refused: no block storage)
	SourceType string `json:"source_type"`  // "image"
	SourceID   string `json:"source_id"`
	Size       int    `json:"size,omitempty"` // GiB, 0 = the source's size
	Bootable   bool   `json:"bootable"`
	Ephemeral  bool   `json:"ephemeral"`
}

// IsCNCI reports whether the workload launches a CNCI: one of its defaults
// is a network_node resource (spec §4.3 step 5).
func (w Workload) IsCNCI() bool {
	for _, r := range w.Defaults {
		if r.Type == ResNetworkNode {
			return true
		}
	}
	return false
}

// WorkloadFilter selects workloads for Workloads.
type WorkloadFilter struct {
	// TenantID adds that tenant's private workloads to the public ones.
	// "" lists public workloads only.
	TenantID string
	// Internal includes internal workloads (the CNCI).
	Internal bool
}

// Instance is a tenant instance as tracked by the controller (spec §4.6).
type Instance struct {
	ID         string
	TenantID   string
	WorkloadID string
	Name       string // given at create ("" when none), not unique
	State      string
	NodeID     string // "" until a launcher reports it
	IP         string // "" for instances created without an address
	MAC        string
	SSHIP      string
	SSHPort    int
	Usage      map[string]int // resource name → value, from the workload defaults
	CreatedAt  time.Time
	// Deleting is when a DELETE was asked for the instance (MarkDeleting);
	// zero when none was.
	Deleting time.Time
}

// InstanceRequest asks CreateInstances for one new instance.
type InstanceRequest struct {
	ID         string
	TenantID   string
	WorkloadID string
	Name       string // the server name asked for at create
	// NoAddress skips private address allocation (CNCIs, -nonetwork).
	NoAddress bool
	// NoLimits skips the admission check (CNCIs are always admitted).
	NoLimits bool
}

// InstanceUpdate carries what a launcher reported about an instance.
type InstanceUpdate struct {
	ID      string
	State   string
	NodeID  string
	SSHIP   string
	SSHPort int
}

// InstanceQuery selects a page of instances, sorted by id.
type InstanceQuery struct {
	TenantID   string // required unless NodeID or WorkloadID is set
	NodeID     string // optional filter
	WorkloadID string // optional filter
	// Marker: start just after this instance id (offset is then ignored).
	// An unknown marker gives ErrNotFound.
	Marker string
	Offset int
	Limit  int // 0 = no limit
}

// InstancePage is one page of instances. Total counts the instances the
// page was taken from: all matches, or all matches after the marker
// (spec §6.2.2).
type InstancePage struct {
	Instances []Instance
	Total     int
}

// Address is a private tenant address (spec §4.9).
type Address struct {
	TenantID   string
	IP         string
	MAC        string
	Subnet     string // CIDR, e.g. 172.16.0.0/24
	InstanceID string // "" when allocated on its own
}

// CNCI is a tenant's concentrator instance (spec §4.3).
type CNCI struct {
	TenantID  string
	ID        string // instance UUID
	MAC       string
	IP        string // "" until ConcentratorInstanceAdded
	State     string
	UpdatedAt time.Time
}

// NodeStats is the node part of a STATS report.
type NodeStats struct {
	NodeID          string
	Hostname        string
	Status          string
	MemTotalMB      int
	MemAvailableMB  int
	DiskTotalMB     int
	DiskAvailableMB int
	Load            int
	CPUsOnline      int
	Time            time.Time // receive time
}

// InstanceStats is one instance entry of a STATS report.
type InstanceStats struct {
	InstanceID    string
	NodeID        string
	State         string
	SSHIP         string
	SSHPort       int
	MemoryUsageMB int
	DiskUsageMB   int
	CPUUsage      int
	Volumes       []string // not stored; reconciled by policy
	Time          time.Time
}

// StatsReport is one STATS command as received. Node is nil when the
// payload carried no node part (load == -1).
type StatsReport struct {
	NodeID    string
	Node      *NodeStats
	Instances []InstanceStats
	Time      time.Time // receive time; zero = now
}

// Event is one row of the event log.
type Event struct {
	ID       int64
	TenantID string
	Type     string
	Message  string
	Time     time.Time
}

// TraceHop is one SSNTP hop of a traced frame; a zero time is absent.
type TraceHop struct {
	NodeUUID string
	Role     string
	Tx, Rx   time.Time
}

// TraceFrame is one frame of a TraceReport.
type TraceFrame struct {
	Label   string
	Type    string
	Operand string
	Start   time.Time
	End     time.Time
	Hops    []TraceHop
}

// TraceSummary counts the frames stored under one label.
type TraceSummary struct {
	Label     string
	Instances int
}

// Address space (spec §4.9): 172.16.0.0/12 carved into /24 subnets,
// numbered (2nd octet << 8) | 3rd octet; hosts .2–.254.
const (
	firstSubnet  = 16 << 8     // 4096 = 172.16.0.x
	lastSubnet   = 31<<8 | 255 // 8191 = 172.31.255.x
	firstHost    = 2
	lastHost     = 254
	hostsPerNet  = lastHost - firstHost + 1
	subnetOctet1 = 172
)

func addrFor(tenantID string, subnet, host int) Address {
	ip := netip.AddrFrom4([4]byte{subnetOctet1, byte(subnet >> 8), byte(subnet), byte(host)})
	b := ip.As4()
	return Address{
		TenantID: tenantID,
		IP:       ip.String(),
		MAC:      fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]),
		Subnet:   subnetCIDR(subnet),
	}
}

func subnetCIDR(subnet int) string {
	return fmt.Sprintf("%d.%d.%d.0/24", subnetOctet1, subnet>>8, subnet&0xff)
}

// pickHost implements the allocation rule on a tenant's subnets: subnets
// is the ascending list of the tenant's subnet numbers with the hosts in
// use in each. It returns the subnet and host to use, and claim=true when
// a new subnet must be claimed (then subnet is 0 and the caller chooses).
func pickHost(subnets []int, used map[int]map[int]bool) (subnet, host int, claim bool) {
	for i := len(subnets) - 1; i >= 0; i-- {
		s := subnets[i]
		if len(used[s]) < hostsPerNet {
			for h := firstHost; h <= lastHost; h++ {
				if !used[s][h] {
					return s, h, false
				}
			}
		}
	}
	return 0, firstHost, true
}

// nextFreeSubnet returns the lowest subnet number not in claimed
// (ascending), or ErrNoAddress.
func nextFreeSubnet(claimed []int) (int, error) {
	want := firstSubnet
	for _, s := range claimed {
		if s < want {
			continue
		}
		if s > want {
			break
		}
		want++
	}
	if want > lastSubnet {
		return 0, fmt.Errorf("claim subnet: out of subnets: %w", ErrNoAddress)
	}
	return want, nil
}
