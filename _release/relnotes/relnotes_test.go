package relnotes

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"0.1.0", "1.2.3", "10.0.0-rc.1"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "1.2", "v1.2.3", "01.2.3", "1.2.3.4", "1.2.x", "1.2.3-", "1.2.3 "} {
		if err := CheckVersion(v); !errors.Is(err, ErrVersion) {
			t.Errorf("%q accepted: %v", v, err)
		}
	}
}

func TestArea(t *testing.T) {
	for subject, want := range map[string]string{
		"ciao-cli: node commands":          "cli",
		"controller: nodes endpoint":       "controller",
		"_release/systemd: units":          "release",
		"networking: VXLAN":                "networking",
		"VM START: genisoimage":            "other",
		"fix the thing":                    "other",
		"ciao-launcher/internal: x":        "launcher",
		"Makefile: build the bench":        "makefile",
		": empty":                          "other",
		"ciao-cnci-agent: SSNTP CNCIAGENT": "cnci-agent",
	} {
		if got := Area(subject); got != want {
			t.Errorf("Area(%q) = %q, want %q", subject, got, want)
		}
	}
}

// repo makes a git repository in a temporary directory; commit adds an
// empty commit with a subject, tag tags HEAD.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed")
		}
		t.Skip("git is not installed")
	}
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func (r *repo) commit(subject string) {
	r.git("commit", "-q", "--allow-empty", "-m", subject+"\n\nbody text")
}

func TestCollectSincePreviousTag(t *testing.T) {
	r := newRepo(t)
	r.commit("ciao-cli: first slice")
	r.commit("controller: first slice")
	r.git("tag", "v0.1.0")
	r.commit("ciao-cli: node commands")
	r.commit("networking: VXLAN tenant networks")
	r.git("tag", "not-a-release")
	r.commit("fix a typo")
	r.commit("controller: quotas")

	n, err := Collect(context.Background(), r.dir, "0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	if n.Previous != "v0.1.0" || len(n.Commits) != 4 || n.Commits[0].Subject != "controller: quotas" {
		t.Fatalf("notes %+v", n)
	}
	md := n.Markdown()
	for _, want := range []string{"# Ciao 0.2.0\n", "4 change(s) since v0.1.0.", "## controller\n\n- controller: quotas (",
		"## networking\n\n- networking: VXLAN tenant networks (", "## cli\n\n- ciao-cli: node commands (", "## other\n\n- fix a typo ("} {
		if !strings.Contains(md, want) {
			t.Errorf("notes lack %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "first slice") || strings.Contains(md, "body text") {
		t.Errorf("notes include commits of v0.1.0 or bodies:\n%s", md)
	}
	// Sections in the fixed order: controller before networking before cli, other last.
	if i, j, k, l := strings.Index(md, "## controller"), strings.Index(md, "## networking"), strings.Index(md, "## cli"),
		strings.Index(md, "## other"); i >= j || j >= k || k >= l {
		t.Errorf("section order:\n%s", md)
	}

	// Re-running for the release once it is tagged gives the same notes.
	r.git("tag", "v0.2.0")
	again, err := Collect(context.Background(), r.dir, "0.2.0")
	if err != nil || again.Markdown() != md {
		t.Fatalf("after tagging v0.2.0: %v\n%s", err, again.Markdown())
	}
}

func TestCollectFirstRelease(t *testing.T) {
	r := newRepo(t)
	r.commit("ssntp: frames")
	n, err := Collect(context.Background(), r.dir, "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if n.Previous != "" || len(n.Commits) != 1 || !strings.Contains(n.Markdown(), "since the beginning") {
		t.Fatalf("first release notes %+v\n%s", n, n.Markdown())
	}
}

func TestCollectRejectsBadInput(t *testing.T) {
	if _, err := Collect(context.Background(), t.TempDir(), "1.x"); !errors.Is(err, ErrVersion) {
		t.Fatalf("bad version: %v", err)
	}
	if _, err := Collect(context.Background(), t.TempDir(), "1.0.0"); err == nil || !strings.Contains(err.Error(), "git") {
		t.Fatalf("not a repository: %v", err)
	}
}
