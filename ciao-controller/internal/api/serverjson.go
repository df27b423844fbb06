package api

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/golang/glog"
)

// The servers listing is the API's biggest answer (about 1 KB per
// server), so it is written by hand instead of through encoding/json's
// reflection, and streamed in chunks instead of built whole. The output
// is byte-for-byte what encoding/json makes of serverDetails
// (TestServerJSONMatchesEncodingJSON).

// listChunk is how much is buffered before a write to the client.
const listChunk = 64 << 10

// appendJSONString appends s as a JSON string, escaping like
// encoding/json (HTML-safe, U+2028/2029 escaped, invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const zeroTime = `"0001-01-01T00:00:00Z"`

// serverStatus is the status and OS-EXT-STS:task_state listed for in:
// its state and "", or, while a DELETE asked for it is not confirmed,
// "deleting" for both (Nova's task state while a server is deleted;
// clients waiting for the deletion poll until the server is not found).
func serverStatus(in datastore.Instance) (status, task string) {
	if !in.Deleting.IsZero() {
		return controller.StateDeleting, controller.StateDeleting
	}
	return in.State, ""
}

// appendServer appends details(in, imageID) as encoding/json would.
func appendServer(b []byte, in datastore.Instance, imageID string) []byte {
	b = append(b, `{"addresses":{"private":[{"addr":`...)
	b = appendJSONString(b, in.IP)
	b = append(b, `,"OS-EXT-IPS-MAC:mac_addr":`...)
	b = appendJSONString(b, in.MAC)
	b = append(b, `,"OS-EXT-IPS:type":"","version":0}]},"created":`...)
	b = appendJSONTime(b, in.CreatedAt)
	b = append(b, `,"flavor":{"id":`...)
	b = appendJSONString(b, in.WorkloadID)
	b = append(b, `,"links":null},"hostId":`...)
	b = appendJSONString(b, in.NodeID)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, in.ID)
	b = append(b, `,"image":{"id":`...)
	b = appendJSONString(b, imageID)
	b = append(b, `,"links":null},"key_name":"","links":null,"metadata":{},"name":`...)
	b = appendJSONString(b, in.Name)
	b = append(b, `,"accessIPv4":"","accessIPv6":"","config_drive":"",`+
		`"OS-DCF:diskConfig":"","OS-EXT-AZ:availability_zone":"","OS-EXT-SRV-ATTR:host":"",`+
		`"OS-EXT-SRV-ATTR:hypervisor_hostname":"","OS-EXT-SRV-ATTR:instance_name":"","OS-EXT-STS:power_state":0,`+
		`"OS-EXT-STS:task_state":`...)
	status, task := serverStatus(in)
	b = appendJSONString(b, task)
	b = append(b, `,"OS-EXT-STS:vm_state":"","OS-SRV-USG:launched_at":`+zeroTime+
		`,"OS-SRV-USG:terminated_at":`+zeroTime+`,"os-extended-volumes:volumes_attached":null,"progress":0,`+
		`"security_groups":[],"status":`...)
	b = appendJSONString(b, status)
	b = append(b, `,"host_status":"","tenant_id":`...)
	b = appendJSONString(b, in.TenantID)
	b = append(b, `,"updated":`+zeroTime+`,"user_id":"","ssh_ip":`...)
	b = appendJSONString(b, in.SSHIP)
	b = append(b, `,"ssh_port":`...)
	b = strconv.AppendInt(b, int64(in.SSHPort), 10)
	return append(b, '}')
}

// writeServers streams {"total_servers":N,"servers":[...]}, followed by a
// newline as json.Encoder writes it.
func writeServers(w http.ResponseWriter, total int, ins []datastore.Instance, image func(workloadID string) string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, listChunk+4096)
	b = append(b, `{"total_servers":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"servers":[`...)
	for i, in := range ins {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendServer(b, in, image(in.WorkloadID))
		if len(b) >= listChunk {
			if _, err := w.Write(b); err != nil {
				glog.V(1).Infof("writing servers: %v", err)
				return
			}
			b = b[:0]
		}
	}
	b = append(b, "]}\n"...)
	if _, err := w.Write(b); err != nil {
		glog.V(1).Infof("writing servers: %v", err)
	}
}
