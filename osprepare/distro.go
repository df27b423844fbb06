package osprepare

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// DefaultOSReleasePaths are where os-release(5) says to look, in order.
var DefaultOSReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}

// OSRelease holds the os-release fields detection uses.
type OSRelease struct {
	ID         string   // e.g. "debian", "ubuntu", "fedora", "clear-linux-os"
	IDLike     []string // e.g. ["debian"] on Ubuntu
	VersionID  string   // e.g. "12", "22.04", "39"
	PrettyName string
	Fields     map[string]string // every KEY=value, unquoted
}

// ParseOSRelease parses os-release(5) text: KEY=value lines, values
// optionally in single or double quotes, # comments.
func ParseOSRelease(r io.Reader) (OSRelease, error) {
	rel := OSRelease{Fields: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		rel.Fields[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return OSRelease{}, fmt.Errorf("osprepare: read os-release: %w", err)
	}
	rel.ID = strings.ToLower(rel.Fields["ID"])
	rel.IDLike = strings.Fields(strings.ToLower(rel.Fields["ID_LIKE"]))
	rel.VersionID = rel.Fields["VERSION_ID"]
	rel.PrettyName = rel.Fields["PRETTY_NAME"]
	if rel.PrettyName == "" {
		rel.PrettyName = rel.Fields["NAME"]
	}
	return rel, nil
}

// unquote removes one level of shell quoting and the backslash escapes
// os-release allows inside double quotes.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, "\\`", "`", `\$`, `$`)
			v = r.Replace(v)
		}
	}
	return v
}

// ReadOSRelease parses the first readable file of paths (default
// DefaultOSReleasePaths).
func ReadOSRelease(paths ...string) (OSRelease, error) {
	if len(paths) == 0 {
		paths = DefaultOSReleasePaths
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return OSRelease{}, fmt.Errorf("osprepare: open %s: %w", p, err)
		}
		defer f.Close()
		return ParseOSRelease(f)
	}
	return OSRelease{}, fmt.Errorf("%w: no os-release in %s", ErrUnsupportedDistro, strings.Join(paths, ", "))
}

// Family is a group of distributions sharing a package manager and
// package names.
type Family string

// Supported families.
const (
	FamilyDebian     Family = "debian"     // apt-get, .deb names
	FamilyFedora     Family = "fedora"     // dnf, Fedora names
	FamilyClearLinux Family = "clearlinux" // swupd bundles
)

// Distro is a detected distribution.
type Distro struct {
	Family  Family
	Release OSRelease
}

// familyOf maps os-release IDs to families. RHEL-likes are left out on
// purpose: their package names differ (no qemu-system-x86) and nobody has
// checked them.
var familyOf = map[string]Family{
	"debian":         FamilyDebian,
	"ubuntu":         FamilyDebian,
	"fedora":         FamilyFedora,
	"clear-linux-os": FamilyClearLinux,
}

// DetectDistro picks the family from ID, then from ID_LIKE in order, so
// derivatives (Ubuntu flavours, Raspbian, ...) work without being listed.
func DetectDistro(rel OSRelease) (Distro, error) {
	for _, id := range append([]string{rel.ID}, rel.IDLike...) {
		if f, ok := familyOf[id]; ok {
			return Distro{Family: f, Release: rel}, nil
		}
		// The 2016 code matched any ID starting with "clear-linux".
		if strings.HasPrefix(id, "clear-linux") {
			return Distro{Family: FamilyClearLinux, Release: rel}, nil
		}
	}
	return Distro{}, fmt.Errorf("%w: ID=%q ID_LIKE=%q (%s)", ErrUnsupportedDistro,
		rel.ID, strings.Join(rel.IDLike, " "), rel.PrettyName)
}

// Component is a ciao daemon with host dependencies.
type Component string

// Components with requirement tables.
const (
	Launcher   Component = "launcher"
	Controller Component = "controller"
	Scheduler  Component = "scheduler"
)

// Components lists every component, in install order for "all".
func Components() []Component { return []Component{Launcher, Controller, Scheduler} }

// ParseComponent accepts a component name.
func ParseComponent(s string) (Component, error) {
	c := Component(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Components(), c) {
		return "", fmt.Errorf("%w: %q", ErrUnknownComponent, s)
	}
	return c, nil
}

// Requirement is one package and the binary that proves it is there.
type Requirement struct {
	Package string
	Binary  string // name looked up in PATH (and sbin), or an absolute path
}

// requirements is the per-family table. The launcher needs QEMU and
// qemu-img for VMs, an ISO tool for the cloud-init config drive (genisoimage,
// much faster than the xorriso the 2016 launcher used), docker for containers, fuser to find a
// VM's PID from its QMP socket, ip for VNICs, and dnsmasq/iptables on the
// CNCI side. The controller and scheduler are pure Go (the controller's
// datastore is linked in), so they need nothing.
//
// Clear Linux names come from the 2016 tables (everything in the
// cloud-control bundle) plus network-basic for the networking tools; they
// have not been re-checked against a current Clear Linux release.
var requirements = map[Family]map[Component][]Requirement{
	FamilyDebian: {
		Launcher: {
			{"qemu-system-x86", "qemu-system-x86_64"},
			{"qemu-utils", "qemu-img"},
			{"genisoimage", "genisoimage"}, // 10x faster than xorriso for a config drive
			{"docker.io", "dockerd"},       // the engine: a bare docker client is not enough
			{"psmisc", "fuser"},
			{"iproute2", "ip"},
			{"dnsmasq", "dnsmasq"},
			{"iptables", "iptables"},
		},
	},
	FamilyFedora: {
		Launcher: {
			{"qemu-system-x86", "qemu-system-x86_64"},
			{"qemu-img", "qemu-img"},
			{"genisoimage", "genisoimage"},
			{"moby-engine", "dockerd"}, // Fedora's docker engine
			{"psmisc", "fuser"},
			{"iproute", "ip"},
			{"dnsmasq", "dnsmasq"},
			{"iptables", "iptables"},
		},
	},
	FamilyClearLinux: {
		Launcher: {
			{"cloud-control", "qemu-system-x86_64"},
			{"cloud-control", "qemu-img"},
			{"cloud-control", "xorriso"},
			{"cloud-control", "dockerd"},
			{"cloud-control", "fuser"},
			{"network-basic", "ip"},
			{"network-basic", "dnsmasq"},
			{"network-basic", "iptables"},
		},
	},
}

// Requirements returns what component c needs on family f (possibly
// nothing).
func Requirements(f Family, c Component) ([]Requirement, error) {
	if _, err := ParseComponent(string(c)); err != nil {
		return nil, err
	}
	t, ok := requirements[f]
	if !ok {
		return nil, fmt.Errorf("%w: family %q", ErrUnsupportedDistro, f)
	}
	return slices.Clone(t[c]), nil
}
