// Package client is ciao-cli's view of the ciao-controller HTTP API: the
// JSON records the compute API returns (with the Go field names that
// ciao-cli's -f templates rely on), an HTTP client that sends the
// X-Auth-Token header and turns error responses into *APIError, and the
// token sources that produce that header (a fixed token, or a Keystone v3
// password login cached on disk).
//
// The package deliberately imports nothing from the controller: the JSON
// on the wire is the only contract.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrUnreachable matches failures to connect to the controller or the
// identity service (see UnreachableError).
var ErrUnreachable = errors.New("client: service unreachable")

// UnreachableError is a request that got no HTTP answer.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.URL, e.Err) }

// Is matches ErrUnreachable.
func (e *UnreachableError) Is(t error) bool { return t == ErrUnreachable }

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is a response with status >= 400.
type APIError struct {
	Method, URL string
	Status      int
	Message     string // the OpenStack error message, or the trimmed body
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, msg)
}

// Config configures a Client.
type Config struct {
	// BaseURL is the compute API root up to and including "/v2.1".
	BaseURL string
	// Tokens supplies the X-Auth-Token header; nil sends none.
	Tokens TokenSource
	// HTTP is the HTTP client; nil uses one built by NewHTTPClient("").
	HTTP *http.Client
	// Debug, if set, receives one line per API call and its JSON answer.
	Debug io.Writer
}

// Client calls the controller's compute API. It is safe for concurrent use.
type Client struct {
	cfg Config
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("client: no controller URL")
	}
	if cfg.HTTP == nil {
		h, err := NewHTTPClient("")
		if err != nil {
			return nil, err
		}
		cfg.HTTP = h
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Client{cfg: cfg}, nil
}

// NewHTTPClient returns an HTTP client trusting the system roots plus the
// PEM certificates in caFile (if not empty).
func NewHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("load CA certificate: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load CA certificate: no PEM certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// forgetter is a TokenSource that can drop a refused token.
type forgetter interface{ Forget() }

// send builds and sends one request with the current token.
func (c *Client) send(ctx context.Context, method, u string, payload []byte, contentType string) (*http.Response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	return c.sendReq(ctx, req)
}

// sendReq adds the Accept and X-Auth-Token headers to req and sends it.
func (c *Client) sendReq(ctx context.Context, req *http.Request) (*http.Response, error) {
	req.Header.Set("Accept", "application/json")
	if c.cfg.Tokens != nil {
		tok, err := c.cfg.Tokens.Token(ctx)
		if err != nil {
			return nil, err
		}
		if tok.ID != "" {
			req.Header.Set("X-Auth-Token", tok.ID)
		}
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, unreachable(c.cfg.BaseURL, err)
	}
	if f, ok := c.cfg.Tokens.(forgetter); ok && resp.StatusCode == http.StatusUnauthorized {
		f.Forget() // the next call logs in again
	}
	return resp, nil
}

// do sends one request to the compute API; body is JSON-encoded unless
// it is a []byte. A non-nil out receives the decoded response.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, out any) (int, error) {
	u := c.cfg.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return c.doURL(ctx, method, u, body, "", out)
}

// doURL is do on a full URL, with the body's content type ("" = JSON).
func (c *Client) doURL(ctx context.Context, method, u string, body any, contentType string, out any) (int, error) {
	var payload []byte
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return 0, fmt.Errorf("encode request: %w", err)
			}
		}
		payload = b
	}
	if contentType == "" {
		contentType = "application/json"
	}
	resp, err := c.send(ctx, method, u, payload, contentType)
	if err != nil {
		return 0, err
	}
	if _, ok := c.cfg.Tokens.(forgetter); ok && resp.StatusCode == http.StatusUnauthorized {
		// A cached token may have been revoked: log in again once.
		resp.Body.Close()
		if resp, err = c.send(ctx, method, u, payload, contentType); err != nil {
			return 0, err
		}
	}
	defer resp.Body.Close()
	if c.cfg.Debug != nil {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body = io.NopCloser(bytes.NewReader(data))
		fmt.Fprintf(c.cfg.Debug, "ciao-cli: %s %s: %s\n", method, u, resp.Status)
		if s := strings.TrimSpace(string(data)); s != "" {
			if len(s) > 4096 {
				s = s[:4096] + "…"
			}
			fmt.Fprintf(c.cfg.Debug, "%s\n", s)
		}
	}
	return resp.StatusCode, c.check(resp, method, u, out)
}

