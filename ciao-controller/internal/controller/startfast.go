package controller

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	yaml "gopkg.in/yaml.v2"
)

// Composing a START with yaml.v2 is a sizeable share of a create's CPU.
// Most of the START depends only on the workload, so that part is
// marshalled once per workload (by yaml.v2) and cached; the per-instance
// scalars (UUIDs, addresses, MAC) are written around it by hand when they
// have shapes yaml.v2 writes plain, and otherwise the whole START goes
// through payloads.ComposeStart. Either way the bytes are exactly
// ComposeStart's (TestFastStartMatchesComposeStart, FuzzFastStart).

// staticStart is the cached workload part of a START: its lines from
// image_uuid to estimated_resources, indented under "start:".
type staticStart struct {
	block    string
	userData string
}

type workloadStatic struct {
	ImageUUID           string                       `yaml:"image_uuid"`
	DockerImage         string                       `yaml:"docker_image"`
	FWType              payloads.Firmware            `yaml:"fw_type"`
	InstancePersistence payloads.Persistence         `yaml:"persistence"`
	VMType              payloads.Hypervisor          `yaml:"vm_type"`
	RequestedResources  []payloads.RequestedResource `yaml:"requested_resources"`
	EstimatedResources  []payloads.EstimatedResource `yaml:"estimated_resources"`
}

// startCache maps a workload's cache key to its staticStart.
var startCache sync.Map

// staticKey is w's startCache key: everything staticFor reads.
func staticKey(w datastore.Workload) string {
	key := w.ID + "\x00" + w.ImageID + "\x00" + w.ImageName + "\x00" + w.FWType + "\x00" + w.VMType + "\x00" + w.Config
	for _, d := range w.Defaults {
		key += "\x00" + d.Type + "\x00" + strconv.Itoa(d.Value) + "\x00" + strconv.FormatBool(d.Mandatory)
	}
	return key
}

// forgetStatic drops a deleted workload's cached part.
func forgetStatic(w datastore.Workload) { startCache.Delete(staticKey(w)) }

func staticFor(w datastore.Workload) (staticStart, bool) {
	key := staticKey(w)
	if v, ok := startCache.Load(key); ok {
		return v.(staticStart), true
	}
	st := workloadStatic{ImageUUID: w.ImageID, FWType: payloads.Firmware(w.FWType), InstancePersistence: payloads.PersistenceHost,
		VMType: payloads.Hypervisor(w.VMType), RequestedResources: make([]payloads.RequestedResource, 0, len(w.Defaults)),
		EstimatedResources: []payloads.EstimatedResource{}}
	if st.VMType == payloads.HypervisorDocker {
		st.DockerImage = w.ImageName
	}
	for _, d := range w.Defaults {
		st.RequestedResources = append(st.RequestedResources,
			payloads.RequestedResource{Type: payloads.Resource(d.Type), Value: d.Value, Mandatory: d.Mandatory})
	}
	b, err := yaml.Marshal(struct {
		S workloadStatic `yaml:"start"`
	}{st})
	if err != nil || !strings.HasPrefix(string(b), "start:\n") {
		return staticStart{}, false
	}
	s := staticStart{block: strings.TrimPrefix(string(b), "start:\n"), userData: w.Config}
	if s.userData != "" && !strings.HasSuffix(s.userData, "\n") {
		s.userData += "\n"
	}
	startCache.Store(key, s)
	return s, true
}

// plainUUID: 8-4-4-4-12 hex digits, which yaml.v2 always writes plain.
func plainUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// plainIPv4 is a dotted quad (three dots: never a YAML number), with an
// optional /prefix.
func plainIPv4(s string, prefix bool) bool {
	if prefix {
		p, err := netip.ParsePrefix(s)
		return err == nil && p.Addr().Is4() && p.String() == s
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && a.String() == s
}

// plainMAC is six hex pairs with at least one letter (an all-digit MAC
// can look like a YAML 1.1 base-60 number, which yaml.v2 quotes).
func plainMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	letter := false
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f':
			letter = true
		default:
			return false
		}
	}
	return letter
}

// scalar appends key: value for a value that is "" or passed a plain
// check.
func scalar(b []byte, key, v string) []byte {
	b = append(b, key...)
	if v == "" {
		return append(b, `""`+"\n"...)
	}
	b = append(b, v...)
	return append(b, '\n')
}

// fastStart composes the START of cmd (built by startPayload) for
// workload w, or reports false when ComposeStart must do it.
func fastStart(w datastore.Workload, cmd *payloads.StartCmd, meta payloads.StartMetadata) ([]byte, bool) {
	n := cmd.Networking
	switch {
	case !plainUUID(cmd.TenantUUID) || !plainUUID(cmd.InstanceUUID) || !plainUUID(n.VnicUUID):
		return nil, false
	case n.ConcentratorUUID != "" && !plainUUID(n.ConcentratorUUID):
		return nil, false
	case n.VnicMAC != "" && !plainMAC(n.VnicMAC):
		return nil, false
	case n.ConcentratorIP != "" && !plainIPv4(n.ConcentratorIP, false):
		return nil, false
	case n.PrivateIP != "" && !plainIPv4(n.PrivateIP, false):
		return nil, false
	case n.Subnet != "" && !plainIPv4(n.Subnet, true):
		return nil, false
	case n.SubnetKey != "" || n.SubnetUUID != "" || n.PublicIP || cmd.Storage != (payloads.StorageResources{}):
		return nil, false
	case meta.UUID != cmd.InstanceUUID || !(meta.Hostname == meta.UUID || meta.Hostname == "cnci-"+cmd.TenantUUID):
		return nil, false
	}
	st, ok := staticFor(w)
	if !ok {
		return nil, false
	}
	b := make([]byte, 0, 512+len(st.block)+len(st.userData))
	b = append(b, "---\nstart:\n"...)
	b = scalar(b, "  tenant_uuid: ", cmd.TenantUUID)
	b = scalar(b, "  instance_uuid: ", cmd.InstanceUUID)
	b = append(b, st.block...)
	b = append(b, "  networking:\n"...)
	b = scalar(b, "    vnic_mac: ", n.VnicMAC)
	b = scalar(b, "    vnic_uuid: ", n.VnicUUID)
	b = scalar(b, "    concentrator_uuid: ", n.ConcentratorUUID)
	b = scalar(b, "    concentrator_ip: ", n.ConcentratorIP)
	b = scalar(b, "    subnet: ", n.Subnet)
	b = append(b, "    subnet_key: \"\"\n    subnet_uuid: \"\"\n"...)
	b = scalar(b, "    private_ip: ", n.PrivateIP)
	b = append(b, "    public_ip: false\n...\n"...)
	b = append(b, st.userData...)
	b = append(b, "---\n{\n\t\"uuid\": \""...)
	b = append(b, meta.UUID...)
	b = append(b, "\",\n\t\"hostname\": \""...)
	b = append(b, meta.Hostname...)
	b = append(b, "\"\n}\n...\n"...)
	return b, true
}
