package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/controller"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/gorilla/mux"
)

// createServer is the "server" object of POST /servers (§6.2.1).
type createServer struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ImageRef  string `json:"imageRef"`
	FlavorRef string `json:"flavorRef"`
	MaxCount  int    `json:"max_count"`
	MinCount  int    `json:"min_count"`
}

type link struct {
	ID    string `json:"id"`
	Links []any  `json:"links"`
}

type privateAddr struct {
	Addr    string `json:"addr"`
	MAC     string `json:"OS-EXT-IPS-MAC:mac_addr"`
	Type    string `json:"OS-EXT-IPS:type"`
	Version int    `json:"version"`
}

// serverDetails is ServerDetails of §6.2.9; every key is always present.
type serverDetails struct {
	Addresses       map[string][]privateAddr `json:"addresses"`
	Created         time.Time                `json:"created"`
	Flavor          link                     `json:"flavor"`
	HostID          string                   `json:"hostId"`
	ID              string                   `json:"id"`
	Image           link                     `json:"image"`
	KeyName         string                   `json:"key_name"`
	Links           []any                    `json:"links"`
	Metadata        struct{}                 `json:"metadata"` // always {}; OpenStack clients require the key
	Name            string                   `json:"name"`
	AccessIPv4      string                   `json:"accessIPv4"`
	AccessIPv6      string                   `json:"accessIPv6"`
	ConfigDrive     string                   `json:"config_drive"`
	DiskConfig      string                   `json:"OS-DCF:diskConfig"`
	AvailZone       string                   `json:"OS-EXT-AZ:availability_zone"`
	Host            string                   `json:"OS-EXT-SRV-ATTR:host"`
	HypervisorHost  string                   `json:"OS-EXT-SRV-ATTR:hypervisor_hostname"`
	InstanceName    string                   `json:"OS-EXT-SRV-ATTR:instance_name"`
	PowerState      int                      `json:"OS-EXT-STS:power_state"`
	TaskState       string                   `json:"OS-EXT-STS:task_state"`
	VMState         string                   `json:"OS-EXT-STS:vm_state"`
	LaunchedAt      time.Time                `json:"OS-SRV-USG:launched_at"`
	TerminatedAt    time.Time                `json:"OS-SRV-USG:terminated_at"`
	VolumesAttached []any                    `json:"os-extended-volumes:volumes_attached"`
	Progress        int                      `json:"progress"`
	SecurityGroups  [0]any                   `json:"security_groups"` // always []: OpenStack clients iterate it
	Status          string                   `json:"status"`
	HostStatus      string                   `json:"host_status"`
	TenantID        string                   `json:"tenant_id"`
	Updated         time.Time                `json:"updated"`
	UserID          string                   `json:"user_id"`
	SSHIP           string                   `json:"ssh_ip"`
	SSHPort         int                      `json:"ssh_port"`
}

func details(in datastore.Instance, imageID string) serverDetails {
	status, task := serverStatus(in)
	return serverDetails{
		TaskState: task,
		Addresses: map[string][]privateAddr{"private": {{Addr: in.IP, MAC: in.MAC}}},
		Created:   in.CreatedAt,
		Flavor:    link{ID: in.WorkloadID},
		HostID:    in.NodeID,
		ID:        in.ID,
		Image:     link{ID: imageID},
		Name:      in.Name,
		Status:    status,
		TenantID:  in.TenantID,
		SSHIP:     in.SSHIP,
		SSHPort:   in.SSHPort,
	}
}

// imageOf caches workload image ids for one request.
type imageOf struct {
	s     datastore.Store
	cache map[string]string
}

func (c *imageOf) get(ctx context.Context, workloadID string) string {
	if id, ok := c.cache[workloadID]; ok {
		return id
	}
	if c.cache == nil {
		c.cache = map[string]string{}
	}
	w, err := c.s.Workload(ctx, workloadID)
	if err == nil {
		c.cache[workloadID] = w.ImageID
	}
	return w.ImageID
}