// check turns a status >= 400 into an *APIError, or decodes the JSON
// body into out (if not nil).
func (c *Client) check(resp *http.Response, method, u string, out any) error {
	if resp.StatusCode < 400 && out == nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 400 {
		return &APIError{Method: method, URL: u, Status: resp.StatusCode, Message: errorMessage(data)}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response of %s %s: %w", method, u, err)
		}
	}
	return nil
}

func unreachable(base string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = errors.New("timed out")
	}
	return &UnreachableError{URL: base, Err: err}
}

// errorMessage extracts {"error":{"message":...}} or returns the body's
// first line.
func errorMessage(data []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	s := strings.TrimSpace(string(data))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ListOptions pages instance lists.
type ListOptions struct {
	Marker string
	Offset int
	Limit  int
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Offset > 0 {
		q.Set("offset", fmt.Sprint(o.Offset))
	}
	if o.Marker != "" {
		q.Set("marker", o.Marker)
	}
	return q
}

// CreateServers launches n instances of workload in tenant; label is the
// trace label (the server name).
func (c *Client) CreateServers(ctx context.Context, tenant, workload string, n int, label string) ([]Server, error) {
	req := map[string]any{"server": map[string]any{
		"id": "", "name": label, "imageRef": "", "flavorRef": workload, "max_count": n, "min_count": 1,
	}}
	var out struct {
		Servers []Server `json:"servers"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/"+url.PathEscape(tenant)+"/servers", nil, req, &out); err != nil {
		return nil, err
	}
	return out.Servers, nil
}

// ListServers lists the tenant's instances.
func (c *Client) ListServers(ctx context.Context, tenant string, o ListOptions) ([]Server, error) {
	var out struct {
		Servers []Server `json:"servers"`
	}
	_, err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(tenant)+"/servers/detail", o.query(), nil, &out)
	return out.Servers, err
}

// ShowServer returns one instance.
func (c *Client) ShowServer(ctx context.Context, tenant, id string) (Server, error) {
	var out struct {
		Server Server `json:"server"`
	}
	_, err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(tenant)+"/servers/"+url.PathEscape(id), nil, nil, &out)
	return out.Server, err
}

// DeleteServer deletes one instance; 202 and 204 both mean accepted.
func (c *Client) DeleteServer(ctx context.Context, tenant, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/"+url.PathEscape(tenant)+"/servers/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// DeleteAllServers asks the controller to delete every instance of the
// tenant (POST servers/action os-delete).
func (c *Client) DeleteAllServers(ctx context.Context, tenant string) error {
	body := map[string]any{"action": "os-delete", "servers": nil}
	_, err := c.do(ctx, http.MethodPost, "/"+url.PathEscape(tenant)+"/servers/action", nil, body, nil)
	return err
}

// ServerAction sends os-stop or os-start as the bare body text, as the
// 2016 CLI did.
func (c *Client) ServerAction(ctx context.Context, tenant, id, action string) error {
	_, err := c.do(ctx, http.MethodPost, "/"+url.PathEscape(tenant)+"/servers/"+url.PathEscape(id)+"/action", nil, []byte(action), nil)
	return err
}

// ListFlavors lists the workloads the tenant may launch.
func (c *Client) ListFlavors(ctx context.Context, tenant string) ([]Flavor, error) {
	var out struct {
		Flavors []Flavor `json:"flavors"`
	}
	_, err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(tenant)+"/flavors/detail", nil, nil, &out)
	return out.Flavors, err
}

// ListEvents lists the tenant's events, or every event when tenant is "".
func (c *Client) ListEvents(ctx context.Context, tenant string) ([]Event, error) {
	p := "/events"
	if tenant != "" {
		p = "/" + url.PathEscape(tenant) + "/events"
	}
	var out struct {
		Events []Event `json:"events"`
	}
	_, err := c.do(ctx, http.MethodGet, p, nil, nil, &out)
	return out.Events, err
}

// ListTenants lists every tenant the controller knows (admin).
func (c *Client) ListTenants(ctx context.Context) ([]Tenant, error) {
	var out struct {
		Tenants []Tenant `json:"tenants"`
	}
	_, err := c.do(ctx, http.MethodGet, "/tenants", nil, nil, &out)
	return out.Tenants, err
}

// Quotas returns the tenant's limits and usage.
func (c *Client) Quotas(ctx context.Context, tenant string) (Quotas, error) {
	var out Quotas
	_, err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(tenant)+"/quotas", nil, nil, &out)
	return out, err
}
