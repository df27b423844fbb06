package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Node is a compute node's latest statistics (controller §6.3.6).
type Node struct {
	ID                    string    `json:"id"`
	Hostname              string    `json:"hostname"`
	Timestamp             time.Time `json:"updated"`
	Status                string    `json:"status"`
	MemTotal              int       `json:"ram_total"`
	MemAvailable          int       `json:"ram_available"`
	DiskTotal             int       `json:"disk_total"`
	DiskAvailable         int       `json:"disk_available"`
	Load                  int       `json:"load"`
	OnlineCPUs            int       `json:"online_cpus"`
	TotalInstances        int       `json:"total_instances"`
	TotalRunningInstances int       `json:"total_running_instances"`
	TotalPendingInstances int       `json:"total_pending_instances"`
	TotalPausedInstances  int       `json:"total_paused_instances"`
}

// ClusterStatus counts nodes by status (controller §6.3.7).
type ClusterStatus struct {
	TotalNodes            int `json:"total_nodes"`
	TotalNodesReady       int `json:"total_nodes_ready"`
	TotalNodesFull        int `json:"total_nodes_full"`
	TotalNodesOffline     int `json:"total_nodes_offline"`
	TotalNodesMaintenance int `json:"total_nodes_maintenance"`
}

// NodeServer is one instance a node reported (controller §6.3.8).
type NodeServer struct {
	ID        string    `json:"id"`
	NodeID    string    `json:"node_id"`
	Timestamp time.Time `json:"updated"`
	Status    string    `json:"status"`
	TenantID  string    `json:"tenant_id"`
	IPv4      string    `json:"IPv4"`
	VCPUUsage int       `json:"cpus_usage"`
	MemUsage  int       `json:"ram_usage"`
	DiskUsage int       `json:"disk_usage"`
}

// Subnet is one subnet string of a CNCI, e.g. "Subnet 172.16.0.0/24".
type Subnet struct {
	Subnet string `json:"subnet_cidr"`
}

// CNCI is a tenant's network concentrator (controller §6.3.9).
type CNCI struct {
	ID        string   `json:"id"`
	TenantID  string   `json:"tenant_id"`
	IPv4      string   `json:"IPv4"`
	Geography string   `json:"geography"`
	Subnets   []Subnet `json:"subnets"`
}

// TraceSummary is one trace label (controller §6.3.12).
type TraceSummary struct {
	Label     string `json:"label"`
	Instances int    `json:"instances"`
}

// TraceData is the statistics of one trace label, in seconds.
type TraceData struct {
	NumInstances             int     `json:"num_instances"`
	TotalElapsed             float64 `json:"total_elapsed"`
	AverageElapsed           float64 `json:"average_elapsed"`
	AverageControllerElapsed float64 `json:"average_controller_elapsed"`
	AverageLauncherElapsed   float64 `json:"average_launcher_elapsed"`
	AverageSchedulerElapsed  float64 `json:"average_scheduler_elapsed"`
	VarianceController       float64 `json:"controller_variance"`
	VarianceLauncher         float64 `json:"launcher_variance"`
	VarianceScheduler        float64 `json:"scheduler_variance"`
}

// Usage is one entry of a tenant's usage history (controller §6.3.3).
type Usage struct {
	VCPU      int       `json:"cpus_usage"`
	Memory    int       `json:"ram_usage"`
	Disk      int       `json:"disk_usage"`
	Timestamp time.Time `json:"timestamp"`
}

// ListNodes lists the compute nodes (admin).
func (c *Client) ListNodes(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	_, err := c.do(ctx, http.MethodGet, "/nodes", nil, nil, &out)
	return out.Nodes, err
}

// EvacuateNode asks the node to delete its instances and enter
// maintenance (admin).
func (c *Client) EvacuateNode(ctx context.Context, node string) error {
	_, err := c.do(ctx, http.MethodPost, "/nodes/"+url.PathEscape(node)+"/evacuate", nil, nil, nil)
	return err
}

