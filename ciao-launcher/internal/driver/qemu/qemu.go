// Package qemu is ciao-launcher's VM backend: every instance is a
// qemu-system-x86_64 started with -daemonize, so it outlives the launcher,
// and found again by pid and process start time (/proc/<pid>/stat field
// 22, which tells our VM from a process that got a recycled pid) plus its
// QMP socket.
//
// # Image cache
//
// An image_uuid names an entry of the image directory (-image-dir,
// /var/lib/ciao/images). Either form may be used:
//
//	<image-dir>/<uuid>               a bootable disk image (qcow2 or raw),
//	                                 the 2016 launcher's layout
//	<image-dir>/<uuid>/disk.qcow2    (or disk.raw, disk.img) optional disk
//	<image-dir>/<uuid>/kernel        optional: boot this kernel directly
//	<image-dir>/<uuid>/initrd        optional, with kernel
//	<image-dir>/<uuid>/cmdline       optional, with kernel: its command line
//
// A directory needs a disk or a kernel. The format of a disk is read from
// its magic, never guessed by qemu-img. A missing or unusable image is
// driver.ErrImage (image_failure). Images are never downloaded.
//
// # Instance directory
//
//	image.qcow2   qcow2 overlay on the image's disk (kept across RESTART)
//	seed.iso      ConfigDrive: openstack/latest/{meta_data.json,user_data}
//	socket        QMP
//	console.log   the guest's first serial port (truncated by each launch)
//	qemu.pid      written by qemu after it daemonised
//
// # Accelerator
//
// -accel kvm and -accel tcg are obeyed. -accel auto tries KVM when
// /dev/kvm answers, and watches the first guest: if qemu refuses to start
// under KVM, exits during boot, or its console stays silent for
// Config.ProgressTimeout (nested KVM that hangs at boot), the VM is
// launched again with TCG, and the node keeps using TCG.
// A guest that writes nothing to ttyS0 cannot be told from a hung one, so
// images used with auto must print on the serial console.
//
// # Networking
//
// A VM whose START carries tenant networking is attached to the tap VNIC
// the launcher made for it (Spec.Vnic, guest MAC Spec.VnicMAC, vhost on
// where /dev/vhost-net exists). When the node's networking lives in
// another namespace (Spec.VnicNetns) the driver opens the tap there and
// QEMU inherits the descriptor, since QEMU would look for the tap by name
// in its own namespace. A CNCI VM on a network node to its macvtap, opened four times
// (Spec.VnicTapDevice, multi-queue); any other VM gets QEMU user-mode
// networking, as with -network=false.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	qemulib "github.com/ciao-project/ciao/qemu"
)

// Config tunes the driver. Start from DefaultConfig.
type Config struct {
	// ImageDir is the image cache (layout in the package doc).
	ImageDir string
	// Accel is the -accel flag: auto, kvm or tcg.
	Accel qemulib.Accel
	// AccelFile, if set, keeps the auto decision across launcher restarts.
	AccelFile string
	// ProgressTimeout is how long a first guest under auto+KVM may stay
	// silent before it is relaunched with TCG.
	ProgressTimeout time.Duration
	// Binary is the emulator ("" = qemu-system-x86_64 in PATH).
	Binary string
	// Firmware is the EFI firmware for disk boots of non-legacy
	// instances; when it is missing SeaBIOS is used (with a warning).
	Firmware string
	// StopGrace is how long a guest has to power off after the ACPI
	// power button before QEMU is told to quit.
	StopGrace time.Duration
	// Poll is how often Stop and the progress watch look.
	Poll time.Duration
	// QMPTimeout bounds each QMP session's handshake and commands.
	QMPTimeout time.Duration
	// ProcRoot is where procfs is mounted; ClockTicks is USER_HZ.
	ProcRoot   string
	ClockTicks int
	// KVMUsable replaces qemu.KVMUsable (tests).
	KVMUsable func() bool
	// Fetch, if set, downloads an image missing from ImageDir (fetch.go).
	Fetch Fetcher
}

// DefaultConfig is the configuration of a real node.
func DefaultConfig() Config {
	return Config{
		ImageDir:        "/var/lib/ciao/images",
		Accel:           qemulib.AccelAuto,
		ProgressTimeout: 20 * time.Second,
		Firmware:        "/usr/share/qemu/OVMF.fd",
		StopGrace:       10 * time.Second,
		Poll:            100 * time.Millisecond,
		QMPTimeout:      5 * time.Second,
		ProcRoot:        "/proc",
		ClockTicks:      100, // USER_HZ on every architecture ciao runs on
		KVMUsable:       qemulib.KVMUsable,
	}
}

