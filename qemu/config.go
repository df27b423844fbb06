package qemu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DefaultBinary is the emulator Launch runs when Config.Path is empty; it is
// resolved through PATH, as the 2016 launcher did.
const DefaultBinary = "qemu-system-x86_64"

// Errors returned by Config.Validate, compared with errors.Is.
var (
	ErrInvalidConfig = errors.New("qemu: invalid config")
	ErrAccelAuto     = errors.New("qemu: AccelAuto must be resolved before building arguments")
)

// Accel selects the accelerator.
type Accel int

const (
	// AccelAuto means "KVM when KVMUsable says so, else TCG". It must be
	// turned into AccelKVM or AccelTCG with ResolveAccel before Args, so
	// that the decision is logged once and the caller knows which one to
	// fall back from.
	AccelAuto Accel = iota
	// AccelKVM emits the launcher's "-enable-kvm -cpu host".
	AccelKVM
	// AccelTCG emits "-accel tcg". The 2016 launcher emitted nothing in
	// software mode; we are explicit so that a QEMU built to default to KVM
	// cannot silently pick it.
	AccelTCG
)

func (a Accel) String() string {
	switch a {
	case AccelAuto:
		return "auto"
	case AccelKVM:
		return "kvm"
	case AccelTCG:
		return "tcg"
	}
	return "Accel(" + strconv.Itoa(int(a)) + ")"
}

// ParseAccel accepts auto, kvm and tcg, plus "software", the launcher's
// old -qemu-virtualisation spelling of tcg.
func ParseAccel(s string) (Accel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return AccelAuto, nil
	case "kvm":
		return AccelKVM, nil
	case "tcg", "software":
		return AccelTCG, nil
	}
	return AccelAuto, fmt.Errorf("%w: unknown accelerator %q", ErrInvalidConfig, s)
}

// ResolveAccel turns AccelAuto into AccelKVM when kvmUsable returns true
// and AccelTCG otherwise; explicit choices are returned unchanged. kvmUsable
// is a parameter (normally KVMUsable) so tests and the launcher's
// fallback path can force the answer. A usable KVM is not a guarantee the
// guest will boot: see the package doc.
func ResolveAccel(a Accel, kvmUsable func() bool) Accel {
	if a != AccelAuto {
		return a
	}
	if kvmUsable != nil && kvmUsable() {
		return AccelKVM
	}
	return AccelTCG
}

// Drive is one -drive argument. Keys are emitted in the order file, if, id,
// aio, format, media, which reproduces the launcher's three forms:
//
//	root disk:    file=<dir>/image.qcow2,if=virtio,aio=threads,format=qcow2
//	ceph volume:  file=rbd:rbd/<vol>:id=<ceph>,if=none,id=drive_<vol>,format=raw
//	config drive: file=<dir>/seed.iso,if=virtio,media=cdrom
type Drive struct {
	File      string
	Interface string // "virtio", "none", ...
	ID        string
	AIO       string // "threads", "native"
	Format    string // "qcow2", "raw"
	Media     string // "cdrom" or empty for a disk

	// PCISlot, when non-zero, adds the launcher's hot-pluggable device:
	// -device virtio-blk-pci,scsi=off,bus=pci.0,addr=0x<slot>,id=<DeviceID>,drive=<ID>.
	// The explicit bus/addr is what lets QMP device_del find it later.
	PCISlot  int
	DeviceID string
}

// RootDisk is the launcher's qcow2 overlay drive.
func RootDisk(path string) Drive {
	return Drive{File: path, Interface: "virtio", AIO: "threads", Format: "qcow2"}
}

// ConfigDriveDisk is the launcher's cloud-init ISO drive.
func ConfigDriveDisk(path string) Drive {
	return Drive{File: path, Interface: "virtio", Media: "cdrom"}
}

func (d Drive) args() []string {
	opts := []string{"file=" + d.File}
	add := func(k, v string) {
		if v != "" {
			opts = append(opts, k+"="+v)
		}
	}
	add("if", d.Interface)
	add("id", d.ID)
	add("aio", d.AIO)
	add("format", d.Format)
	add("media", d.Media)
	args := []string{"-drive", strings.Join(opts, ",")}
	if d.PCISlot != 0 {
		args = append(args, "-device", fmt.Sprintf(
			"virtio-blk-pci,scsi=off,bus=pci.0,addr=0x%x,id=%s,drive=%s", d.PCISlot, d.DeviceID, d.ID))
	}
	return args
}

// NetKind selects how a NetDev is attached.
type NetKind int

const (
	// NetUser is QEMU's user-mode (slirp) networking: the launcher's
	// -network=false mode, which needs no host setup.
	NetUser NetKind = iota + 1
	// NetTap attaches an existing tap interface by name (compute node VNIC).
	NetTap
	// NetTapFDs attaches already-opened tap descriptors: a network node's
	// macvtap queues (/dev/tapN, multi-queue when more than one), or one
	// tap opened in another network namespace; Launch passes them as fds
	// 3, 4, ...
	NetTapFDs
)