// ClusterStatus counts the nodes by status (admin).
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var out struct {
		Cluster ClusterStatus `json:"cluster"`
	}
	_, err := c.do(ctx, http.MethodGet, "/nodes/summary", nil, nil, &out)
	return out.Cluster, err
}

// NodeServers lists the instances a node reported (admin).
func (c *Client) NodeServers(ctx context.Context, node string) ([]NodeServer, error) {
	var out struct {
		Servers []NodeServer `json:"servers"`
	}
	_, err := c.do(ctx, http.MethodGet, "/nodes/"+url.PathEscape(node)+"/servers/detail", nil, nil, &out)
	return out.Servers, err
}

// WorkloadServers lists every tenant's instances of a workload (admin).
func (c *Client) WorkloadServers(ctx context.Context, workload string, o ListOptions) ([]Server, error) {
	var out struct {
		Servers []Server `json:"servers"`
	}
	_, err := c.do(ctx, http.MethodGet, "/flavors/"+url.PathEscape(workload)+"/servers/detail", o.query(), nil, &out)
	return out.Servers, err
}

// ListCNCIs lists the tenants' concentrators (admin).
func (c *Client) ListCNCIs(ctx context.Context) ([]CNCI, error) {
	var out struct {
		CNCIs []CNCI `json:"cncis"`
	}
	_, err := c.do(ctx, http.MethodGet, "/cncis", nil, nil, &out)
	return out.CNCIs, err
}

// ShowCNCI returns one concentrator (admin).
func (c *Client) ShowCNCI(ctx context.Context, id string) (CNCI, error) {
	var out CNCI
	_, err := c.do(ctx, http.MethodGet, "/cncis/"+url.PathEscape(id)+"/detail", nil, nil, &out)
	return out, err
}

// ListTraces lists the trace labels (admin).
func (c *Client) ListTraces(ctx context.Context) ([]TraceSummary, error) {
	var out struct {
		Summaries []TraceSummary `json:"summaries"`
	}
	_, err := c.do(ctx, http.MethodGet, "/traces", nil, nil, &out)
	return out.Summaries, err
}

// ShowTrace returns the statistics of a trace label (admin).
func (c *Client) ShowTrace(ctx context.Context, label string) (TraceData, error) {
	var out struct {
		Summary TraceData `json:"summary"`
	}
	_, err := c.do(ctx, http.MethodGet, "/traces/"+url.PathEscape(label), nil, nil, &out)
	return out.Summary, err
}

// Resources returns the tenant's usage history in [start, end).
func (c *Client) Resources(ctx context.Context, tenant string, start, end time.Time) ([]Usage, error) {
	q := url.Values{"start_date": {start.Format(time.RFC3339)}, "end_date": {end.Format(time.RFC3339)}}
	var out struct {
		Usage []Usage `json:"usage"`
	}
	_, err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(tenant)+"/resources", q, nil, &out)
	return out.Usage, err
}

// DeleteEvents clears the event log (admin).
func (c *Client) DeleteEvents(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodDelete, "/events", nil, nil, nil)
	return err
}

// Image is an image record of the controller's image API (/v2/images).
// The Go field names are those of ciao-cli's -f templates (cli.md §9).
type Image struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Status           string   `json:"status"`
	Tags             []string `json:"tags"`
	ContainerFormat  *string  `json:"container_format"`
	DiskFormat       *string  `json:"disk_format"`
	MinDiskGigabytes int      `json:"min_disk"`
	MinRAMMegabytes  int      `json:"min_ram"`
	Owner            string   `json:"owner"`
	Protected        bool     `json:"protected"`
	Visibility       string   `json:"visibility"`
	Checksum         *string  `json:"checksum"`
	SizeBytes        *int64   `json:"size"`
	CreatedDate      string   `json:"created_at"`
	LastUpdate       string   `json:"updated_at"`
	File             string   `json:"file"`
	Schema           string   `json:"schema"`
}

