package devcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Manifest records what Up made outside the state directory and how the
// cluster runs, so that Down removes exactly that. It is
// <state>/manifest.json.
type Manifest struct {
	Created time.Time `json:"created"`
	// Mode is "systemd" or "supervisor".
	Mode string `json:"mode"`
	// Network says whether tenant networking is on, NetworkWhyOff why
	// not.
	Network       bool   `json:"network"`
	NetworkWhyOff string `json:"network_why_off,omitempty"`
	// Units are the systemd unit files written (systemd mode).
	Units []string `json:"units,omitempty"`
	// Namespaces are the network namespaces made for tenant networking.
	Namespaces []string `json:"namespaces,omitempty"`
	// InterfacesBefore are the host's network interfaces before the first
	// Up: an interface made by the cluster is one not in this list.
	InterfacesBefore []string `json:"interfaces_before"`
	// Daemons is the process table the supervisor or the units run.
	Daemons []Daemon `json:"daemons"`
	// ReadyAddr: see SupervisorConfig.
	ReadyAddr map[string]string `json:"ready_addr"`
}

func (c Config) manifestPath() string { return c.Path("manifest.json") }

// LoadManifest reads the state directory's manifest; os.ErrNotExist if
// there is none.
func (c Config) LoadManifest() (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(c.manifestPath())
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", c.manifestPath(), err)
	}
	return m, nil
}

func (c Config) saveManifest(m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.manifestPath(), b, 0o644)
}

// loadOrNewManifest returns the existing manifest or a fresh one.
func (c Config) loadOrNewManifest() (Manifest, error) {
	m, err := c.LoadManifest()
	if errors.Is(err, os.ErrNotExist) {
		ifs, ierr := interfaceNames()
		if ierr != nil {
			return m, ierr
		}
		return Manifest{Created: time.Now().UTC(), InterfacesBefore: ifs}, nil
	}
	return m, err
}
