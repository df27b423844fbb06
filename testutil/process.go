package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// StartCommand starts a daemon binary for an end-to-end test with its
// standard error in <dir>/<name>.log. At cleanup it is sent SIGTERM and
// waited for (a test may already have killed it), and its log is printed
// if the test failed.
func StartCommand(tb testing.TB, dir, name, bin string, args ...string) *exec.Cmd {
	tb.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if tb.Failed() {
			b, _ := os.ReadFile(logPath)
			tb.Logf("%s log:\n%s", name, b)
		}
	})
	return cmd
}
