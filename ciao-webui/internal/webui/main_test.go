package webui

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (relay
// connections, identity calls).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
