// Package relnotes writes release notes from the git history: the commits
// since the previous release tag (v<semver>), grouped by the area their
// subject names ("ciao-cli: ..." → cli), newest first within an area.
package relnotes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrVersion: a version that is not x.y.z[-pre].
var ErrVersion = errors.New("relnotes: version must be x.y.z or x.y.z-pre (semantic versioning)")

var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// CheckVersion validates a release version (without the v of its tag).
func CheckVersion(v string) error {
	if !semver.MatchString(v) {
		return fmt.Errorf("%w: %q", ErrVersion, v)
	}
	return nil
}

// Commit is one commit of the release.
type Commit struct {
	Hash    string
	Time    time.Time
	Subject string
}

// Notes are a release's notes.
type Notes struct {
	Version  string
	Previous string    // previous release tag, "" for the first release
	Head     string    // commit the release is built from
	Date     time.Time // its commit time
	Commits  []Commit  // newest first
}

// Collect reads the notes of version from the repository at dir: the
// commits reachable from HEAD and not from the newest release tag other
// than v<version>. Merge commits are left out.
func Collect(ctx context.Context, dir, version string) (Notes, error) {
	if err := CheckVersion(version); err != nil {
		return Notes{}, err
	}
	n := Notes{Version: version}
	head, err := git(ctx, dir, "log", "-1", "--format=%H %ct", "HEAD")
	if err != nil {
		return n, err
	}
	f := strings.Fields(head)
	if len(f) != 2 {
		return n, fmt.Errorf("relnotes: unexpected git log output %q", head)
	}
	n.Head = f[0]
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return n, fmt.Errorf("relnotes: commit time %q: %w", f[1], err)
	}
	n.Date = time.Unix(sec, 0).UTC()
	tags, err := git(ctx, dir, "tag", "--list", "v*", "--merged", "HEAD", "--sort=-v:refname")
	if err != nil {
		return n, err
	}
	for _, t := range strings.Fields(tags) {
		if t != "v"+version && CheckVersion(strings.TrimPrefix(t, "v")) == nil {
			n.Previous = t
			break
		}
	}
	rng := "HEAD"
	if n.Previous != "" {
		rng = n.Previous + "..HEAD"
	}
	out, err := git(ctx, dir, "log", "--no-merges", "--format=%H%x00%ct%x00%s", rng)
	if err != nil {
		return n, err
	}
	for _, line := range strings.Split(out, "\n") {
		p := strings.SplitN(line, "\x00", 3)
		if len(p) != 3 {
			continue
		}
		s, _ := strconv.ParseInt(p[1], 10, 64)
		n.Commits = append(n.Commits, Commit{Hash: p[0], Time: time.Unix(s, 0).UTC(), Subject: p[2]})
	}
	return n, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("relnotes: git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Area is the part of Ciao a commit subject names: the text before the
// first ": " when it is one word or path ("ciao-cli", "_release/systemd"),
// reduced to its first path element without the "ciao-" prefix; "other"
// otherwise.
func Area(subject string) string {
	a, _, ok := strings.Cut(subject, ": ")
	if !ok || a == "" || strings.ContainsAny(a, " \t") {
		return "other"
	}
	a, _, _ = strings.Cut(a, "/")
	a = strings.TrimPrefix(strings.TrimPrefix(a, "ciao-"), "_")
	if a == "" {
		return "other"
	}
	return strings.ToLower(a)
}

// areaOrder puts the daemons and the wire first; other areas follow in
// alphabetical order, "other" last.
var areaOrder = []string{"controller", "scheduler", "launcher", "networking", "cnci-agent", "cli", "webui", "ssntp", "payloads"}

func areaRank(a string) (int, string) {
	for i, x := range areaOrder {
		if x == a {
			return i, a
		}
	}
	if a == "other" {
		return len(areaOrder) + 1, a
	}
	return len(areaOrder), a
}

// Markdown renders the notes.
func (n Notes) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ciao %s\n\n", n.Version)
	since := "since " + n.Previous
	if n.Previous == "" {
		since = "since the beginning (first release)"
	}
	fmt.Fprintf(&b, "Released %s from commit %s; %d change(s) %s.\n", n.Date.Format("2006-01-02"), short(n.Head), len(n.Commits), since)
	byArea := map[string][]Commit{}
	for _, c := range n.Commits {
		a := Area(c.Subject)
		byArea[a] = append(byArea[a], c)
	}
	areas := make([]string, 0, len(byArea))
	for a := range byArea {
		areas = append(areas, a)
	}
	sort.Slice(areas, func(i, j int) bool {
		ri, ai := areaRank(areas[i])
		rj, aj := areaRank(areas[j])
		if ri != rj {
			return ri < rj
		}
		return ai < aj
	})
	for _, a := range areas {
		fmt.Fprintf(&b, "\n## %s\n\n", a)
		for _, c := range byArea[a] {
			fmt.Fprintf(&b, "- %s (%s)\n", c.Subject, short(c.Hash))
		}
	}
	return b.String()
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
