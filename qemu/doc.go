// Package qemu starts qemu-system-x86_64 for the ciao launcher and talks
// to it over QMP.
//
// It has four parts:
//
//   - Config.Args turns a typed VM description into the argument list the
//     2016 launcher used (launcher spec §7.5), extended with what direct
//     kernel boot, a pidfile, a serial console and explicit TCG need. The
//     order of the arguments is part of the contract: the launcher's tests
//     compare whole lists.
//   - Launch runs the binary (normally with -daemonize) and returns its
//     stderr so the caller can decide whether a failure was a busy port.
//   - CreateOverlay and CreateConfigDrive prepare the per-instance disk and
//     the cloud-init ConfigDrive ISO with qemu-img and xorriso/genisoimage.
//   - QMP is a small QMP client (greeting, qmp_capabilities, serialised
//     commands, events) with context deadlines and a non-blocking event
//     channel. It owns its socket, so cancelling a handshake is a
//     deadline on the connection rather than a close from another
//     goroutine.
//
// # KVM or TCG
//
// KVMUsable only proves that /dev/kvm answers KVM_GET_API_VERSION. That is
// not enough: under nested virtualisation KVM can be "usable" yet the guest
// hangs at boot. AccelAuto therefore resolves to KVM whenever KVMUsable
// reports true, and it is the caller (the launcher) that must watch the
// guest for progress and relaunch it with AccelTCG when it makes none.
// This package provides the pieces (Accel, ResolveAccel, KVMUsable) but
// deliberately no timer: how long "no progress" lasts is launcher policy.
//
// Nothing here uses glog; callers pass a Logger (nil is silent) so tests can
// route output to t.Log.
package qemu

// Logger is the logging the package needs. glog's Infof/Warningf/Errorf and
// small test adapters both satisfy it.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any)    {}
func (nopLogger) Warningf(string, ...any) {}
func (nopLogger) Errorf(string, ...any)   {}

// orNop lets every entry point accept a nil Logger.
func orNop(l Logger) Logger {
	if l == nil {
		return nopLogger{}
	}
	return l
}
