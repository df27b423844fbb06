package payloads

// Stat is the STATS command payload (COMMAND STATS), flat: a launcher's
// report on its node and instances, broadcast by the scheduler to
// Controllers. Call Init before decoding to get the receivers' −1 defaults.
type Stat struct {
	NodeUUID        string         `yaml:"node_uuid"`
	Status          string         `yaml:"status"` // SSNTP status name: READY, FULL, OFFLINE
	MemTotalMB      int            `yaml:"mem_total_mb"`
	MemAvailableMB  int            `yaml:"mem_available_mb"`
	DiskTotalMB     int            `yaml:"disk_total_mb"`
	DiskAvailableMB int            `yaml:"disk_available_mb"`
	Load            int            `yaml:"load"` // 1-minute load average; −1 unknown
	CpusOnline      int            `yaml:"cpus_online"`
	NodeHostName    string         `yaml:"hostname"`
	Networks        []NetworkStat  `yaml:"networks"`
	Instances       []InstanceStat `yaml:"instances"`
}

// NetworkStat is one network interface of the node.
type NetworkStat struct {
	NodeIP  string `yaml:"ip"`
	NodeMAC string `yaml:"mac"`
}

// InstanceStat reports one instance. −1 means unknown in the numeric
// fields.
type InstanceStat struct {
	InstanceUUID  string   `yaml:"instance_uuid"`
	State         string   `yaml:"state"`    // InstancePending, InstanceActive, InstanceExited
	SSHIP         string   `yaml:"ssh_ip"`   // CNCI IP to ssh through; "" for CNCIs
	SSHPort       int      `yaml:"ssh_port"` // 0 for CNCIs
	MemoryUsageMB int      `yaml:"memory_usage_mb"`
	DiskUsageMB   int      `yaml:"disk_usage_mb"`
	CPUUsage      int      `yaml:"cpu_usage"` // 0–100, normalised to the VCPUs
	Volumes       []string `yaml:"volumes"`
}

// Init sets every node-level numeric field to −1 (unknown), as receivers do
// before decoding so that missing keys stay −1.
func (s *Stat) Init() {
	s.MemTotalMB = -1
	s.MemAvailableMB = -1
	s.DiskTotalMB = -1
	s.DiskAvailableMB = -1
	s.Load = -1
	s.CpusOnline = -1
}
