package testutil

import (
	"strings"
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

func TestOptionsApply(t *testing.T) {
	id := uuid.MustParse(AgentUUID)
	s := newSettings(kindAgent, []Option{
		WithUUID(id),
		WithRole(ssntp.AGENT),
		WithStartFailure(payloads.StartLaunchFailure),
		WithStopFailure(payloads.StopAlreadyStopped),
		WithRestartFailure(payloads.RestartLaunchFailure),
		WithDeleteFailure(payloads.DeleteNoInstance),
		WithAttachVolumeFailure(payloads.AttachVolumeAttachFailure),
		WithDetachVolumeFailure(payloads.DetachVolumeDetachFailure),
		WithAutoReady(8192),
		WithFullBelow(100),
		WithDropStarts(2),
		WithDropDeletes(1),
		nil, // ignored, so callers can build option lists conditionally
	})
	s.check(t)
	var cfg ssntp.Config
	for _, m := range s.config {
		m(&cfg)
	}
	if cfg.UUID != id || cfg.Role != ssntp.AGENT {
		t.Errorf("config %+v", cfg)
	}
	want := agentKnobs{
		startFailure:   payloads.StartLaunchFailure,
		stopFailure:    payloads.StopAlreadyStopped,
		restartFailure: payloads.RestartLaunchFailure,
		deleteFailure:  payloads.DeleteNoInstance,
		attachFailure:  payloads.AttachVolumeAttachFailure,
		detachFailure:  payloads.DetachVolumeDetachFailure,
		autoReady:      true,
		memTotalMB:     8192,
		fullBelowMB:    100,
		dropStarts:     2,
		dropDeletes:    1,
	}
	if s.agent != want {
		t.Errorf("knobs %+v, want %+v", s.agent, want)
	}
	if d := newSettings(kindAgent, nil).agent.fullBelowMB; d != 1000 {
		t.Errorf("default FULL threshold %d, want the launcher's 1000", d)
	}
	if c := newSettings(kindCNCI, []Option{WithTenant("t")}); c.tenant != "t" || len(c.errs) != 0 {
		t.Errorf("WithTenant: %+v", c)
	}
}

func TestOptionsRefuseTheWrongFake(t *testing.T) {
	s := newSettings(kindController, []Option{WithStartFailure(payloads.StartFullCloud), WithTenant("x"), WithUUID(uuid.Generate())})
	msg := fatal(t, func(tb testing.TB) { s.check(tb) })
	for _, want := range []string{
		"WithStartFailure is an option of FakeAgent, not of FakeController",
		"WithTenant is an option of FakeCNCIAgent, not of FakeController",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if s.agent.startFailure != "" || s.tenant != "" {
		t.Error("a refused option was applied")
	}
	if msg := fatal(t, func(tb testing.TB) { NewFakeServer(tb, WithAutoReady(1)) }); !strings.Contains(msg, "not of FakeServer") {
		t.Errorf("NewFakeServer accepted an agent option: %q", msg)
	}
}
