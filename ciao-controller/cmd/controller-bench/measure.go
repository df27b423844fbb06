package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const workload = "e35ed972-c46c-4aad-a1e7-ef103ae079a2" // Clear Cloud, a shipped workload

// bench drives the compute API.
type bench struct {
	base       string
	clients    int
	hc         *http.Client
	metricsURL string // the controller's Prometheus metrics
	label      string // server name of the creates ("" = untraced)
}

func newBench(base string, clients int) *bench {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, // throwaway certificate of this run
		MaxIdleConns:        clients + 4,
		MaxIdleConnsPerHost: clients + 4,
	}
	return &bench{base: base, clients: clients, hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

func (b *bench) do(ctx context.Context, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func (b *bench) create(ctx context.Context, n int) error {
	code, body, err := b.do(ctx, http.MethodPost, "/servers",
		fmt.Sprintf(`{"server":{"name":%q,"flavorRef":%q,"max_count":%d}}`, b.label, workload, n))
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("create %d: HTTP %d: %s", n, code, bytes.TrimSpace(body))
	}
	return nil
}

// parallel runs job(i) for i in [0,n) on b.clients workers and returns the
// first error.
func (b *bench) parallel(parent context.Context, n int, job func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := 0; w < b.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := job(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = parent.Err()
	}
	return first
}

type listing struct {
	Total   int `json:"total_servers"`
	Servers []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"servers"`
}

func (b *bench) listAll(ctx context.Context) (listing, time.Duration, error) {
	var l listing
	t0 := time.Now()
	code, body, err := b.do(ctx, http.MethodGet, "/servers/detail", "")
	d := time.Since(t0)
	if err != nil {
		return l, d, err
	}
	if code != http.StatusOK {
		return l, d, fmt.Errorf("list: HTTP %d: %s", code, bytes.TrimSpace(body))
	}
	return l, d, json.Unmarshal(body, &l)
}

// launch creates n instances in requests of up to batch each, on b.clients
// workers, and waits until the API shows all of them ACTIVE.
func (b *bench) launch(ctx context.Context, n, batch int) error {
	reqs := (n + batch - 1) / batch
	t0 := time.Now()
	err := b.parallel(ctx, reqs, func(ctx context.Context, i int) error {
		k := batch
		if last := n - i*batch; last < k {
			k = last
		}
		return b.create(ctx, k)
	})
	if err != nil {
		return err
	}
	accepted := time.Since(t0)
	active, seen := 0, 0
	for {
		l, _, err := b.listAll(ctx)
		if err != nil {
			return err
		}
		active, seen = 0, len(l.Servers)
		for _, s := range l.Servers {
			if strings.EqualFold(s.Status, "active") {
				active++
			}
		}
		if active >= n {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for ACTIVE: %d of %d (%d listed): %w", active, n, seen, err)
		}
	}
	total := time.Since(t0)
	fmt.Printf("launch: %d instances on launchers: all ACTIVE after %v (creates accepted after %v, %d requests of <=%d), %.0f instances/s\n",
		n, total.Round(time.Millisecond), accepted.Round(time.Millisecond), reqs, batch, float64(n)/total.Seconds())
	return nil
}

// list times GET servers/detail over want instances: median and worst of
// five sequential requests after one warm-up.
func (b *bench) list(ctx context.Context, want int) error {
	var ds []time.Duration
	for i := 0; i < 6; i++ {
		l, d, err := b.listAll(ctx)
		if err != nil {
			return err
		}
		if len(l.Servers) < want {
			return fmt.Errorf("list returned %d servers, want %d", len(l.Servers), want)
		}
		if i > 0 {
			ds = append(ds, d)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Printf("list: GET servers/detail of %d instances: median %v, max %v (goal <= 100ms)\n",
		want, ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
	return nil
}

// createLatency times n single-instance creates from b.clients concurrent
// clients.
func (b *bench) createLatency(ctx context.Context, n int) error {
	lat := make([]time.Duration, n)
	before, _ := b.serverHistogram(ctx)
	t0 := time.Now()
	err := b.parallel(ctx, n, func(ctx context.Context, i int) error {
		s := time.Now()
		err := b.create(ctx, 1)
		lat[i] = time.Since(s)
		return err
	})
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		i := int(p*float64(n)+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= n {
			i = n - 1
		}
		return lat[i].Round(time.Microsecond)
	}
	fmt.Printf("create: %d creates at %d concurrent clients: p50 %v, p99 %v, max %v, %.0f req/s (goal p99 <= 50ms)\n",
		n, b.clients, pct(0.50), pct(0.99), lat[n-1].Round(time.Microsecond), float64(n)/wall.Seconds())
	if after, err := b.serverHistogram(ctx); err == nil && before != nil {
		fmt.Printf("create: inside the controller (request read to response written, its metrics): p50 <= %s, p99 <= %s\n",
			quantile(before, after, 0.50), quantile(before, after, 0.99))
	}
	return nil
}

// createHist is the route of the create histogram in the metrics text.
const createHist = `ciao_controller_http_request_duration_seconds_bucket{method="POST",route="/v2.1/{tenant}/servers",le="`

// serverHistogram reads the cumulative bucket counts (le → count) of the
// controller's create-request histogram.
func (b *bench) serverHistogram(ctx context.Context) (map[float64]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[float64]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, createHist)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		l, err1 := strconv.ParseFloat(le, 64)
		c, err2 := strconv.ParseFloat(count, 64)
		if err1 == nil && err2 == nil {
			out[l] = c
		}
	}
	return out, nil
}

// quantile is the upper bound of the bucket holding quantile q of the
// observations between two readings.
func quantile(before, after map[float64]float64, q float64) string {
	var les []float64
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return "?"
	}
	total := after[les[len(les)-1]] - before[les[len(les)-1]]
	for _, le := range les {
		if after[le]-before[le] >= q*total {
			if math.IsInf(le, 1) {
				return "+Inf"
			}
			return time.Duration(le * float64(time.Second)).Round(time.Microsecond).String()
		}
	}
	return "?"
}