// NetDev is one guest network interface.
type NetDev struct {
	Kind   NetKind
	IFName string // NetTap: host interface; also the default ID
	ID     string // netdev id; defaults to IFName
	MAC    string // guest MAC, required for tap kinds
	VHost  bool   // vhost=on (the launcher always sets it for taps)
	// FDs are the open tap queues for NetTapFDs. Their numbers in the
	// child depend on every FD-carrying NetDev before them.
	FDs []*os.File
}

func (n NetDev) id() string {
	if n.ID != "" {
		return n.ID
	}
	return n.IFName
}

// args returns the arguments for n; firstFD is the child fd number of
// n.FDs[0].
func (n NetDev) args(firstFD int) []string {
	vhost := ""
	if n.VHost {
		vhost = ",vhost=on"
	}
	switch n.Kind {
	case NetUser:
		return []string{"-net", "nic,model=virtio", "-net", "user"}
	case NetTap:
		return []string{
			"-netdev", fmt.Sprintf("type=tap,ifname=%s,script=no,downscript=no,id=%s%s", n.IFName, n.id(), vhost),
			"-device", fmt.Sprintf("driver=virtio-net-pci,netdev=%s,mac=%s", n.id(), n.MAC),
		}
	case NetTapFDs:
		fds := make([]string, len(n.FDs))
		for i := range n.FDs {
			fds[i] = strconv.Itoa(firstFD + i)
		}
		// Several queues make a multi-queue NIC (2016 launcher §7.5);
		// one is a plain tap opened by the caller.
		mq := ""
		if len(n.FDs) > 1 {
			mq = "mq=on,vectors=32,"
		}
		return []string{
			"-netdev", fmt.Sprintf("type=tap,fds=%s,id=%s%s", strings.Join(fds, ":"), n.id(), vhost),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,%smac=%s", n.id(), mq, n.MAC),
		}
	}
	return nil
}

// SerialKind selects where the guest's first serial port goes.
type SerialKind int

const (
	// SerialTCP is the launcher's "nc" console: a listening TCP socket.
	SerialTCP SerialKind = iota + 1
	// SerialUnix is a listening unix socket (useful in tests: no ports).
	SerialUnix
	// SerialFile appends the console output to a file, so a caller can
	// watch the guest make progress (the KVM→TCG fallback check).
	SerialFile
)

// Serial is a console on an ISA serial port.
type Serial struct {
	Kind SerialKind
	Host string // SerialTCP
	Port int    // SerialTCP
	Path string // SerialUnix, SerialFile
	ID   string // chardev id, default "gnc0" as in the launcher
}

func (s Serial) args() []string {
	id := s.ID
	if id == "" {
		id = "gnc0"
	}
	var chardev string
	switch s.Kind {
	case SerialTCP:
		// Byte for byte the launcher's console, including its duplicated
		// "server" flag, which QEMU accepts.
		chardev = fmt.Sprintf("socket,port=%d,host=%s,server,id=%s,server,nowait", s.Port, s.Host, id)
	case SerialUnix:
		chardev = fmt.Sprintf("socket,path=%s,server,id=%s,nowait", s.Path, id)
	case SerialFile:
		chardev = fmt.Sprintf("file,path=%s,id=%s", s.Path, id)
	default:
		return nil
	}
	return []string{"-device", "isa-serial,chardev=" + id, "-chardev", chardev}
}

// Config describes one VM. Accel must be resolved (the zero value is
// AccelAuto, which Validate rejects). Config is a plain value; Args does not
// modify it.
type Config struct {
	// Path is the emulator binary; empty means DefaultBinary.
	Path string

	Name        string // -name
	UUID        string // -uuid
	MachineType string // -machine, e.g. "pc", "q35", "none"

	Accel    Accel  // must be AccelKVM or AccelTCG (see ResolveAccel)
	CPUModel string // -cpu; with KVM it defaults to "host"

	CPUs     int // -smp cpus=N when > 0
	MemoryMB int // -m N when > 0

	// Firmware is passed as -bios (the launcher's EFI
	// /usr/share/qemu/OVMF.fd); empty means QEMU's SeaBIOS ("legacy").
	Firmware string

	// Kernel boots a kernel directly, without firmware or a boot disk.
	Kernel Kernel

	Drives  []Drive
	NetDevs []NetDev
	Serial  *Serial

	// QMPSocket is the unix socket path QEMU listens on
	// (-qmp unix:<path>,server,nowait).
	QMPSocket string

	// Daemonize makes QEMU fork once it is initialised, so Launch returns
	// when the VM is started (or failed to start).
	Daemonize bool
	// PIDFile is where QEMU writes the VM's PID, so the launcher need not
	// find it with fuser.
	PIDFile string

	// Headless emits the launcher's "-display none -vga none".
	Headless     bool
	NoUserConfig bool // -no-user-config
	NoDefaults   bool // -nodefaults
	NoGraphic    bool // -nographic; incompatible with Daemonize
}

