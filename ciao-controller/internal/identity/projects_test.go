package identity

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestProjectLookup: clients resolve a project name or id through
// GET /v3/projects/{id} and then GET /v3/projects?name=, trusting the
// server's filter (keystoneclient's find takes a single answer as the
// match), so the filter must hold and a member must not get another
// project for a name; an admin finds and lists every project.
func TestProjectLookup(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.login(t, "alice", "apw", "A")
	admin := e.login(t, "admin", "secret", "admin")
	names := func(tok, path string, want int) string {
		t.Helper()
		resp, b := e.do(t, "GET", path, "", "X-Auth-Token", tok)
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, b, want)
		}
		if want != 200 {
			return ""
		}
		var l struct {
			Projects []struct{ ID, Name string }
			Project  *struct{ ID, Name string }
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if l.Project != nil {
			if l.Project.ID != e.proj[l.Project.Name] {
				t.Errorf("GET %s: %+v", path, l.Project)
			}
			return l.Project.Name
		}
		var out []string
		for _, p := range l.Projects {
			if p.ID != e.proj[p.Name] {
				t.Errorf("GET %s: %+v", path, p)
			}
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		tok, path string
		code      int
		want      string
	}{
		{alice, "/v3/projects", 200, "A"},
		{alice, "/v3/projects?name=A", 200, "A"},
		{alice, "/v3/projects?name=B", 200, ""}, // not hers: not found, not A
		{alice, "/v3/projects?name=" + url.QueryEscape(e.proj["A"]), 200, ""},
		{alice, "/v3/projects?name=A&domain_id=default", 200, "A"},
		{alice, "/v3/projects?name=A&domain_id=other", 200, ""},
		{alice, "/v3/auth/projects?name=nope", 200, ""},
		{alice, "/v3/projects/" + e.proj["A"], 200, "A"},
		{alice, "/v3/projects/" + e.proj["B"], 403, ""},
		{alice, "/v3/projects/A", 404, ""}, // a name is not an id
		{admin, "/v3/projects?name=B", 200, "B"},
		{admin, "/v3/projects/" + e.proj["B"], 200, "B"},
		{admin, "/v3/projects/nope", 404, ""},
		{"", "/v3/projects/" + e.proj["A"], 401, ""},
	} {
		if got := names(c.tok, c.path, c.code); got != c.want {
			t.Errorf("GET %s: %q, want %q", c.path, got, c.want)
		}
	}
	if got := names(admin, "/v3/projects", 200); strings.Count(got, ",") != 2 || !strings.Contains(got, "B") {
		t.Errorf("admin's project list: %q, want admin, A and B", got)
	}
}
