package testutil

import (
	"testing"

	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
)

// FakeController is a fake ciao-controller: an SSNTP client with role
// Controller that sends what the test asks and records what the scheduler
// relays to it (STATS, InstanceDeleted, ConcentratorInstanceAdded,
// TraceReport, NodeConnected/NodeDisconnected, the failure errors...).
// Read them with the recorder's NextXxx helpers, e.g. NextStartFailure.
// It answers nothing by itself.
type FakeController struct {
	*peerClient
}

// NewFakeController connects a fake controller to the server on
// 127.0.0.1:serverPort and returns once it is connected. It is closed at
// cleanup. Options: the SSNTP ones.
func NewFakeController(tb testing.TB, serverPort int, opts ...Option) *FakeController {
	tb.Helper()
	s := newSettings(kindController, opts)
	s.check(tb)
	c := &FakeController{peerClient: &peerClient{}}
	c.dial(tb, kindController, serverPort, ssntp.Controller, s)
	return c
}

// SendStart sends the START of StartPayload(opts...): by default the 2016
// StartYaml instance, InstanceUUID.
func (c *FakeController) SendStart(tb testing.TB, opts ...StartOption) {
	tb.Helper()
	c.SendCommand(tb, ssntp.START, StartPayload(opts...))
}

// SendStop asks agent (its SSNTP UUID, the scheduler's routing key) to
// stop instance.
func (c *FakeController) SendStop(tb testing.TB, instance, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.STOP, StopPayload(instance, agent))
}

// SendRestart asks agent to restart instance.
func (c *FakeController) SendRestart(tb testing.TB, instance, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.RESTART, RestartPayload(instance, agent))
}

// SendDelete asks agent to delete instance.
func (c *FakeController) SendDelete(tb testing.TB, instance, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.DELETE, DeletePayload(instance, agent))
}

// SendEvacuate asks agent to evacuate its node.
func (c *FakeController) SendEvacuate(tb testing.TB, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.EVACUATE, EvacuatePayload(agent))
}

// SendAttachVolume asks agent to attach volume to instance.
func (c *FakeController) SendAttachVolume(tb testing.TB, instance, volume, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.AttachVolume, AttachVolumePayload(instance, volume, agent))
}

// SendDetachVolume asks agent to detach volume from instance.
func (c *FakeController) SendDetachVolume(tb testing.TB, instance, volume, agent string) {
	tb.Helper()
	c.SendCommand(tb, ssntp.DetachVolume, DetachVolumePayload(instance, volume, agent))
}

// SendConfigure sends a cluster configuration (ConfigureCmd() is the 2016
// one), which the server keeps for its later CONNECTEDs.
func (c *FakeController) SendConfigure(tb testing.TB, cfg payloads.Configure) {
	tb.Helper()
	c.SendCommand(tb, ssntp.CONFIGURE, Marshal(tb, cfg))
}