// decode reads a JSON body into v; errors are 400 (413 when too large).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "malformed request body: "+err.Error())
		}
		return false
	}
	return true
}

func (s *server) createServers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Server createServer `json:"server"`
	}
	if !decode(w, r, &req) {
		return
	}
	sv := req.Server
	switch {
	case sv.FlavorRef == "":
		writeError(w, http.StatusBadRequest, "missing server.flavorRef")
		return
	case sv.MaxCount < 0 || sv.MinCount < 0:
		writeError(w, http.StatusBadRequest, "min_count and max_count must not be negative")
		return
	case sv.MaxCount > 0 && sv.MinCount > sv.MaxCount:
		writeError(w, http.StatusBadRequest, "min_count is greater than max_count")
		return
	}
	n := 1
	if sv.MaxCount > 0 {
		n = sv.MaxCount
	} else if sv.MinCount > 0 {
		n = sv.MinCount
	}
	tenant := mux.Vars(r)["tenant"]
	ins, err := s.cfg.Compute.Launch(r.Context(), tenant, sv.FlavorRef, n, sv.Name)
	if err != nil && len(ins) == 0 {
		fail(w, r, err)
		return
	}
	if err != nil { // some STARTs were not sent: not met in full (Q4)
		fail(w, r, fmt.Errorf("%d of %d instances started: %w", len(ins), n, err))
		return
	}
	img := imageOf{s: s.cfg.Store}
	out := make([]serverDetails, len(ins))
	for i, in := range ins {
		out[i] = details(in, img.get(r.Context(), in.WorkloadID))
	}
	sv.ID = ins[0].ID
	writeJSON(w, http.StatusAccepted, struct {
		Server       createServer    `json:"server"`
		TotalServers int             `json:"total_servers"`
		Servers      []serverDetails `json:"servers"`
	}{sv, len(out), out})
}

// intParam reads a non-negative integer query parameter ("" = 0).
func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("query parameter %s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}

// listServers is GET servers/detail with marker, offset and limit (Q2
// fixed: limit is honoured), the filters of serverFilter, and every
// tenant's servers for an admin asking all_tenants.
func (s *server) listServers(w http.ResponseWriter, r *http.Request) {
	q := datastore.InstanceQuery{TenantID: mux.Vars(r)["tenant"]}
	match, err := serverFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if allTenants(r) {
		q.TenantID = "" // every tenant's (matching)
	}
	s.serveMatching(w, r, q, match)
}

func (s *server) showServer(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	in, err := s.cfg.Store.Instance(r.Context(), v["server"])
	if err == nil && in.TenantID != v["tenant"] {
		err = controller.ErrNotOwner
	}
	if err != nil {
		fail(w, r, fmt.Errorf("server %s: %w", v["server"], err))
		return
	}
	img := imageOf{s: s.cfg.Store}
	writeJSON(w, http.StatusOK, struct {
		Server serverDetails `json:"server"`
	}{details(in, img.get(r.Context(), in.WorkloadID))})
}

func (s *server) deleteServer(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if err := s.cfg.Compute.Delete(r.Context(), v["tenant"], v["server"]); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serverAction handles os-start, os-stop and reboot (§6.2.5). The body is
// matched as text, so both the CLI's bare words and the OpenStack JSON
// form {"os-start": null} work.
func (s *server) serverAction(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, r, err)
		return
	}
	v := mux.Vars(r)
	text := string(body)
	switch {
	case strings.Contains(text, "os-start"), strings.Contains(text, "reboot"):
		err = s.cfg.Compute.Restart(r.Context(), v["tenant"], v["server"])
	case strings.Contains(text, "os-stop"):
		err = s.cfg.Compute.Stop(r.Context(), v["tenant"], v["server"])
	default:
		writeError(w, http.StatusServiceUnavailable, "Unsupported Action")
		return
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, nil)
}
