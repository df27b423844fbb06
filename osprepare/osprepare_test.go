package osprepare

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

type testLogger struct{ t testing.TB }

func (l testLogger) Infof(f string, a ...any)    { l.t.Helper(); l.t.Logf("INFO "+f, a...) }
func (l testLogger) Warningf(f string, a ...any) { l.t.Helper(); l.t.Logf("WARN "+f, a...) }
func (l testLogger) Errorf(f string, a ...any)   { l.t.Helper(); l.t.Logf("ERROR "+f, a...) }

// fakeRunner records commands. Binaries in have are found by LookPath;
// packages in installed answer the package-manager queries; fail makes the
// command whose name it names fail.
type fakeRunner struct {
	have      map[string]bool
	installed map[string]bool
	fail      string

	mu   sync.Mutex
	cmds []string // "ENV... name args..." of every Run, in order
}

func (f *fakeRunner) LookPath(file string) (string, error) {
	if f.have[file] {
		return "/usr/bin/" + file, nil
	}
	return "", exec.ErrNotFound
}

func (f *fakeRunner) Run(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, strings.Join(append(append(append([]string{}, env...), name), args...), " "))
	f.mu.Unlock()
	if name == f.fail {
		return []byte("E: Unable to locate package\n"), errors.New("exit status 100")
	}
	switch name {
	case "dpkg-query":
		pkg := args[len(args)-1]
		if f.installed[pkg] {
			return []byte("install ok installed"), nil
		}
		return []byte("dpkg-query: no packages found matching " + pkg), errors.New("exit status 1")
	case "rpm":
		if f.installed[args[len(args)-1]] {
			return nil, nil
		}
		return nil, errors.New("exit status 1")
	}
	return []byte("ok\n"), nil
}

// installs returns the recorded commands that are not queries.
func (f *fakeRunner) installs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		if !strings.HasPrefix(c, "dpkg-query") && !strings.HasPrefix(c, "rpm ") {
			out = append(out, c)
		}
	}
	return out
}

