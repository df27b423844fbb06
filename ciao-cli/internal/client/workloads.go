package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// WorkloadRequirements are the resources each instance of a workload asks
// for.
type WorkloadRequirements struct {
	VCPUs  int `json:"vcpus"`
	MemMB  int `json:"mem_mb"`
	DiskMB int `json:"disk_mb,omitempty"`
}

// WorkloadDisk is one disk of a workload definition.
type WorkloadDisk struct {
	SourceType string `json:"source_type"`
	SourceID   string `json:"source_id"`
	Size       int    `json:"size,omitempty"`
	Bootable   bool   `json:"bootable"`
	Ephemeral  bool   `json:"ephemeral"`
}

// WorkloadDefinition is the body of a workload create (the controller's
// workloads API, 2017 form).
type WorkloadDefinition struct {
	Description  string               `json:"description"`
	FWType       string               `json:"fw_type"`
	VMType       string               `json:"vm_type"`
	ImageID      string               `json:"image_id,omitempty"`
	ImageName    string               `json:"image_name"`
	Requirements WorkloadRequirements `json:"requirements"`
	Config       string               `json:"config"`
	Storage      []WorkloadDisk       `json:"storage,omitempty"`
}

// Workload is a workload as the workloads API shows it.
type Workload struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id,omitempty"` // owner of a private workload
	Visibility string `json:"visibility"`          // public or private
	WorkloadDefinition
}

// workloadsURL is the workloads API root: /workloads (public, admin) or
// /{tenant}/workloads, on the compute API's host.
func (c *Client) workloadsURL(tenant string) string {
	root := strings.TrimSuffix(c.cfg.BaseURL, "/v2.1")
	if tenant == "" {
		return root + "/workloads"
	}
	return root + "/" + url.PathEscape(tenant) + "/workloads"
}

// CreateWorkload creates a private workload of tenant, or a public one
// (admin) when tenant is "".
func (c *Client) CreateWorkload(ctx context.Context, tenant string, def WorkloadDefinition) (Workload, error) {
	var out struct {
		Workload Workload `json:"workload"`
	}
	_, err := c.doURL(ctx, http.MethodPost, c.workloadsURL(tenant), def, "", &out)
	return out.Workload, err
}

// ShowWorkload returns one workload as tenant sees it ("" = admin: any).
func (c *Client) ShowWorkload(ctx context.Context, tenant, id string) (Workload, error) {
	var out struct {
		Workload Workload `json:"workload"`
	}
	_, err := c.doURL(ctx, http.MethodGet, c.workloadsURL(tenant)+"/"+url.PathEscape(id), nil, "", &out)
	return out.Workload, err
}

// DeleteWorkload deletes a workload: tenant's own private one, or any
// (admin) when tenant is "".
func (c *Client) DeleteWorkload(ctx context.Context, tenant, id string) error {
	_, err := c.doURL(ctx, http.MethodDelete, c.workloadsURL(tenant)+"/"+url.PathEscape(id), nil, "", nil)
	return err
}
