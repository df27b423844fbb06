package payloads

// Ready is the READY status payload (STATUS READY), flat. The scheduler
// places instances using MemAvailableMB. Call Init before decoding to get
// the receivers' −1 defaults.
type Ready struct {
	NodeUUID        string `yaml:"node_uuid"`
	MemTotalMB      int    `yaml:"mem_total_mb"`
	MemAvailableMB  int    `yaml:"mem_available_mb"`
	DiskTotalMB     int    `yaml:"disk_total_mb"`
	DiskAvailableMB int    `yaml:"disk_available_mb"`
	Load            int    `yaml:"load"`
	CpusOnline      int    `yaml:"cpus_online"`
}

// Init sets every numeric field to −1 (unknown), as receivers do before
// decoding so that missing keys stay −1.
func (r *Ready) Init() {
	r.MemTotalMB = -1
	r.MemAvailableMB = -1
	r.DiskTotalMB = -1
	r.DiskAvailableMB = -1
	r.Load = -1
	r.CpusOnline = -1
}
