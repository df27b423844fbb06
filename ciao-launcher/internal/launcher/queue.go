package launcher

import "sync"

// mailbox is an unbounded FIFO: put never blocks, so the SSNTP callbacks and
// the main loop can hand work on without waiting for its consumer. The
// consumer waits on ready() and then drains with take().
//
// mu guards items.
type mailbox[T any] struct {
	mu    sync.Mutex
	items []T
	ready chan struct{} // has a token while items is non-empty
}

func newMailbox[T any]() *mailbox[T] {
	return &mailbox[T]{ready: make(chan struct{}, 1)}
}

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// signal is readable when items may be waiting.
func (m *mailbox[T]) signal() <-chan struct{} { return m.ready }

// take removes and returns everything queued.
func (m *mailbox[T]) take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
