// Package driver defines what ciao-launcher asks of a backend (QEMU, Docker,
// a bare-metal process, the simulator): start an instance, stop it, delete
// what it left behind, tell whether it still runs, sample its resources and
// re-adopt it after the launcher restarts.
//
// A Driver never owns an instance's lifetime beyond the call it is in: the
// launcher's per-instance goroutine does. Instances outlive the launcher (a
// launcher that stops or crashes leaves them running), so everything a driver
// needs to find an instance again is in its Handle, which the launcher keeps
// in the instance's state file. Long calls take a context; cancelling it
// abandons the call, never the instance. Extras a backend may offer are
// optional interfaces found by type assertion (see Waiter).
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/ciao-project/ciao/payloads"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotRunning: the instance is not running (Stop of a stopped
	// instance, Stats of an exited one).
	ErrNotRunning = errors.New("driver: instance not running")
	// ErrBadSpec: the start request lacks what this backend needs (no
	// command for a process, an impossible size...). The launcher answers
	// it with invalid_data.
	ErrBadSpec = errors.New("driver: bad instance spec")
	// ErrImage: the backing image is missing or unusable (image_failure).
	ErrImage = errors.New("driver: image failure")
	// ErrLaunch: the backend could not start the instance (launch_failure).
	ErrLaunch = errors.New("driver: launch failure")
	// ErrUnavailable: no driver serves the requested instance kind.
	ErrUnavailable = errors.New("driver: backend unavailable")
)

// Kinds of instance, the keys of a Registry.
const (
	KindQEMU    = "qemu"
	KindDocker  = "docker"
	KindProcess = "process"
	KindSim     = "sim"
	// KindCNCI is a CNCI hosted as a network namespace (network nodes).
	KindCNCI = "cnci"
)

// Spec is everything a driver is told about an instance to start. The
// launcher has created Dir before Start and removes it after Delete.
type Spec struct {
	InstanceUUID string
	Tenant       string // tenant_uuid of the START
	Dir          string // the instance directory, owned by the launcher
	VCPUs        int    // 0 = backend default
	MemMB        int    // 0 = backend default
	DiskMB       int
	Image        string // image_uuid (VMs) or docker_image (containers)
	Legacy       bool   // legacy BIOS firmware rather than EFI
	Network      bool   // false: user-mode networking (VMs), none (containers)
	// Vnic is the instance's tenant VNIC on this node, if it has one: a
	// tap for VMs (attached with VnicMAC as the guest MAC), the host end
	// of a veth for others.
	Vnic    string
	VnicMAC string
	// For a container VNIC: the veth end to move into the container
	// (VnicPeer, in the node's network namespace VnicNetns, "" = the
	// launcher's), its address with the subnet's mask and the gateway.
	VnicPeer    string
	VnicNetns   string
	VnicAddr    net.IPNet
	VnicGateway net.IP
	// VnicTapDevice is the /dev/tapN of a network node's macvtap (a CNCI
	// VM): QEMU opens it once per queue.
	VnicTapDevice string
	UserData      []byte // cloud-init user data from the START
	MetaData      []byte // instance metadata from the START
}

// Handle is what a driver needs to find an instance again, also after a
// launcher restart. It is stored as JSON in the instance's state file.
type Handle struct {
	Driver string `json:"driver"`
	// PID and StartTicks identify a host process: its pid and its start
	// time in clock ticks since boot (/proc/<pid>/stat field 22), so that
	// a recycled pid is not mistaken for the instance.
	PID        int    `json:"pid,omitempty"`
	StartTicks uint64 `json:"start_ticks,omitempty"`
	// ID is a backend object name (container id...).
	ID string `json:"id,omitempty"`
	// Data holds anything else the driver wants back.
	Data json.RawMessage `json:"data,omitempty"`
}

// Stats is one resource sample. −1 means unknown.
type Stats struct {
	MemMB  int
	DiskMB int
	// CPUTime is the CPU time used so far (user+system); the launcher turns
	// two samples into a percentage. Negative means unknown.
	CPUTime time.Duration
	// SSHIP and SSHPort, when set, say where to reach the instance.
	SSHIP   string
	SSHPort int
}

// Driver is a backend. Implementations must be safe for concurrent use by
// many instance goroutines; calls for one instance are never concurrent.
type Driver interface {
	// Start launches the instance and returns once it has been started (not
	// necessarily booted). Errors wrap ErrBadSpec, ErrImage or ErrLaunch.
	Start(ctx context.Context, spec Spec) (Handle, error)
	// Stop stops a running instance (hard stop after a grace period) and
	// returns once it is gone. Stopping a stopped instance is ErrNotRunning.
	Stop(ctx context.Context, h Handle) error
	// Delete stops the instance if needed and removes every resource the
	// backend holds for it outside the instance directory.
	Delete(ctx context.Context, h Handle) error
	// Running reports whether the instance the handle names still runs.
	Running(ctx context.Context, h Handle) (bool, error)
	// Stats samples the instance's resource use.
	Stats(ctx context.Context, h Handle) (Stats, error)
	// Adopt takes over an instance found on disk after a launcher restart
	// and reports whether it runs. It must not start or stop it.
	Adopt(ctx context.Context, h Handle, spec Spec) (running bool, err error)
}

// Waiter is an optional interface: Wait returns when the instance stops
// running or ctx ends, so the launcher need not poll Running.
type Waiter interface {
	Wait(ctx context.Context, h Handle) error
}

// Resetter is an optional interface for backends whose instances can
// outlive their state directory (containers kept by dockerd): a hard reset
// calls Reset to remove every instance the launcher using the instances
// directory root ever created, known to the state directory or not.
type Resetter interface {
	Reset(ctx context.Context, root string) error
}

// Registry maps instance kinds to drivers. It is filled before the launcher
// starts and read-only afterwards.
type Registry map[string]Driver

// Lookup returns the driver for kind, or an error wrapping ErrUnavailable.
func (r Registry) Lookup(kind string) (Driver, error) {
	if d, ok := r[kind]; ok && d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("%w: no %q driver on this node (have %v)", ErrUnavailable, kind, r.Kinds())
}

// Kinds lists the registered kinds, sorted.
func (r Registry) Kinds() []string {
	ks := make([]string, 0, len(r))
	for k := range r {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// StartFailureReason maps a Start error to the failure reason the launcher
// sends.
func StartFailureReason(err error) payloads.StartFailureReason {
	switch {
	case errors.Is(err, ErrBadSpec):
		return payloads.StartInvalidData
	case errors.Is(err, ErrImage):
		return payloads.StartImageFailure
	default:
		return payloads.StartLaunchFailure
	}
}
