package qemu

import (
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openTapIn opens one queue of the existing tap name in the network
// namespace at nsPath. QEMU given ifname= would look for the tap in its
// own namespace (the launcher's) and create a new one there when the
// node's networking lives in another namespace; the descriptor, opened
// from inside that namespace, stays bound to the right tap wherever QEMU
// runs.
func openTapIn(nsPath, name string) (*os.File, error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	// A locked thread of its own: it is switched into the namespace and
	// back, and dies with the goroutine if it cannot be switched back.
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering %s: %w", nsPath, err)}
			return
		}
		f, ferr := openTap(name)
		if err := netns.Set(orig); err != nil {
			if f != nil {
				f.Close()
			}
			done <- result{err: fmt.Errorf("leaving %s: %w", nsPath, err)}
			return // the thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		done <- result{f, ferr}
	}()
	r := <-done
	return r.f, r.err
}

// openTap attaches to the existing tap name in the calling thread's
// network namespace (the namespace of /dev/net/tun is fixed at open).
// IFF_VNET_HDR matches what netlink gives the taps it creates, so QEMU
// and vhost-net can use the virtio header.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attaching to tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