func newTestInstaller(t *testing.T, fixture string, r *fakeRunner, modify func(*Config)) *Installer {
	t.Helper()
	cfg := Config{Runner: r, Logger: testLogger{t}, OSReleasePaths: []string{filepath.Join("testdata", fixture)}}
	if modify != nil {
		modify(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return in
}

func TestDetect(t *testing.T) {
	tests := []struct {
		fixture   string
		family    Family
		id        string
		versionID string
		wantErr   error
	}{
		{"debian-12", FamilyDebian, "debian", "12", nil},
		{"ubuntu-22.04", FamilyDebian, "ubuntu", "22.04", nil},
		{"fedora-39", FamilyFedora, "fedora", "39", nil},
		{"clearlinux", FamilyClearLinux, "clear-linux-os", "40000", nil},
		{"linuxmint-21", FamilyDebian, "linuxmint", "21.2", nil}, // via ID_LIKE
		{"alpine-3.19", "", "alpine", "3.19.0", ErrUnsupportedDistro},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			rel, err := ReadOSRelease(filepath.Join("testdata", tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if rel.ID != tc.id || rel.VersionID != tc.versionID {
				t.Errorf("ID=%q VERSION_ID=%q", rel.ID, rel.VersionID)
			}
			d, err := DetectDistro(rel)
			if !errors.Is(err, tc.wantErr) || d.Family != tc.family {
				t.Fatalf("DetectDistro = %v, %v; want %v, %v", d.Family, err, tc.family, tc.wantErr)
			}
		})
	}
}

func TestParseOSReleaseQuoting(t *testing.T) {
	rel, err := ParseOSRelease(strings.NewReader("# comment\nID='ubuntu'\nID_LIKE=\"Debian  other\"\nPRETTY_NAME=\"A \\\"quoted\\\" \\$name\"\nnot a pair\nVERSION_ID=1=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rel.ID != "ubuntu" || !reflect.DeepEqual(rel.IDLike, []string{"debian", "other"}) ||
		rel.PrettyName != `A "quoted" $name` || rel.VersionID != "1=2" {
		t.Fatalf("got %+v", rel)
	}
}

func TestReadOSReleaseFallback(t *testing.T) {
	dir := t.TempDir()
	rel, err := ReadOSRelease(filepath.Join(dir, "absent"), filepath.Join("testdata", "fedora-39"))
	if err != nil || rel.ID != "fedora" {
		t.Fatalf("fallback: %+v, %v", rel, err)
	}
	if _, err := ReadOSRelease(filepath.Join(dir, "absent")); !errors.Is(err, ErrUnsupportedDistro) {
		t.Fatalf("no file: %v", err)
	}
}

func TestInstall(t *testing.T) {
	tests := []struct {
		name          string
		fixture       string
		have          []string // binaries found
		installed     []string // packages the package manager knows
		sudo          bool
		dryRun        bool
		components    []Component
		wantInstalled []string
		wantCmds      []string
	}{
		{
			name: "debian launcher, some present", fixture: "debian-12",
			have:          []string{"ip", "iptables", "fuser"},
			installed:     []string{"qemu-utils"},
			components:    []Component{Launcher},
			wantInstalled: []string{"qemu-system-x86", "genisoimage", "docker.io", "dnsmasq"},
			wantCmds: []string{
				"DEBIAN_FRONTEND=noninteractive apt-get update",
				"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 genisoimage docker.io dnsmasq",
			},
		},
		{
			name: "ubuntu as a user uses sudo", fixture: "ubuntu-22.04", sudo: true,
			have:          []string{"qemu-system-x86_64", "qemu-img", "genisoimage", "dockerd", "fuser", "ip", "iptables"},
			components:    []Component{Launcher, Scheduler},
			wantInstalled: []string{"dnsmasq"},
			wantCmds: []string{
				"sudo -n DEBIAN_FRONTEND=noninteractive apt-get update",
				"sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq",
			},
		},
		{
			name: "fedora", fixture: "fedora-39",
			installed:     []string{"iproute", "iptables", "psmisc", "moby-engine", "dnsmasq", "genisoimage"},
			components:    []Component{Launcher},
			wantInstalled: []string{"qemu-system-x86", "qemu-img"},
			wantCmds:      []string{"dnf install -y qemu-system-x86 qemu-img"},
		},
		{
			name: "clear linux bundles once", fixture: "clearlinux",
			components:    []Component{Launcher},
			wantInstalled: []string{"cloud-control", "network-basic"},
			wantCmds:      []string{"swupd bundle-add cloud-control network-basic"},
		},
		{
			name: "clear linux bundle marker counts", fixture: "clearlinux",
			have:          []string{"/usr/share/clear/bundles/cloud-control"},
			components:    []Component{Launcher},
			wantInstalled: []string{"network-basic"},
			wantCmds:      []string{"swupd bundle-add network-basic"},
		},
		{
			name: "dry run installs nothing", fixture: "debian-12", dryRun: true,
			components:    []Component{Launcher},
			wantInstalled: []string{"qemu-system-x86", "qemu-utils", "genisoimage", "docker.io", "psmisc", "iproute2", "dnsmasq", "iptables"},
		},
		{
			name: "controller and scheduler need nothing", fixture: "fedora-39",
			components: []Component{Controller, Scheduler},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{have: set(tc.have), installed: set(tc.installed)}
			in := newTestInstaller(t, tc.fixture, r, func(c *Config) { c.Sudo, c.DryRun = tc.sudo, tc.dryRun })
			res, err := in.Install(context.Background(), tc.components...)
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			if !reflect.DeepEqual(res.Installed, tc.wantInstalled) {
				t.Errorf("installed %q, want %q", res.Installed, tc.wantInstalled)
			}
			if got := r.installs(); !reflect.DeepEqual(got, tc.wantCmds) {
				t.Errorf("commands\n got %q\nwant %q", got, tc.wantCmds)
			}
		})
	}
}

func TestAptUpdateOnce(t *testing.T) {
	r := &fakeRunner{}
	in := newTestInstaller(t, "debian-12", r, nil)
	ctx := context.Background()
	for _, pkg := range []string{"a", "b"} {
		if _, err := in.InstallRequirements(ctx, []Requirement{{Package: pkg, Binary: pkg}}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"DEBIAN_FRONTEND=noninteractive apt-get update",
		"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends a",
		"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends b",
	}
	if got := r.installs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestInstallFailure(t *testing.T) {
	r := &fakeRunner{fail: "apt-get"}
	in := newTestInstaller(t, "debian-12", r, nil)
	_, err := in.InstallRequirements(context.Background(), []Requirement{{Package: "nosuch", Binary: "nosuch"}})
	if !errors.Is(err, ErrInstall) || !strings.Contains(err.Error(), "apt-get update") ||
		!strings.Contains(err.Error(), "Unable to locate package") {
		t.Fatalf("error = %v", err)
	}
	// update failed, so the next attempt must try it again.
	r.fail = ""
	if _, err := in.InstallRequirements(context.Background(), []Requirement{{Package: "nosuch"}}); err != nil {
		t.Fatal(err)
	}
	if got := r.installs(); len(got) != 3 || !strings.HasSuffix(got[1], "apt-get update") {
		t.Fatalf("commands %q", got)
	}
}

func TestRequirementsErrors(t *testing.T) {
	if _, err := Requirements(FamilyDebian, "webui"); !errors.Is(err, ErrUnknownComponent) {
		t.Errorf("unknown component: %v", err)
	}
	if _, err := Requirements("gentoo", Launcher); !errors.Is(err, ErrUnsupportedDistro) {
		t.Errorf("unknown family: %v", err)
	}
	// Every family has a launcher table and every entry names a package
	// and a binary.
	for f := range requirements {
		rs, _ := Requirements(f, Launcher)
		if len(rs) == 0 {
			t.Errorf("%s: no launcher requirements", f)
		}
		for _, r := range rs {
			if r.Package == "" || r.Binary == "" {
				t.Errorf("%s: incomplete %+v", f, r)
			}
		}
	}
	if c, err := ParseComponent(" Launcher "); err != nil || c != Launcher {
		t.Errorf("ParseComponent = %v, %v", c, err)
	}
}

// TestRealHost runs detection and the presence check on this machine,
// without installing anything: it must see Debian 12 and find iproute2
// and coreutils already present.
func TestRealHost(t *testing.T) {
	rel, err := ReadOSRelease()
	if err != nil {
		t.Skipf("no os-release: %v", err)
	}
	if rel.ID != "debian" || rel.VersionID != "12" {
		t.Skipf("not Debian 12 (%s %s)", rel.ID, rel.VersionID)
	}
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("dpkg-query not available")
	}
	rec := &recordingRunner{}
	cfg := NewConfig()
	cfg.Runner, cfg.Logger = rec, testLogger{t}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if in.Distro().Family != FamilyDebian {
		t.Fatalf("family %s", in.Distro().Family)
	}
	// coreutils is checked through dpkg-query (no binary given), iproute2
	// through its key binary.
	res, err := in.InstallRequirements(context.Background(), []Requirement{
		{Package: "coreutils"}, {Package: "iproute2", Binary: "ip"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Present, []string{"coreutils", "iproute2"}) || len(res.Installed) != 0 {
		t.Fatalf("result %+v", res)
	}
	for _, c := range rec.cmds {
		if !strings.HasPrefix(c, "dpkg-query") {
			t.Errorf("ran %q; only queries were expected", c)
		}
	}
	if _, err := os.Stat("/usr/bin/dpkg-query"); err == nil && len(rec.cmds) == 0 {
		t.Error("coreutils was not checked with dpkg-query")
	}
}

// recordingRunner runs real commands and remembers them.
type recordingRunner struct {
	ExecRunner
	cmds []string
}

func (r *recordingRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	r.cmds = append(r.cmds, strings.Join(append([]string{name}, args...), " "))
	return r.ExecRunner.Run(ctx, env, name, args...)
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
