// Package config loads the cluster configuration the scheduler hands to
// every SSNTP client in its CONNECTED frame (tooling.md §4): it reads the
// document named by a file:// URI, overlays it on the defaults, checks the
// keys the 2016 scheduler required and re-marshals it, so clients always
// receive a complete, normalised configure: document.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/ciao-project/ciao/payloads"
	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"
)

// DefaultURI is where the 2016 scheduler looked for its configuration.
const DefaultURI = "file:///etc/ciao/configuration.yaml"

// Errors. Compare with errors.Is.
var (
	// ErrScheme: a URI scheme other than file.
	ErrScheme = errors.New("config: unsupported configuration URI scheme")
	// ErrEmptyPath: a file URI without a path.
	ErrEmptyPath = errors.New("config: configuration URI path is empty")
	// ErrInvalid: the document does not decode or misses a required key.
	ErrInvalid = errors.New("config: minimal configuration is not met or yaml is malformed")
)

// Load reads the configuration named by uri and returns it normalised
// (Normalise). Only the file scheme exists, as in 2016.
func Load(uri string) ([]byte, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("config: parsing configuration URI %q: %w", uri, err)
	}
	if u.Scheme != "file" {
		return nil, fmt.Errorf("%w: %q", ErrScheme, u.Scheme)
	}
	if u.Path == "" {
		return nil, ErrEmptyPath
	}
	raw, err := os.ReadFile(u.Path)
	if err != nil {
		return nil, fmt.Errorf("config: reading configuration: %w", err)
	}
	blob, err := Normalise(raw)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", u.Path, err)
	}
	return blob, nil
}

// Normalise decodes a configuration document over the defaults
// (volume_port 8776, compute_port 8774, image service glance, identity
// service keystone, disk_limit and mem_limit true), checks the required
// keys (scheduler.storage_uri, controller.compute_ca,
// controller.compute_cert, controller.identity_user,
// controller.identity_password, identity_service.url) and marshals it
// again in schema order. An empty storage.ceph_id is only a warning, as in
// 2016.
func Normalise(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrInvalid)
	}
	var c payloads.Configure
	c.InitDefaults()
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.Configure.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Configure.Storage.CephID == "" {
		glog.Warning("cluster configuration: storage.ceph_id is empty; launchers will not reach ceph")
	}
	out, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("config: marshalling configuration: %w", err)
	}
	return out, nil
}
