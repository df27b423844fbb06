package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golang/glog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
)

// A process instance with a tenant VNIC runs in its own network namespace.
// The namespace has no name: it is held by a bind mount on the file
// "netns" in the instance directory, so it outlives the process (STOP and
// RESTART keep the VNIC inside), survives a launcher restart (the mount
// stays in the host's mount namespace) and goes with the instance (Delete
// and a hard reset unmount it; the veth then dies with it). A name under
// /var/run/netns would be shared by every launcher of the host, whereas
// the bind mount is scoped to the launcher's state directory.

// netnsFile is the bind mount holding an instance's namespace.
const netnsFile = "netns"

// nsfsMagic is the statfs type of a namespace file (NSFS_MAGIC).
const nsfsMagic = 0x6e736673

// NetnsPath is where the network namespace of the instance whose directory
// is dir is mounted, when it has one.
func NetnsPath(dir string) string { return filepath.Join(dir, netnsFile) }

// isNetns reports whether path is a mounted namespace.
func isNetns(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}

// checkVnic rejects a VNIC the driver cannot configure.
func checkVnic(spec driver.Spec) error {
	if spec.VnicPeer == "" {
		return nil
	}
	ones, bits := spec.VnicAddr.Mask.Size()
	if spec.VnicAddr.IP.To4() == nil || bits != 32 || ones == 0 {
		return fmt.Errorf("%w: VNIC %s of %s has no IPv4 address/prefix (%v)", driver.ErrBadSpec, spec.VnicPeer, spec.InstanceUUID, spec.VnicAddr.String())
	}
	if spec.VnicGateway != nil && spec.VnicGateway.To4() == nil {
		return fmt.Errorf("%w: VNIC %s of %s: gateway %v is not IPv4", driver.ErrBadSpec, spec.VnicPeer, spec.InstanceUUID, spec.VnicGateway)
	}
	return nil
}

// createNetns makes a new network namespace held by a bind mount on path,
// or keeps the one already there (a RESTART).
func createNetns(path string) (created bool, err error) {
	if isNetns(path) {
		return false, nil
	}
	// A plain file here is left from before a reboot: the namespace is gone.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return false, err
	}
	f.Close()
	err = networking.OnThreadIn(netns.None(), func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting the namespace on %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = os.Remove(path)
		return false, err
	}
	return true, nil
}

// removeNetns unmounts and removes path; the namespace (and the VNIC in
// it) goes once no process is left in it. A missing path is fine.
func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// setupNetns creates (or reuses) the instance's namespace and moves its
// VNIC in as eth0 with the START's address and MAC (given to the veth when
// it was made), lo up and the tenant gateway as default route. On error
// a namespace made here is removed.
func setupNetns(spec driver.Spec) (_ string, err error) {
	path := NetnsPath(spec.Dir)
	created, err := createNetns(path)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil && created {
			_ = removeNetns(path)
		}
	}()
	node := networking.DefaultConfig()
	node.Netns = spec.VnicNetns
	if err := networking.AttachContainer(node, spec.VnicPeer, path, spec.VnicAddr, spec.VnicGateway); err != nil {
		return "", err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return "", fmt.Errorf("lo in %s: %w", path, err)
	}
	return path, nil
}

// inNetns runs f (a fork+exec) on an OS thread that has joined the
// namespace at path, so that the child starts in it. This beats a re-exec
// through nsenter or "ip netns exec": no extra tool or process, the pid
// and start time are the workload's own, and the cgroup fd (clone3) and
// the v1 shim work unchanged.
func inNetns(path string, f func() error) error {
	if path == "" {
		return f()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer ns.Close()
	return networking.OnThreadIn(ns, f)
}

// Reset removes the namespace mounts left in instance directories under
// root that no handle names (a launcher that died before saving one).
func (d *Driver) Reset(_ context.Context, root string) error {
	paths, err := filepath.Glob(filepath.Join(root, "*", netnsFile))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths {
		glog.Infof("process: hard reset: removing network namespace %s", p)
		if err := removeNetns(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