// ImageRequest is the body of an image creation.
type ImageRequest struct {
	ID              string   `json:"id,omitempty"`
	Name            string   `json:"name"`
	ContainerFormat string   `json:"container_format,omitempty"`
	DiskFormat      string   `json:"disk_format,omitempty"`
	Visibility      string   `json:"visibility,omitempty"`
	MinDisk         int      `json:"min_disk,omitempty"`
	MinRAM          int      `json:"min_ram,omitempty"`
	Protected       bool     `json:"protected,omitempty"`
	Tags            []string `json:"tags,omitempty"`
}

// imagesURL is the image API root: the compute API's host with /v2/images.
func (c *Client) imagesURL() string {
	return strings.TrimSuffix(c.cfg.BaseURL, "/v2.1") + "/v2/images"
}

// CreateImage creates image metadata (201).
func (c *Client) CreateImage(ctx context.Context, req ImageRequest) (Image, error) {
	var out Image
	_, err := c.doURL(ctx, http.MethodPost, c.imagesURL(), req, "", &out)
	return out, err
}

// ListImages lists the images the caller may see.
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	var out struct {
		Images []Image `json:"images"`
	}
	_, err := c.doURL(ctx, http.MethodGet, c.imagesURL(), nil, "", &out)
	return out.Images, err
}

// ShowImage returns one image.
func (c *Client) ShowImage(ctx context.Context, id string) (Image, error) {
	var out Image
	_, err := c.doURL(ctx, http.MethodGet, c.imagesURL()+"/"+url.PathEscape(id), nil, "", &out)
	return out, err
}

// DeleteImage deletes an image and its data.
func (c *Client) DeleteImage(ctx context.Context, id string) error {
	_, err := c.doURL(ctx, http.MethodDelete, c.imagesURL()+"/"+url.PathEscape(id), nil, "", nil)
	return err
}

// ModifyImage sends a JSON patch (the controller has no PATCH route yet).
func (c *Client) ModifyImage(ctx context.Context, id string, ops []map[string]any) (Image, error) {
	var out Image
	_, err := c.doURL(ctx, http.MethodPatch, c.imagesURL()+"/"+url.PathEscape(id), ops, "application/openstack-images-v2.1-json-patch", &out)
	return out, err
}

// UploadImage streams data as the image's file (204).
func (c *Client) UploadImage(ctx context.Context, id string, data io.Reader, size int64) error {
	u := c.imagesURL() + "/" + url.PathEscape(id) + "/file"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, data)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.sendReq(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return c.check(resp, http.MethodPut, u, nil)
}

// DownloadImage copies the image's data to w. An image without data is
// an error.
func (c *Client) DownloadImage(ctx context.Context, id string, w io.Writer) (int64, error) {
	u := c.imagesURL() + "/" + url.PathEscape(id) + "/file"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	resp, err := c.sendReq(ctx, req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := c.check(resp, http.MethodGet, u, nil); err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusNoContent {
		return 0, fmt.Errorf("image %s has no data yet: upload it with 'ciao-cli image upload -image %s -file <path>'", id, id)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download image %s: %w", id, err)
	}
	return n, nil
}

// NamedQuota is one named quota of a tenant; values are strings and
// "unlimited" means no limit.
type NamedQuota struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Usage string `json:"usage,omitempty"`
}

// ListQuotas returns a tenant's named quotas.
func (c *Client) ListQuotas(ctx context.Context, tenant string) ([]NamedQuota, error) {
	var out struct {
		Quotas []NamedQuota `json:"quotas"`
	}
	_, err := c.do(ctx, http.MethodGet, "/tenants/"+url.PathEscape(tenant)+"/quotas", nil, nil, &out)
	return out.Quotas, err
}

// UpdateQuotas sets named quotas of a tenant (admin) and returns them all.
func (c *Client) UpdateQuotas(ctx context.Context, tenant string, qs []NamedQuota) ([]NamedQuota, error) {
	var out struct {
		Quotas []NamedQuota `json:"quotas"`
	}
	_, err := c.do(ctx, http.MethodPut, "/tenants/"+url.PathEscape(tenant)+"/quotas", nil, map[string]any{"quotas": qs}, &out)
	return out.Quotas, err
}
