package qemu

import (
	"os"
	"syscall"
)

// kvmGetAPIVersion is _IO(KVMIO, 0x00) with KVMIO = 0xAE.
const kvmGetAPIVersion = 0xAE00

// kvmAPIVersion is the only KVM API version Linux has shipped since 2.6.22;
// anything else means /dev/kvm is not the KVM we know.
const kvmAPIVersion = 12

// KVMUsable reports whether /dev/kvm can be opened read-write and answers
// KVM_GET_API_VERSION with the stable API version. It does not prove that
// a guest will make progress (nested KVM may hang); see the package doc.
func KVMUsable() bool {
	return kvmUsableAt("/dev/kvm")
}

func kvmUsableAt(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	return errno == 0 && v == kvmAPIVersion
}
