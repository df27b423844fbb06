//go:build !linux

package qemu

import (
	"errors"
	"os"
)

func openTapIn(nsPath, name string) (*os.File, error) {
	return nil, errors.New("qemu: taps in another network namespace need Linux")
}