// Driver is the QEMU backend. Apart from the node's accelerator verdict
// (accelPolicy, which has its own lock) it keeps no state: everything is in
// the handles and the instance directories, so it is safe for concurrent
// use.
type Driver struct {
	cfg   Config
	accel *accelPolicy
	clk   clock
}

var _ driver.Driver = (*Driver)(nil)

// New returns a QEMU driver.
func New(cfg Config) *Driver {
	def := DefaultConfig()
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = def.ProcRoot
	}
	if cfg.Poll <= 0 {
		cfg.Poll = def.Poll
	}
	if cfg.ClockTicks <= 0 {
		cfg.ClockTicks = def.ClockTicks
	}
	if cfg.QMPTimeout <= 0 {
		cfg.QMPTimeout = def.QMPTimeout
	}
	if cfg.ProgressTimeout <= 0 {
		cfg.ProgressTimeout = def.ProgressTimeout
	}
	if cfg.KVMUsable == nil {
		cfg.KVMUsable = def.KVMUsable
	}
	return &Driver{cfg: cfg, accel: newAccelPolicy(cfg.Accel, cfg.KVMUsable, cfg.AccelFile), clk: realClock{}}
}

// handleData is the driver's part of a Handle.
type handleData struct {
	Dir   string `json:"dir"`
	Accel string `json:"accel"`
	VCPUs int    `json:"vcpus,omitempty"`
}

func decodeData(h driver.Handle) handleData {
	var d handleData
	if len(h.Data) > 0 {
		if err := json.Unmarshal(h.Data, &d); err != nil {
			glog.Warningf("qemu: bad handle data %q: %v", h.Data, err)
		}
	}
	return d
}

// paths are an instance directory's files.
type paths struct{ overlay, seed, qmp, console, pid string }

func pathsIn(dir string) paths {
	return paths{
		overlay: filepath.Join(dir, "image.qcow2"),
		seed:    filepath.Join(dir, "seed.iso"),
		qmp:     filepath.Join(dir, "socket"),
		console: filepath.Join(dir, "console.log"),
		pid:     filepath.Join(dir, "qemu.pid"),
	}
}

// glogger routes the qemu library's logging to glog; its chatter (command
// lines, QMP greetings) is verbose-only.
type glogger struct{}

func (glogger) Infof(f string, a ...any)    { glog.V(2).Infof("qemu: "+f, a...) }
func (glogger) Warningf(f string, a ...any) { glog.Warningf("qemu: "+f, a...) }
func (glogger) Errorf(f string, a ...any)   { glog.Errorf("qemu: "+f, a...) }

// vhostNet says whether the kernel's vhost-net accelerator is there: the
// 2016 launcher always asked for vhost=on, which QEMU refuses to start
// without /dev/vhost-net (containers, some CI hosts). Without it the tap
// works in userspace, slower.
func vhostNet() bool {
	_, err := os.Stat("/dev/vhost-net")
	return err == nil
}

// metaData is the ConfigDrive meta_data.json: the START's document, or the
// 2016 default naming the instance.
func metaData(spec driver.Spec) []byte {
	if len(strings.TrimSpace(string(spec.MetaData))) > 0 {
		return spec.MetaData
	}
	b, _ := json.MarshalIndent(map[string]string{"uuid": spec.InstanceUUID, "hostname": spec.InstanceUUID}, "", "  ")
	return append(b, '\n')
}

