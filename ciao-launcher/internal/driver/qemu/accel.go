package qemu

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang/glog"

	qemulib "github.com/ciao-project/ciao/qemu"
)

// kvmVerdict is what this node has learnt about KVM under -accel auto.
type kvmVerdict int

const (
	kvmUntested kvmVerdict = iota // no guest has run under KVM yet
	kvmWorks                      // a guest made progress under KVM
	kvmHangs                      // a guest hung or failed under KVM: use TCG from now on
)

// accelPolicy decides the accelerator of each launch. Under -accel auto a
// usable /dev/kvm is tried first, and the first guest is watched for
// progress: nested KVM can pass every check and still hang at boot. The
// verdict is kept for the node (in memory and, when file is set, on disk,
// so a restarted launcher does not pay the timeout again).
type accelPolicy struct {
	mode      qemulib.Accel
	kvmUsable func() bool
	file      string // "" = remember in memory only

	mu      sync.Mutex
	verdict kvmVerdict // guarded by mu
}

func newAccelPolicy(mode qemulib.Accel, kvmUsable func() bool, file string) *accelPolicy {
	p := &accelPolicy{mode: mode, kvmUsable: kvmUsable, file: file}
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			switch strings.TrimSpace(string(b)) {
			case "kvm":
				p.verdict = kvmWorks
			case "tcg":
				p.verdict = kvmHangs
				glog.Infof("qemu: %s says KVM hangs guests on this node: using TCG", file)
			}
		}
	}
	return p
}

// choose returns the accelerator for the next launch and whether the
// guest must be watched for progress (KVM not yet proven on this node).
func (p *accelPolicy) choose() (a qemulib.Accel, watch bool) {
	if p.mode != qemulib.AccelAuto {
		return p.mode, false
	}
	p.mu.Lock()
	v := p.verdict
	p.mu.Unlock()
	switch v {
	case kvmHangs:
		return qemulib.AccelTCG, false
	case kvmWorks:
		return qemulib.AccelKVM, false
	}
	a = qemulib.ResolveAccel(qemulib.AccelAuto, p.kvmUsable)
	return a, a == qemulib.AccelKVM
}

// record stores the outcome of a watched KVM launch.
func (p *accelPolicy) record(v kvmVerdict) {
	p.mu.Lock()
	changed := p.verdict != v
	p.verdict = v
	p.mu.Unlock()
	if !changed {
		return
	}
	word := "kvm"
	if v == kvmHangs {
		word = "tcg"
	}
	if p.file != "" {
		if err := os.WriteFile(p.file, []byte(word+"\n"), 0o644); err != nil {
			glog.Warningf("qemu: remembering the accelerator in %s: %v", p.file, err)
		}
	}
}

// clock is the time source of the progress watch, faked in tests.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// progress is one look at a guest: whether it has shown any sign of life
// (console output) and whether its process still exists.
type progress func() (progressed, alive bool)

// watchOutcome is how a progress watch ended.
type watchOutcome int

const (
	guestProgressed watchOutcome = iota
	guestStuck                   // alive but silent for the whole timeout
	guestDied                    // the process went away first
)

// watchProgress polls look every poll until the guest progresses, dies, the
// timeout passes or ctx ends (ctx.Err() is then returned).
func watchProgress(ctx context.Context, clk clock, timeout, poll time.Duration, look progress) (watchOutcome, error) {
	deadline := clk.Now().Add(timeout)
	for {
		ok, alive := look()
		switch {
		case ok:
			return guestProgressed, nil
		case !alive:
			return guestDied, nil
		case !clk.Now().Before(deadline):
			return guestStuck, nil
		}
		select {
		case <-ctx.Done():
			return guestStuck, ctx.Err()
		case <-clk.After(poll):
		}
	}
}

// consoleProgress: the guest has written to its serial console file.
func consoleProgress(path string, alive func() bool) progress {
	return func() (bool, bool) {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > 0, alive()
	}
}
