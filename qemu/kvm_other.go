//go:build !linux

package qemu

// KVMUsable is always false where there is no KVM.
func KVMUsable() bool { return false }

func kvmUsableAt(string) bool { return false }