// Kernel is direct kernel boot.
type Kernel struct {
	Path   string // -kernel
	Initrd string // -initrd
	Append string // -append (one argument, spaces included)
}

// Validate reports configuration QEMU would reject or misinterpret.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch c.Accel {
	case AccelAuto:
		return ErrAccelAuto
	case AccelKVM, AccelTCG:
	default:
		return bad("unknown accelerator %d", int(c.Accel))
	}
	if c.CPUs < 0 || c.MemoryMB < 0 {
		return bad("negative cpus (%d) or memory (%d)", c.CPUs, c.MemoryMB)
	}
	if c.NoGraphic && c.Daemonize {
		// QEMU refuses this combination at start-up; catch it earlier.
		return bad("-nographic cannot be used with -daemonize")
	}
	if (c.Kernel.Initrd != "" || c.Kernel.Append != "") && c.Kernel.Path == "" {
		return bad("initrd or append without a kernel")
	}
	for i, d := range c.Drives {
		if d.File == "" {
			return bad("drive %d has no file", i)
		}
		if d.PCISlot != 0 && (d.ID == "" || d.DeviceID == "") {
			return bad("drive %d: a PCI slot needs ID and DeviceID", i)
		}
	}
	for i, n := range c.NetDevs {
		switch n.Kind {
		case NetUser:
		case NetTap:
			if n.IFName == "" || n.MAC == "" {
				return bad("netdev %d: tap needs IFName and MAC", i)
			}
		case NetTapFDs:
			if len(n.FDs) == 0 || n.id() == "" || n.MAC == "" {
				return bad("netdev %d: tap fds need FDs, ID and MAC", i)
			}
		default:
			return bad("netdev %d: unknown kind %d", i, int(n.Kind))
		}
	}
	if s := c.Serial; s != nil {
		switch s.Kind {
		case SerialTCP:
			if s.Host == "" || s.Port <= 0 || s.Port > 65535 {
				return bad("tcp serial needs host and port")
			}
		case SerialUnix, SerialFile:
			if s.Path == "" {
				return bad("serial needs a path")
			}
		default:
			return bad("unknown serial kind %d", int(s.Kind))
		}
	}
	return nil
}

// Args returns QEMU's argument list (without the binary) and the files
// that must become the child's fds 3, 4, ... (pass both to Launch).
//
// The order follows the 2016 launcher: drives, network, accelerator,
// -daemonize, -qmp, -m, -smp, -bios, display, console. Additions the
// launcher did not have go where they cannot disturb its lists: -name,
// -uuid and -machine first; -pidfile right after -daemonize; -cpu after
// the accelerator; kernel boot and the -no-user-config/-nodefaults/
// -nographic knobs last.
func (c *Config) Args() ([]string, []*os.File, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	var args []string
	var files []*os.File
	add := func(a ...string) { args = append(args, a...) }

	if c.Name != "" {
		add("-name", c.Name)
	}
	if c.UUID != "" {
		add("-uuid", c.UUID)
	}
	if c.MachineType != "" {
		add("-machine", c.MachineType)
	}
	for _, d := range c.Drives {
		add(d.args()...)
	}
	for _, n := range c.NetDevs {
		add(n.args(3 + len(files))...)
		files = append(files, n.FDs...)
	}
	switch c.Accel {
	case AccelKVM:
		cpu := c.CPUModel
		if cpu == "" {
			cpu = "host"
		}
		add("-enable-kvm", "-cpu", cpu)
	case AccelTCG:
		add("-accel", "tcg")
		if c.CPUModel != "" {
			add("-cpu", c.CPUModel)
		}
	}
	if c.Daemonize {
		add("-daemonize")
	}
	if c.PIDFile != "" {
		add("-pidfile", c.PIDFile)
	}
	if c.QMPSocket != "" {
		add("-qmp", "unix:"+c.QMPSocket+",server,nowait")
	}
	if c.MemoryMB > 0 {
		add("-m", strconv.Itoa(c.MemoryMB))
	}
	if c.CPUs > 0 {
		add("-smp", "cpus="+strconv.Itoa(c.CPUs))
	}
	if c.Firmware != "" {
		add("-bios", c.Firmware)
	}
	if c.Headless {
		add("-display", "none", "-vga", "none")
	}
	if c.Serial != nil {
		add(c.Serial.args()...)
	}
	if c.Kernel.Path != "" {
		add("-kernel", c.Kernel.Path)
		if c.Kernel.Initrd != "" {
			add("-initrd", c.Kernel.Initrd)
		}
		if c.Kernel.Append != "" {
			add("-append", c.Kernel.Append)
		}
	}
	if c.NoUserConfig {
		add("-no-user-config")
	}
	if c.NoDefaults {
		add("-nodefaults")
	}
	if c.NoGraphic {
		add("-nographic")
	}
	return args, files, nil
}
