package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// launchWaitDelay bounds how long Launch waits for stderr to be closed
// after the parent qemu has exited. A daemonised qemu redirects its stdio
// only once it is initialised; if something kept the pipe open longer we
// would otherwise block forever.
const launchWaitDelay = 5 * time.Second

// Launch runs path (DefaultBinary when empty) with args, passing files as
// the child's fds 3, 4, ... and returns what it wrote to stderr.
//
// Launch blocks until the process exits, so callers normally pass
// -daemonize: the parent then exits as soon as the VM is running, and a
// non-zero exit means the VM did not start. The returned stderr lets the
// launcher tell a busy console port ("socket" in the text) from other
// failures. Cancelling ctx kills the (parent) process; once QEMU has
// daemonised, the VM is no longer tied to ctx, which is what lets the
// launcher stop without killing its VMs.
func Launch(ctx context.Context, path string, args []string, files []*os.File, logger Logger) (string, error) {
	logger = orNop(logger)
	if path == "" {
		path = DefaultBinary
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.ExtraFiles = files
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = launchWaitDelay
	logger.Infof("launching %s %s", path, strings.Join(args, " "))
	err := cmd.Run()
	errText := stderr.String()
	if err != nil {
		logger.Errorf("qemu failed: %v: %s", err, errText)
		return errText, fmt.Errorf("qemu: launch %s: %w", path, err)
	}
	return errText, nil
}

// LaunchConfig builds c's arguments and runs them with Launch.
func LaunchConfig(ctx context.Context, c Config, logger Logger) (string, error) {
	args, files, err := c.Args()
	if err != nil {
		return "", err
	}
	return Launch(ctx, c.Path, args, files, logger)
}
