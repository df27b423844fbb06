package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

// waitApp is an app whose API serves the statuses from next (one list of
// states per poll, for servers "a" and "b").
func waitApp(t *testing.T, polls ...map[string]string) (*app, *bytes.Buffer) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		mu.Lock()
		n := min(seen[id], len(polls)-1)
		seen[id]++
		mu.Unlock()
		st, ok := polls[n][id]
		if !ok {
			http.Error(w, `{"error":{"code":404,"message":"not found"}}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"server":{"id":%q,"status":%q}}`, id, st)
	}))
	t.Cleanup(srv.Close)
	api, err := client.New(client.Config{BaseURL: srv.URL + "/v2.1", Tokens: client.StaticToken{ID: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	return &app{api: api, tokens: client.StaticToken{ID: "t"}, stdout: &bytes.Buffer{}, stderr: &stderr, poll: time.Millisecond}, &stderr
}

func pending(ids ...string) []client.Server {
	out := make([]client.Server, len(ids))
	for i, id := range ids {
		out[i] = client.Server{ID: id, Status: client.StatePending}
	}
	return out
}

func TestWaitServers(t *testing.T) {
	ctx := context.Background()
	a, stderr := waitApp(t, map[string]string{"a": "pending", "b": "pending"}, map[string]string{"a": "active", "b": "pending"},
		map[string]string{"a": "active", "b": "active"})
	got, err := waitServers(ctx, a, "T", pending("a", "b"), 10*time.Second)
	if err != nil || got[0].Status != "active" || got[1].Status != "active" {
		t.Fatalf("wait: %v %+v", err, got)
	}
	// Not a terminal: one plain line per change.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 3 || lines[2] != "waiting for 2 instance(s): 2 active, 0 failed, 0 pending" {
		t.Errorf("progress:\n%s", stderr)
	}

	a, _ = waitApp(t, map[string]string{"a": "active", "b": "exited"})
	if _, err := waitServers(ctx, a, "T", pending("a", "b"), 10*time.Second); err == nil || !strings.Contains(err.Error(), "1 of 2 instance(s) failed") {
		t.Errorf("exited: err = %v", err)
	}
	a, _ = waitApp(t, map[string]string{"a": "active"}) // b vanished
	if _, err := waitServers(ctx, a, "T", pending("a", "b"), 10*time.Second); err == nil || !strings.Contains(err.Error(), "(first: b)") {
		t.Errorf("deleted: err = %v", err)
	}
	a, _ = waitApp(t, map[string]string{"a": "pending"})
	if _, err := waitServers(ctx, a, "T", pending("a"), 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timeout: err = %v", err)
	}
}
