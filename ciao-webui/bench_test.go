package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// benchInstances is how many instances the list benchmark shows.
const benchInstances = 1000

// launch creates n instances of the first workload through the API, in
// batches of 100.
func (c *cluster) launch(tb testing.TB, tok, tenantID string, n int) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.ctlURL+"/v2.1/"+tenantID+"/flavors", nil)
	req.Header.Set("X-Auth-Token", tok)
	resp, err := c.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	var fl struct {
		Flavors []struct{ ID string } `json:"flavors"`
	}
	err = decodeJSON(resp, &fl)
	if err != nil || len(fl.Flavors) == 0 {
		tb.Fatalf("flavors: %v %v", err, fl)
	}
	for done := 0; done < n; done += 100 {
		k := min(100, n-done)
		body := fmt.Sprintf(`{"server":{"flavorRef":%q,"max_count":%d,"min_count":%d}}`, fl.Flavors[0].ID, k, k)
		req, _ := http.NewRequest(http.MethodPost, c.ctlURL+"/v2.1/"+tenantID+"/servers", strings.NewReader(body))
		req.Header.Set("X-Auth-Token", tok)
		resp, err := c.client.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			tb.Fatalf("create: HTTP %d", resp.StatusCode)
		}
	}
}

// BenchmarkInstanceList measures, in headless Chromium against the real
// cluster with 1,000 instances, the time from navigation start to the
// first render of the instance list (ms/first-render-100 for the default
// page of 100, ms/first-render-1000 with all 1,000 rows on one page), and
// the median cost of one live-update round over the 1,000-row page
// (ms/live-update: fetch, diff and DOM update).
//
//	go test -run '^$' -bench InstanceList -benchtime 5x ./ciao-webui/
func BenchmarkInstanceList(b *testing.B) {
	chromiumPath(b)
	c := startCluster(b, 4)
	tok, tenantID := c.token(b, adminUser, c.adminPass, "admin")
	c.launch(b, tok, tenantID, benchInstances)
	ctx := newBrowser(b, 1280, 900)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		b.Helper()
		tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			b.Fatalf("%s: %v", what, err)
		}
	}
	run("sign in", chromedp.Navigate(c.webURL+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		js(fmt.Sprintf(`(() => { const f = document.querySelector("#signin-form"); f.user.value = %q; f.password.value = %q; f.project.value = "admin"; })()`, adminUser, c.adminPass)),
		chromedp.Click(chromedp.CSS("#si-submit")), chromedp.WaitVisible(chromedp.CSS("#instances")))

	firstRender := func(per int) float64 {
		run("reload", chromedp.Navigate("about:blank"), chromedp.Navigate(fmt.Sprintf("%s/#/instances?page=0&per=%d", c.webURL, per)),
			chromedp.WaitVisible(chromedp.CSS("#instances")),
			waitJS(fmt.Sprintf(`window.ciaoPerf && window.ciaoPerf.rows === %d`, per)))
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`window.ciaoPerf.firstRenderMs`))
		if err != nil {
			b.Fatal(err)
		}
		return ms
	}
	// Wait until the controller lists them all.
	firstRender(100)
	run("all listed", waitJS(fmt.Sprintf(`document.querySelector("#page-summary").textContent.endsWith("of %d")`, benchInstances)))

	var sum100, sum1000 float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum100 += firstRender(100)
		sum1000 += firstRender(benchInstances)
	}
	b.StopTimer()
	// Live updates on the 1,000-row page: five rounds.
	run("live rounds", waitJS(`window.ciaoPerf.refreshMs.length >= 5`))
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rounds, err := chromedp.Run(tctx, chromedp.Evaluate[[]float64](`window.ciaoPerf.refreshMs`))
	if err != nil {
		b.Fatal(err)
	}
	sort.Float64s(rounds)
	b.ReportMetric(sum100/float64(b.N), "ms/first-render-100")
	b.ReportMetric(sum1000/float64(b.N), "ms/first-render-1000")
	b.ReportMetric(rounds[len(rounds)/2], "ms/live-update")
}
