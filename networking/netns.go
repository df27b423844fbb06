package networking

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Logger is what the package logs through; glog in the daemons, t.Logf in
// tests.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any)    {}
func (nopLogger) Warningf(string, ...any) {}

// space is a network namespace this package works in: a netlink handle
// bound to it, and what is needed to run commands and create taps there.
// The zero path is the process's own namespace.
type space struct {
	path string // "" = the current namespace
	ns   netns.NsHandle
	h    *netlink.Handle
}

func openSpace(path string) (*space, error) {
	s := &space{path: path, ns: netns.None()}
	var err error
	if path == "" {
		s.h, err = netlink.NewHandle()
	} else {
		if s.ns, err = netns.GetFromPath(path); err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
		}
		s.h, err = netlink.NewHandleAt(s.ns)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return s, nil
}

// close releases the handle and namespace; it may be called again.
func (s *space) close() {
	if s.h != nil {
		s.h.Close()
		s.h = nil
	}
	if s.ns.IsOpen() {
		_ = s.ns.Close()
		s.ns = netns.None()
	}
}

// do runs f on an OS thread that is in the namespace (taps are created in
// the caller's namespace, not through the handle).
func (s *space) do(f func() error) error {
	if s.path == "" {
		return f()
	}
	return OnThreadIn(s.ns, f)
}

// OnThreadIn runs f on a locked OS thread that joined ns (if open; else the
// thread stays in the caller's namespace, for f to unshare), and puts the
// thread back in its namespace afterwards: the thread may be the main one,
// which the runtime never ends, so leaving it in another namespace would
// hold that namespace forever and change the process's /proc/<pid>/ns/net.
// Only if that restore fails is the thread left locked, to die with the
// goroutine rather than serve others in the wrong namespace.
func OnThreadIn(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				runtime.UnlockOSThread()
				errc <- fmt.Errorf("joining the namespace: %w", err)
				return
			}
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("restoring the thread's namespace: %w (after %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sysctl writes /proc/sys/<key> as seen from the namespace (network
// sysctls belong to the namespace of the thread that opens them).
func (s *space) sysctl(key, value string) error {
	return s.do(func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// command builds a command that runs in the namespace (through nsenter).
func (s *space) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if s.path == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + s.path, "--", name}, args...)...)
}

// run runs a command in the namespace; its output is part of the error.
func (s *space) run(ctx context.Context, name string, args ...string) error {
	out, err := s.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkInfo is a link this package made: its kernel name and index.
type linkInfo struct {
	name  string
	index int
}

func infoOf(l netlink.Link) linkInfo {
	return linkInfo{name: l.Attrs().Name, index: l.Attrs().Index}
}

// deleteLink deletes a link by index, ignoring one that is already gone.
func (s *space) deleteLink(li linkInfo) error {
	l, err := s.h.LinkByIndex(li.index)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil
		}
		return fmt.Errorf("finding %s: %w", li.name, err)
	}
	if l.Attrs().Name != li.name {
		return nil // index reused: ours is gone
	}
	if err := s.h.LinkDel(l); err != nil {
		return fmt.Errorf("deleting %s: %w", li.name, err)
	}
	return nil
}

// addLink creates a link, names its alias, and returns it refreshed (with
// its index). On failure nothing is left behind.
func (s *space) addLink(l netlink.Link, alias string) (netlink.Link, error) {
	name := l.Attrs().Name
	if err := s.h.LinkAdd(l); err != nil {
		return nil, fmt.Errorf("creating %s %s: %w", l.Type(), name, err)
	}
	nl, err := s.h.LinkByName(name)
	if err == nil {
		err = s.h.LinkSetAlias(nl, alias)
	}
	if err != nil {
		if nl != nil {
			_ = s.h.LinkDel(nl)
		}
		return nil, fmt.Errorf("setting alias of %s: %w", name, err)
	}
	return nl, nil
}
