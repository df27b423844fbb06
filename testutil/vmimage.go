package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// VMImage is the boot image scripts/build-vm-image.sh makes: a Debian
// kernel, a busybox initramfs whose /init prints VMBootedMarker on ttyS0
// (and VMNetMarker once DHCP configured eth0), and a small qcow2 disk.
type VMImage struct {
	Dir     string // build/vm at the repository root
	Kernel  string
	Initrd  string
	Disk    string
	Cmdline string
}

// VMBootedMarker starts the console line the test image's /init prints,
// followed by the VM's uuid.
const VMBootedMarker = "CIAO-VM-BOOTED"

// VMNetMarker starts the console line the test image prints when eth0 got
// an address by DHCP: "CIAO-VM-NET eth0 <ip>/<prefix length>". A VM without
// a NIC never prints it, and its boot does not wait for DHCP.
const VMNetMarker = "CIAO-VM-NET"

var (
	vmImageOnce sync.Once
	vmImage     VMImage
	vmImageErr  error
	vmImageOut  []byte
)

// BuildVMImage builds the test VM image once per test binary. If the build
// fails the test is skipped with the script's output, unless the CI
// environment variable is set: on CI a missing image is a failure.
func BuildVMImage(tb testing.TB) VMImage {
	tb.Helper()
	vmImageOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		dir := filepath.Join(root, "build", "vm")
		cmd := exec.Command(filepath.Join(root, "scripts", "build-vm-image.sh"), dir)
		vmImageOut, vmImageErr = cmd.CombinedOutput()
		b, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		vmImage = VMImage{
			Dir:     dir,
			Kernel:  filepath.Join(dir, "vmlinuz"),
			Initrd:  filepath.Join(dir, "initrd.img"),
			Disk:    filepath.Join(dir, "disk.qcow2"),
			Cmdline: string(trimSpace(b)),
		}
	})
	if vmImageErr != nil {
		msg := "scripts/build-vm-image.sh failed: " + vmImageErr.Error() + "\n" + string(vmImageOut)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "\n(set CI to make this a failure)")
	}
	return vmImage
}

// InstallVMImage makes img the image id in the launcher image cache dir,
// in the directory form (disk, kernel, initrd, cmdline) and returns id.
func InstallVMImage(tb testing.TB, img VMImage, dir, id string) string {
	tb.Helper()
	d := filepath.Join(dir, id)
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, target := range map[string]string{"disk.qcow2": img.Disk, "kernel": img.Kernel, "initrd": img.Initrd} {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "cmdline"), []byte(img.Cmdline), 0o644); err != nil {
		tb.Fatal(err)
	}
	return id
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
