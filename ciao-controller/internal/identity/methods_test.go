package identity

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// TestIdentityMethodNotAllowed walks every /v3 route: its path asked
// with a method none of its routes takes is 405 with an Allow header of
// exactly the methods the routes of that path take (from the route
// templates, not the router) and Keystone's error object, through the
// mounted handler as clients reach it; an unknown /v3 path stays 404.
func TestIdentityMethodNotAllowed(t *testing.T) {
	e := newTestEnv(t, nil)
	r, ok := e.svc.Handler().(*mux.Router)
	if !ok {
		t.Fatalf("Handler is %T, want *mux.Router", e.svc.Handler())
	}
	allowed := map[string][]string{} // concrete path → methods
	vars := regexp.MustCompile(`\{[^}]+\}`)
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return err
		}
		ms, err := rt.GetMethods()
		if err != nil {
			t.Errorf("route %s has no method matcher", tpl)
			return nil
		}
		p := vars.ReplaceAllString(tpl, "x1")
		allowed[p] = append(allowed[p], ms...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 6 {
		t.Fatalf("only %d paths walked", len(allowed))
	}
	for path, ms := range allowed {
		slices.Sort(ms)
		want := strings.Join(slices.Compact(ms), ", ")
		for _, m := range []string{"DELETE", "GET", "PATCH", "POST", "PUT"} {
			if slices.Contains(ms, m) {
				continue
			}
			resp, body := e.do(t, m, path, "")
			var eb struct {
				Error struct {
					Code    int    `json:"code"`
					Title   string `json:"title"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != want ||
				json.Unmarshal(body, &eb) != nil || eb.Error.Code != 405 || eb.Error.Title != "Method Not Allowed" ||
				!strings.Contains(eb.Error.Message, m) || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: %d Allow %q body %s, want 405 Allow %q and Keystone's error", m, path, resp.StatusCode, resp.Header.Get("Allow"), body, want)
			}
		}
	}
	if resp, body := e.do(t, "GET", "/v3/nothing-here", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"title":"Not Found"`) {
		t.Errorf("unknown path: %d %s", resp.StatusCode, body)
	}
}