// vmConfig maps a Spec to the QEMU configuration.
func (d *Driver) vmConfig(spec driver.Spec, img bootImage, accel qemulib.Accel) qemulib.Config {
	p := pathsIn(spec.Dir)
	c := qemulib.Config{
		Path:      d.cfg.Binary,
		Name:      "ciao-" + spec.InstanceUUID,
		UUID:      spec.InstanceUUID,
		Accel:     accel,
		CPUs:      spec.VCPUs,
		MemoryMB:  spec.MemMB,
		QMPSocket: p.qmp,
		Daemonize: true,
		PIDFile:   p.pid,
		Headless:  true,
		// Only the devices asked for: no default floppy, CD-ROM, NIC or
		// monitor, which a daemonised VM could not use anyway.
		NoDefaults:   true,
		NoUserConfig: true,
		Serial:       &qemulib.Serial{Kind: qemulib.SerialFile, Path: p.console},
		NetDevs:      []qemulib.NetDev{{Kind: qemulib.NetUser}},
	}
	if spec.Vnic != "" {
		c.NetDevs = []qemulib.NetDev{{Kind: qemulib.NetTap, IFName: spec.Vnic, MAC: spec.VnicMAC, VHost: vhostNet()}}
	}
	if img.Disk != "" {
		c.Drives = append(c.Drives, qemulib.RootDisk(p.overlay))
	}
	c.Drives = append(c.Drives, qemulib.ConfigDriveDisk(p.seed))
	if img.Kernel != "" {
		// QEMU loads the kernel itself; SeaBIOS's tiny boot path is all
		// it needs, so EFI firmware would only slow the boot.
		c.Kernel = qemulib.Kernel{Path: img.Kernel, Initrd: img.Initrd, Append: img.Cmdline}
	} else if !spec.Legacy && d.cfg.Firmware != "" {
		if _, err := os.Stat(d.cfg.Firmware); err == nil {
			c.Firmware = d.cfg.Firmware
		} else {
			glog.Warningf("qemu: %s: EFI firmware %s missing, booting with SeaBIOS", spec.InstanceUUID, d.cfg.Firmware)
		}
	}
	return c
}

// Start creates the overlay and config drive (kept by a RESTART only for
// the overlay) and launches the VM.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Handle, error) {
	if spec.Image == "" {
		return driver.Handle{}, fmt.Errorf("%w: no image_uuid (booting from volumes is not supported)", driver.ErrBadSpec)
	}
	if err := d.ensureImage(ctx, spec.Image); err != nil {
		return driver.Handle{}, err
	}
	img, err := resolveImage(d.cfg.ImageDir, spec.Image)
	if err != nil {
		return driver.Handle{}, err
	}
	p := pathsIn(spec.Dir)
	// The overlay and the config drive are independent external commands
	// on the path of every START: make them side by side.
	overlayErr := make(chan error, 1)
	go func() {
		if img.Disk == "" {
			overlayErr <- nil
			return
		}
		if _, err := os.Stat(p.overlay); !errors.Is(err, os.ErrNotExist) {
			overlayErr <- nil
			return
		}
		o := qemulib.OverlayOptions{BackingFormat: img.DiskFormat, SizeMB: spec.DiskMB}
		overlayErr <- d.createOverlay(ctx, img.Disk, p.overlay, o)
	}()
	seedErr := qemulib.CreateConfigDrive(ctx, p.seed, metaData(spec), spec.UserData, glogger{})
	if err := <-overlayErr; err != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrImage, err)
	}
	if seedErr != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrImage, seedErr)
	}

	accel, watch := d.accel.choose()
	h, err := d.launch(ctx, spec, img, accel)
	if !watch {
		return h, err
	}
	if err != nil {
		// KVM that answers /dev/kvm but refuses the guest outright (seen
		// nested: "failed to set MSR 0x10a") is as useless as one that hangs.
		glog.Warningf("qemu: %s failed to start under KVM (%v): every VM on this node now runs under TCG",
			spec.InstanceUUID, err)
		d.accel.record(kvmHangs)
		return d.launch(ctx, spec, img, qemulib.AccelTCG)
	}
	out, err := watchProgress(ctx, d.clk, d.cfg.ProgressTimeout, d.cfg.Poll, consoleProgress(p.console, func() bool {
		ok, _ := d.alive(h)
		return ok
	}))
	if err != nil {
		return h, nil // abandoned, not failed: the VM runs
	}
	switch out {
	case guestProgressed:
		glog.Infof("qemu: %s made progress under KVM: KVM works on this node", spec.InstanceUUID)
		d.accel.record(kvmWorks)
		return h, nil
	case guestDied:
		glog.Warningf("qemu: %s exited during boot under KVM (%s): every VM on this node now runs under TCG",
			spec.InstanceUUID, tail(p.console))
		d.accel.record(kvmHangs)
		if err := d.halt(ctx, h, nil); err != nil {
			return driver.Handle{}, fmt.Errorf("%w: cleaning up the failed KVM guest: %v", driver.ErrLaunch, err)
		}
		return d.launch(ctx, spec, img, qemulib.AccelTCG)
	}
	glog.Warningf("qemu: %s printed nothing on its console for %v under KVM (nested KVM hanging?): killing it; "+
		"every VM on this node now runs under TCG", spec.InstanceUUID, d.cfg.ProgressTimeout)
	d.accel.record(kvmHangs)
	if err := d.halt(ctx, h, nil); err != nil {
		return driver.Handle{}, fmt.Errorf("%w: killing the hung KVM guest: %v", driver.ErrLaunch, err)
	}
	return d.launch(ctx, spec, img, qemulib.AccelTCG)
}

