package testutil

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// TestLogger routes a library's logs to t.Log and goes quiet once the
// test has finished (late goroutines logging after the end would panic).
type TestLogger struct {
	tb   testing.TB
	done atomic.Bool
}

// Logger returns a logger for tb that stops logging at cleanup.
func Logger(tb testing.TB) *TestLogger {
	l := &TestLogger{tb: tb}
	tb.Cleanup(func() { l.done.Store(true) })
	return l
}

func (l *TestLogger) log(level, format string, args ...any) {
	if l.done.Load() {
		return
	}
	l.tb.Helper()
	l.tb.Log(level + fmt.Sprintf(format, args...))
}

// Infof logs at info level.
func (l *TestLogger) Infof(format string, args ...any) { l.log("I ", format, args...) }

// Warningf logs at warning level.
func (l *TestLogger) Warningf(format string, args ...any) { l.log("W ", format, args...) }

// Errorf logs at error level.
func (l *TestLogger) Errorf(format string, args ...any) { l.log("E ", format, args...) }
