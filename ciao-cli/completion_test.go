package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// script runs "ciao-cli completion <shell>" with no credentials at all
// and saves the output to a file.
func script(t *testing.T, shell string) (text, path string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := runEnv(t.Context(), []string{"completion", shell}, envOf(nil), &stdout, &stderr); err != nil {
		t.Fatalf("completion %s: %v (%s)", shell, err, stderr.String())
	}
	path = filepath.Join(t.TempDir(), "ciao-cli."+shell)
	if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return stdout.String(), path
}

// tableFlags lists the flags a sub-command defines, straight from its
// setup function.
func tableFlags(s subcommand) []string {
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	s.setup(fs)
	var n []string
	fs.VisitAll(func(f *flag.Flag) { n = append(n, f.Name) })
	return n
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	sort.Strings(out)
	return out
}

// complete runs the completion function of the script at path in a
// shell subprocess with the cursor on the last word and returns the
// candidates, sorted.
func complete(t *testing.T, shell, path string, words ...string) []string {
	t.Helper()
	var prog string
	switch shell {
	case "bash":
		prog = `f=$1; shift; source "$f" || exit 1; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _ciao_cli; printf '%s\n' "${COMPREPLY[@]}"`
	case "zsh":
		// Outside a completion widget: stub compdef and compadd (zsh
		// filters compadd's candidates itself, so all are printed).
		prog = `f=$1; shift; compdef() { :; }; compadd() { shift; print -rl -- "$@"; }; source "$f" || exit 1; words=("$@"); CURRENT=$#words; _ciao_cli`
	}
	out, err := exec.Command(shell, append([]string{"-c", prog, "sh", path}, words...)...).CombinedOutput()
	if err != nil && len(out) > 0 {
		t.Fatalf("%s %q: %v: %s", shell, words, err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}

func equal(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }

func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed:", err)
	}
	_, path := script(t, "bash")
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v: %s", err, out)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ciao-cli", "ins"}, []string{"instance"}},
		{[]string{"ciao-cli", "instance", "a"}, []string{"add"}},
		// -w is also -wait; -wo is unique.
		{[]string{"ciao-cli", "instance", "add", "-w"}, []string{"-wait", "-workload"}},
		{[]string{"ciao-cli", "instance", "add", "-wo"}, []string{"-workload"}},
		{[]string{"ciao-cli", "instance", "add", "--wo"}, []string{"--workload"}},
		{[]string{"ciao-cli", "-controller", "host", "--token=x", "ins"}, []string{"instance"}},
		{[]string{"ciao-cli", "-con"}, []string{"-controller"}},
		// The cursor is on a flag's value.
		{[]string{"ciao-cli", "-controller", "ins"}, nil},
		{[]string{"ciao-cli", "instance", "add", "-workload", ""}, nil},
		// A boolean flag takes no value.
		{[]string{"ciao-cli", "instance", "add", "-wait", "-wo"}, []string{"-workload"}},
		{[]string{"ciao-cli", "nosuch", ""}, nil},
	} {
		if got := complete(t, "bash", path, tc.words...); !equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed, skipping the zsh -n check:", err)
	}
	_, path := script(t, "zsh")
	if out, err := exec.Command("zsh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v: %s", err, out)
	}
	var names []string // zsh filters by prefix itself: every command is offered
	for _, c := range commands() {
		names = append(names, c.name)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ciao-cli", "-controller", "x", "ins"}, names},
		{[]string{"ciao-cli", "instance", "add", "--wo"}, prefixed("--", []string{"f", "instances", "json", "label", "timeout", "wait", "workload"})},
		{[]string{"ciao-cli", "instance", "add", "-workload", ""}, nil},
	} {
		if got := complete(t, "zsh", path, tc.words...); !equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// Every command, sub-command and flag of the table is in both scripts,
// and (where the shell is installed) is exactly what gets completed.
func TestCompletionCoversTable(t *testing.T) {
	var cmds []string
	for _, c := range commands() {
		cmds = append(cmds, c.name)
	}
	sort.Strings(cmds)
	gfs := flag.NewFlagSet("ciao-cli", flag.ContinueOnError)
	globalFlags(gfs, &config{})
	var global []string
	gfs.VisitAll(func(f *flag.Flag) { global = append(global, f.Name) })
	for _, shell := range []string{"bash", "zsh"} {
		text, path := script(t, shell)
		for _, c := range commands() {
			if !strings.Contains(text, "\t"+c.name+"/)") {
				t.Errorf("%s: command %s missing", shell, c.name)
			}
			for _, s := range c.subs {
				if !strings.Contains(text, "\t"+c.name+"/"+s.name+")") {
					t.Errorf("%s: sub-command %s %s missing", shell, c.name, s.name)
				}
			}
		}
		if _, err := exec.LookPath(shell); err != nil {
			t.Logf("%s not installed: checked the script text only", shell)
			continue
		}
		if got := complete(t, shell, path, "ciao-cli", ""); !equal(got, cmds) {
			t.Errorf("%s: commands: got %q, want %q", shell, got, cmds)
		}
		if got, want := complete(t, shell, path, "ciao-cli", "-"), prefixed("-", global); !equal(got, want) {
			t.Errorf("%s: global options: got %q, want %q", shell, got, want)
		}
		for _, c := range commands() {
			var subs []string
			for _, s := range c.subs {
				subs = append(subs, s.name)
			}
			sort.Strings(subs)
			if got := complete(t, shell, path, "ciao-cli", c.name, ""); !equal(got, subs) {
				t.Errorf("%s: %s sub-commands: got %q, want %q", shell, c.name, got, subs)
			}
			for _, s := range c.subs {
				want := prefixed("-", tableFlags(s))
				if len(want) == 0 {
					want = nil
				}
				if got := complete(t, shell, path, "ciao-cli", c.name, s.name, "-"); !equal(got, want) {
					t.Errorf("%s: %s %s flags: got %q, want %q", shell, c.name, s.name, got, want)
				}
			}
		}
	}
}

func TestCompletionNeedsNoCredentialsAndRejectsUnknownShell(t *testing.T) {
	var stderr bytes.Buffer
	err := runEnv(t.Context(), []string{"completion", "fish"}, envOf(nil), io.Discard, &stderr)
	if report(err, io.Discard) != 2 || !strings.Contains(stderr.String(), "bash") {
		t.Errorf("completion fish: err = %v, stderr %q", err, stderr.String())
	}
	stderr.Reset()
	runEnv(t.Context(), []string{"-help"}, envOf(nil), io.Discard, &stderr)
	if !strings.Contains(stderr.String(), "source <(ciao-cli completion bash)") {
		t.Errorf("global -help does not say how to install completion:\n%s", stderr.String())
	}
}

var helpFlag = regexp.MustCompile(`(?m)^  -(\S+)`)

// helpFlags lists the flags "-help" output documents, sorted.
func helpFlags(help string) []string {
	var n []string
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		n = append(n, m[1])
	}
	sort.Strings(n)
	return n
}

// -help lists exactly the flags the code defines, no more, no fewer.
func TestHelpListsExactlyTheFlags(t *testing.T) {
	for _, c := range commands() {
		for _, s := range c.subs {
			var stderr bytes.Buffer
			runEnv(t.Context(), []string{c.name, s.name, "-help"}, envOf(nil), io.Discard, &stderr)
			want := tableFlags(s)
			sort.Strings(want)
			if got := helpFlags(stderr.String()); !equal(got, want) {
				t.Errorf("%s %s -help lists %q, the code defines %q", c.name, s.name, got, want)
			}
		}
	}
	var stderr bytes.Buffer
	runEnv(t.Context(), []string{"-help"}, envOf(nil), io.Discard, &stderr)
	fs := flag.NewFlagSet("ciao-cli", flag.ContinueOnError)
	globalFlags(fs, &config{})
	var want []string
	fs.VisitAll(func(f *flag.Flag) { want = append(want, f.Name) })
	if got := helpFlags(stderr.String()); !equal(got, want) {
		t.Errorf("-help lists %q, the code defines %q", got, want)
	}
}