// createOverlay is CreateOverlay, but tolerates a stale partial overlay
// from an interrupted START.
func (d *Driver) createOverlay(ctx context.Context, base, overlay string, o qemulib.OverlayOptions) error {
	err := qemulib.CreateOverlay(ctx, base, overlay, o, glogger{})
	if err != nil {
		_ = os.Remove(overlay)
	}
	return err
}

// launch runs qemu with accel and identifies the daemonised VM.
func (d *Driver) launch(ctx context.Context, spec driver.Spec, img bootImage, accel qemulib.Accel) (driver.Handle, error) {
	p := pathsIn(spec.Dir)
	// Leftovers of a previous run would be taken for this one's.
	for _, f := range []string{p.qmp, p.pid} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
		}
	}
	c := d.vmConfig(spec, img, accel)
	if spec.VnicTapDevice != "" {
		// A network node's macvtap, four queues (2016 launcher §7.5).
		var fds []*os.File
		defer func() {
			for _, f := range fds {
				f.Close()
			}
		}()
		for range 4 {
			f, err := os.OpenFile(spec.VnicTapDevice, os.O_RDWR, 0)
			if err != nil {
				return driver.Handle{}, fmt.Errorf("%w: opening %s: %v", driver.ErrLaunch, spec.VnicTapDevice, err)
			}
			fds = append(fds, f)
		}
		c.NetDevs = []qemulib.NetDev{{Kind: qemulib.NetTapFDs, ID: spec.Vnic, MAC: spec.VnicMAC, VHost: vhostNet(), FDs: fds}}
	} else if spec.Vnic != "" && spec.VnicNetns != "" {
		// The node's tap lives in another namespace: open it there.
		f, err := openTapIn(spec.VnicNetns, spec.Vnic)
		if err != nil {
			return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
		}
		defer f.Close()
		c.NetDevs = []qemulib.NetDev{{Kind: qemulib.NetTapFDs, ID: spec.Vnic, MAC: spec.VnicMAC, VHost: vhostNet(), FDs: []*os.File{f}}}
	}
	if _, err := qemulib.LaunchConfig(ctx, c, glogger{}); err != nil {
		return driver.Handle{}, fmt.Errorf("%w: %v", driver.ErrLaunch, err)
	}
	b, err := os.ReadFile(p.pid)
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: qemu started but wrote no pid file: %v", driver.ErrLaunch, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return driver.Handle{}, fmt.Errorf("%w: bad pid file %q", driver.ErrLaunch, b)
	}
	st, err := readProcStat(d.cfg.ProcRoot, pid)
	if err != nil {
		return driver.Handle{}, fmt.Errorf("%w: qemu pid %d: %v", driver.ErrLaunch, pid, err)
	}
	data, _ := json.Marshal(handleData{Dir: spec.Dir, Accel: accel.String(), VCPUs: spec.VCPUs})
	glog.Infof("qemu: %s started, pid %d, %s, image %s", spec.InstanceUUID, pid, accel, spec.Image)
	return driver.Handle{Driver: driver.KindQEMU, PID: pid, StartTicks: st.StartTicks, Data: data}, nil
}

// tail is the end of a console log, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 512 {
		b = b[len(b)-512:]
	}
	return strings.TrimSpace(string(b))
}

// alive checks the handle's pid still names the VM we started.
func (d *Driver) alive(h driver.Handle) (bool, error) {
	if h.PID <= 0 {
		return false, nil
	}
	st, err := readProcStat(d.cfg.ProcRoot, h.PID)
	if errors.Is(err, errNoProcess) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.StartTicks == h.StartTicks && st.State != 'Z' && st.State != 'X', nil
}

// qmp opens a QMP session for one operation. QEMU serves one client per
// socket, so the driver never holds a session between calls.
func (d *Driver) qmp(ctx context.Context, h driver.Handle) (*qemulib.QMP, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.QMPTimeout)
	defer cancel()
	return qemulib.Connect(ctx, pathsIn(decodeData(h).Dir).qmp, qemulib.WithLogger(glogger{}))
}

