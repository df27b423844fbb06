package testutil

import (
	"fmt"
	"strings"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// Option adjusts a fake before it connects (or, for FakeServer, listens).
// The SSNTP options (WithUUID, WithRole, WithConfig) apply to every fake;
// the others name the fake they are for, and giving one to another fake
// fails the test rather than being silently ignored.
type Option func(*settings)

// fakeKind names the fakes, so that options meant for one can refuse the
// others.
type fakeKind uint8

const (
	kindAgent fakeKind = 1 << iota
	kindController
	kindCNCI
	kindServer
)

func (k fakeKind) String() string {
	switch k {
	case kindAgent:
		return "FakeAgent"
	case kindController:
		return "FakeController"
	case kindCNCI:
		return "FakeCNCIAgent"
	case kindServer:
		return "FakeServer"
	}
	return "fake"
}

// settings collect what the options asked for.
type settings struct {
	kind   fakeKind
	errs   []string
	config []func(*ssntp.Config)

	agent  agentKnobs // FakeAgent only
	tenant string     // FakeCNCIAgent only
}

// agentKnobs steer a FakeAgent's answers. A non-empty failure reason makes
// every command of that kind fail with it.
type agentKnobs struct {
	startFailure   payloads.StartFailureReason
	stopFailure    payloads.StopFailureReason
	restartFailure payloads.RestartFailureReason
	deleteFailure  payloads.DeleteFailureReason
	attachFailure  payloads.AttachVolumeFailureReason
	detachFailure  payloads.DetachVolumeFailureReason

	autoReady   bool
	memTotalMB  int
	fullBelowMB int
	dropStarts  int // STARTs still to ignore
	dropDeletes int // DELETEs still to ignore
}

// defaultFullBelowMB is ciao-launcher's memory high-water mark: below it a
// node reports FULL.
const defaultFullBelowMB = 1000

func newSettings(kind fakeKind, opts []Option) *settings {
	s := &settings{kind: kind, agent: agentKnobs{fullBelowMB: defaultFullBelowMB}}
	s.apply(opts)
	return s
}

func (s *settings) apply(opts []Option) {
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
}

// only records a misuse unless the option is meant for this fake.
func (s *settings) only(k fakeKind, option string) bool {
	if s.kind&k == 0 {
		s.errs = append(s.errs, fmt.Sprintf("%s is an option of %s, not of %s", option, k, s.kind))
		return false
	}
	return true
}

// check fails the test on misused options.
func (s *settings) check(tb interface{ Fatalf(string, ...any) }) {
	if len(s.errs) > 0 {
		tb.Fatalf("testutil: %s", strings.Join(s.errs, "; "))
	}
}

// WithConfig changes the SSNTP configuration the fake uses; the catch-all
// for what the other options do not cover (trace, timeouts, cluster
// configuration of a FakeServer...).
func WithConfig(mutate func(*ssntp.Config)) Option {
	return func(s *settings) { s.config = append(s.config, mutate) }
}

// WithUUID sets the fake's SSNTP UUID. Fakes otherwise get a random one
// (FakeCNCIAgent: CNCIUUID), so that two fakes never evict each other from
// the server by sharing a UUID.
func WithUUID(id uuid.UUID) Option {
	return WithConfig(func(c *ssntp.Config) { c.UUID = id })
}

// WithRole sets the role the fake advertises in CONNECT (CONNECTED for
// FakeServer). Its certificate keeps the roles the constructor chose, so
// a role outside them makes the handshake fail, as it should.
func WithRole(r ssntp.Role) Option {
	return WithConfig(func(c *ssntp.Config) { c.Role = r })
}

// WithStartFailure makes a FakeAgent answer every START with StartFailure
// and this reason; "" restores success (see FakeAgent.Set).
func WithStartFailure(r payloads.StartFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithStartFailure") {
			s.agent.startFailure = r
		}
	}
}

// WithStopFailure makes a FakeAgent answer every STOP with StopFailure.
func WithStopFailure(r payloads.StopFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithStopFailure") {
			s.agent.stopFailure = r
		}
	}
}

// WithRestartFailure makes a FakeAgent answer every RESTART with
// RestartFailure.
func WithRestartFailure(r payloads.RestartFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithRestartFailure") {
			s.agent.restartFailure = r
		}
	}
}

// WithDeleteFailure makes a FakeAgent answer every DELETE with
// DeleteFailure.
func WithDeleteFailure(r payloads.DeleteFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithDeleteFailure") {
			s.agent.deleteFailure = r
		}
	}
}

// WithAttachVolumeFailure makes a FakeAgent answer every AttachVolume with
// AttachVolumeFailure.
func WithAttachVolumeFailure(r payloads.AttachVolumeFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithAttachVolumeFailure") {
			s.agent.attachFailure = r
		}
	}
}

// WithDetachVolumeFailure makes a FakeAgent answer every DetachVolume with
// DetachVolumeFailure.
func WithDetachVolumeFailure(r payloads.DetachVolumeFailureReason) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithDetachVolumeFailure") {
			s.agent.detachFailure = r
		}
	}
}

// WithAutoReady makes a FakeAgent report its capacity the way ciao-launcher
// does, for scheduler tests: a node of memTotalMB whose available memory
// goes down by each running instance's mem_mb. It sends READY (or FULL,
// see WithFullBelow) and STATS on every connection, and a status after
// each START and DELETE; a START asking for more memory than is available
// fails with full_cn.
func WithAutoReady(memTotalMB int) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithAutoReady") {
			s.agent.autoReady = true
			s.agent.memTotalMB = memTotalMB
		}
	}
}

// WithFullBelow sets the available memory under which an auto-reporting
// FakeAgent says FULL instead of READY (default 1000 MB, the launcher's
// high-water mark).
func WithFullBelow(memMB int) Option {
	return func(s *settings) {
		if s.only(kindAgent, "WithFullBelow") {
			s.agent.fullBelowMB = memMB
		}
	}
}

// WithDropStarts makes a FakeAgent ignore its next n STARTs: no answer,
// no instance, as if the frame had been lost on the way. The test still
// sees them with NextStart.
func WithDropStarts(n int) Option {
	return withDrop("WithDropStarts", n, func(s *settings) *int { return &s.agent.dropStarts })
}

// WithDropDeletes makes a FakeAgent ignore its next n DELETEs, as
// WithDropStarts does STARTs: a lost frame, or a launcher slow to delete.
func WithDropDeletes(n int) Option {
	return withDrop("WithDropDeletes", n, func(s *settings) *int { return &s.agent.dropDeletes })
}

// withDrop is the FakeAgent option called name: it sets *count(s) to
// n, and refuses n < 0.
func withDrop(name string, n int, count func(*settings) *int) Option {
	return func(s *settings) {
		if s.only(kindAgent, name) {
			if n < 0 {
				s.errs = append(s.errs, fmt.Sprintf("%s(%d): n must be >= 0", name, n))
				return
			}
			*count(s) = n
		}
	}
}

// WithTenant sets the tenant a FakeCNCIAgent serves (default TenantUUID).
func WithTenant(tenant string) Option {
	return func(s *settings) {
		if s.only(kindCNCI, "WithTenant") {
			s.tenant = tenant
		}
	}
}
