package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/gorilla/mux"
)

// TestMethodNotAllowed walks every route of the router (compute, legacy,
// admin and image routes): each path asked with a method none of its
// routes takes gets 405, an Allow header with exactly the methods the
// routes matching that path take (computed here from the route
// templates, not by the router), and the OpenStack error object; the
// metrics count it under route "unmatched".
func TestMethodNotAllowed(t *testing.T) {
	svc := newImageService(t)
	met := metrics.New()
	cfg := Config{Compute: noCompute{}, Store: datastore.NewMemory(), Auth: tokens, Images: svc, Metrics: met}
	r, err := newRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		re      *regexp.Regexp
		methods []string
	}
	var routes []route
	var paths []string
	vars := regexp.MustCompile(`\{[^}]+\}`)
	err = r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return err
		}
		re, err := rt.GetPathRegexp()
		if err != nil {
			return err
		}
		ms, err := rt.GetMethods()
		if err != nil {
			t.Errorf("route %s has no method matcher", tpl)
			return nil
		}
		routes = append(routes, route{regexp.MustCompile(re), ms})
		paths = append(paths, vars.ReplaceAllString(tpl, "x1"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 20 {
		t.Fatalf("only %d routes walked", len(paths))
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	checked := 0
	for _, p := range paths {
		var allowed []string
		for _, rt := range routes {
			if rt.re.MatchString(p) {
				for _, m := range rt.methods {
					if !slices.Contains(allowed, m) {
						allowed = append(allowed, m)
					}
				}
			}
		}
		slices.Sort(allowed)
		for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodPatch, http.MethodPost, http.MethodPut} {
			req, _ := http.NewRequest(m, srv.URL+p, strings.NewReader("{}"))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if slices.Contains(allowed, m) {
				if resp.StatusCode == http.StatusMethodNotAllowed {
					t.Errorf("%s %s: 405 for a registered method", m, p)
				}
				continue
			}
			checked++
			var eb errorBody
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != strings.Join(allowed, ", ") ||
				resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &eb) != nil ||
				eb.Error.Code != 405 || eb.Error.Name != "Method Not Allowed" || eb.Error.Message == "" {
				t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q and the error object", m, p, resp.StatusCode,
					resp.Header.Get("Allow"), body, strings.Join(allowed, ", "))
			}
		}
	}
	// Unknown paths stay 404.
	resp, err := srv.Client().Get(srv.URL + "/v2.1/x1/nowhere/else")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `ciao_controller_http_requests_total{code="405",method="PUT",route="unmatched"}`) {
		t.Error("405s not counted under route unmatched")
	}
	t.Logf("%d paths, %d method mismatches checked", len(paths), checked)
}