// Running checks pid and start time, then asks QEMU: a guest that has shut
// down or panicked is not running even if QEMU has not exited yet. A QMP
// failure leaves the pid's answer standing.
func (d *Driver) Running(ctx context.Context, h driver.Handle) (bool, error) {
	ok, err := d.alive(h)
	if !ok || err != nil {
		return false, err
	}
	q, err := d.qmp(ctx, h)
	if err != nil {
		glog.V(2).Infof("qemu: pid %d runs but QMP does not answer: %v", h.PID, err)
		return true, nil
	}
	defer q.Close()
	qctx, cancel := context.WithTimeout(ctx, d.cfg.QMPTimeout)
	defer cancel()
	st, err := q.Status(qctx)
	if err != nil {
		return true, nil
	}
	switch st.Status {
	case "shutdown", "guest-panicked", "internal-error":
		return false, nil
	}
	return true, nil
}

// Stop presses the ACPI power button, waits StopGrace, then tells QEMU to
// quit, and kills it as a last resort.
func (d *Driver) Stop(ctx context.Context, h driver.Handle) error {
	if ok, err := d.alive(h); err != nil {
		return err
	} else if !ok {
		return driver.ErrNotRunning
	}
	q, err := d.qmp(ctx, h)
	if err != nil {
		glog.Warningf("qemu: pid %d: no QMP (%v): killing it", h.PID, err)
	}
	return d.halt(ctx, h, q)
}

// halt stops the VM: powerdown + grace when q is set, then quit, then
// SIGKILL. It closes q.
func (d *Driver) halt(ctx context.Context, h driver.Handle, q *qemulib.QMP) error {
	if q != nil {
		defer q.Close()
		qctx, cancel := context.WithTimeout(ctx, d.cfg.QMPTimeout)
		err := q.SystemPowerdown(qctx)
		cancel()
		if err == nil && d.waitGone(ctx, h, d.cfg.StopGrace) {
			return nil
		}
		glog.Infof("qemu: pid %d did not power off within %v: quitting it", h.PID, d.cfg.StopGrace)
		qctx, cancel = context.WithTimeout(ctx, d.cfg.QMPTimeout)
		_ = q.Quit(qctx)
		cancel()
		if d.waitGone(ctx, h, d.cfg.QMPTimeout) {
			return nil
		}
	}
	if ok, _ := d.alive(h); ok {
		glog.Warningf("qemu: killing pid %d", h.PID)
		_ = syscall.Kill(h.PID, syscall.SIGKILL)
	}
	if !d.waitGone(ctx, h, d.cfg.QMPTimeout) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("qemu: pid %d survived SIGKILL", h.PID)
	}
	return nil
}

// waitGone polls until the VM's process is gone, for at most d.
func (d *Driver) waitGone(ctx context.Context, h driver.Handle, wait time.Duration) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(d.cfg.Poll / 4)
	defer tick.Stop()
	for {
		if ok, err := d.alive(h); err == nil && !ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

// Delete stops the VM if it runs and removes the files Start made.
func (d *Driver) Delete(ctx context.Context, h driver.Handle) error {
	if err := d.Stop(ctx, h); err != nil && !errors.Is(err, driver.ErrNotRunning) {
		return err
	}
	hd := decodeData(h)
	if hd.Dir == "" {
		return nil
	}
	p := pathsIn(hd.Dir)
	var errs []error
	for _, f := range []string{p.overlay, p.seed, p.qmp, p.console, p.pid} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Adopt checks that the VM the handle names still runs.
func (d *Driver) Adopt(ctx context.Context, h driver.Handle, _ driver.Spec) (bool, error) {
	if h.Driver != driver.KindQEMU {
		return false, fmt.Errorf("qemu: cannot adopt a %q handle", h.Driver)
	}
	return d.Running(ctx, h)
}

// Stats: memory is qemu's RSS, CPU its user+system time (the launcher
// divides by the vCPUs), disk the overlay's size.
func (d *Driver) Stats(_ context.Context, h driver.Handle) (driver.Stats, error) {
	s := driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}
	if hd := decodeData(h); hd.Dir != "" {
		s.DiskMB = 0
		if fi, err := os.Stat(pathsIn(hd.Dir).overlay); err == nil {
			s.DiskMB = int(fi.Size() / 1000000)
		} else if !errors.Is(err, os.ErrNotExist) {
			s.DiskMB = -1
		}
	}
	if ok, err := d.alive(h); err != nil || !ok {
		return s, driver.ErrNotRunning
	}
	if mb, err := readRSSMB(d.cfg.ProcRoot, h.PID); err == nil {
		s.MemMB = mb
	}
	if st, err := readProcStat(d.cfg.ProcRoot, h.PID); err == nil {
		s.CPUTime = time.Duration(st.CPUTicks) * time.Second / time.Duration(d.cfg.ClockTicks)
	}
	return s, nil
}
