package launcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/sim"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

const simInstance = "0a1b2c3d-0000-4000-8000-000000000001"

// simLauncher runs a launcher whose every kind of instance is simulated.
func simLauncher(t *testing.T, mutate func(*Config)) (*testutil.FakeServer, *testLauncher, *sim.Driver, Config) {
	t.Helper()
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	s := sim.New()
	cfg.Simulation = true
	cfg.Drivers = driver.Registry{driver.KindSim: s}
	if mutate != nil {
		mutate(&cfg)
	}
	return srv, startLauncher(t, srv, cfg), s, cfg
}

func TestSimStartReportsReadyAndStats(t *testing.T) {
	srv, l, _, _ := simLauncher(t, nil)
	r := srv.NextReady(t)
	if r.NodeUUID != l.id.String() || r.MemTotalMB <= 0 || r.CpusOnline <= 0 {
		t.Errorf("READY %+v", r)
	}
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance), testutil.StartMemMB(100)))
	s := waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))
	if s.Status != "READY" {
		t.Errorf("status %q", s.Status)
	}
	waitStats(t, srv, "plausible stats", func(s payloads.Stat) bool {
		i, ok := instanceIn(s, simInstance)
		return ok && i.MemoryUsageMB == 10 && i.DiskUsageMB == 1000 && i.CPUUsage >= 0
	})
}

func TestBadInput(t *testing.T) {
	srv, l, _, _ := simLauncher(t, nil)
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))

	other := "0a1b2c3d-0000-4000-8000-000000000002"
	for _, tc := range []struct {
		name    string
		payload []byte
		id      string
		reason  payloads.StartFailureReason
	}{
		{"malformed", []byte("start:\n  instance_uuid: [\n"), "", payloads.StartInvalidPayload},
		{"not yaml at all", []byte("\x00\x01"), "", payloads.StartInvalidPayload},
		{"unknown vm_type", testutil.StartPayload(testutil.StartInstance(other), testutil.StartVMType("xen")), other, payloads.StartInvalidData},
		{"bad instance uuid", testutil.StartPayload(testutil.StartInstance("not-a-uuid!")), "", payloads.StartInvalidData},
		{"duplicate running", testutil.StartPayload(testutil.StartInstance(simInstance)), simInstance, payloads.StartAlreadyRunning},
		{"too much memory", testutil.StartPayload(testutil.StartInstance(other), testutil.StartMemMB(1<<30)), other, payloads.StartFullComputeNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.SendCommand(t, l.id, ssntp.START, tc.payload)
			f := srv.NextStartFailure(t)
			if f.Reason != tc.reason || f.InstanceUUID != tc.id {
				t.Errorf("got %+v, want %s for %q", f, tc.reason, tc.id)
			}
		})
	}
	srv.SendCommand(t, l.id, ssntp.STOP, []byte("stop: [\n"))
	if f := srv.NextStopFailure(t); f.Reason != payloads.StopInvalidPayload {
		t.Errorf("malformed STOP: %+v", f)
	}
	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload("zz", l.id.String()))
	if f := srv.NextStopFailure(t); f.Reason != payloads.StopInvalidData {
		t.Errorf("STOP with a bad uuid: %+v", f)
	}
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(other, l.id.String()))
	if f := srv.NextRestartFailure(t); f.Reason != payloads.RestartNoInstance || f.InstanceUUID != other {
		t.Errorf("RESTART of an unknown instance: %+v", f)
	}
	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(other, l.id.String()))
	if f := srv.NextDeleteFailure(t); f.Reason != payloads.DeleteNoInstance {
		t.Errorf("DELETE of an unknown instance: %+v", f)
	}
	// Nothing else disturbed.
	s := waitStats(t, srv, "instance still active", stateIs(simInstance, payloads.InstanceActive))
	if len(s.Instances) != 1 {
		t.Errorf("instances %+v", s.Instances)
	}
}

// TestNoBackend: a START for a kind no driver serves fails with
// launch_failure and is never simulated.
func TestNoBackend(t *testing.T) {
	srv, l, _, _ := simLauncher(t, func(c *Config) {
		c.Simulation = false
		c.Drivers = driver.Registry{driver.KindSim: sim.New()}
	})
	for _, vt := range []payloads.Hypervisor{payloads.HypervisorQEMU, payloads.HypervisorDocker} {
		srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance), testutil.StartVMType(vt)))
		if f := srv.NextStartFailure(t); f.Reason != payloads.StartLaunchFailure || f.InstanceUUID != simInstance {
			t.Errorf("%s START: %+v", vt, f)
		}
	}
	waitStats(t, srv, "no instance", absent(simInstance))
}

func TestLaunchFailureKeepsInstanceForRestart(t *testing.T) {
	srv, l, s, _ := simLauncher(t, nil)
	s.Set(sim.Knobs{StartErr: fmt.Errorf("%w: knob", driver.ErrLaunch)})
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartLaunchFailure {
		t.Errorf("START: %+v", f)
	}
	waitStats(t, srv, "instance exited", stateIs(simInstance, payloads.InstanceExited))
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartInstanceExists {
		t.Errorf("second START: %+v", f)
	}
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(simInstance, l.id.String()))
	if f := srv.NextRestartFailure(t); f.Reason != payloads.RestartLaunchFailure {
		t.Errorf("failing RESTART: %+v", f)
	}
	s.Set(sim.Knobs{})
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(simInstance, l.id.String()))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))

	// An instance that dies by itself is reported exited.
	s.Kill(simInstance)
	waitStats(t, srv, "instance exited", stateIs(simInstance, payloads.InstanceExited))
}

func TestImageFailureRemovesInstance(t *testing.T) {
	srv, l, s, _ := simLauncher(t, nil)
	s.Set(sim.Knobs{StartErr: fmt.Errorf("%w: knob", driver.ErrImage)})
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartImageFailure {
		t.Errorf("START: %+v", f)
	}
	s.Set(sim.Knobs{})
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))
	srv.Nothing(t, ssntp.EVENT, uint8(ssntp.InstanceDeleted), 50*time.Millisecond)
}

func TestEvacuate(t *testing.T) {
	srv, l, _, cfg := simLauncher(t, nil)
	ids := []string{simInstance, "0a1b2c3d-0000-4000-8000-000000000003"}
	for _, id := range ids {
		srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(id)))
		waitStats(t, srv, "instance active", stateIs(id, payloads.InstanceActive))
	}
	srv.SendCommand(t, l.id, ssntp.EVACUATE, testutil.EvacuatePayload(l.id.String()))
	got := map[string]bool{}
	for range ids {
		got[srv.NextInstanceDeleted(t).InstanceUUID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("no InstanceDeleted for %s", id)
		}
	}
	srv.NextStatus(t, ssntp.MAINTENANCE)
	waitStats(t, srv, "maintenance, no instances", func(s payloads.Stat) bool {
		return s.Status == "MAINTENANCE" && len(s.Instances) == 0
	})
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartFullComputeNode {
		t.Errorf("START while evacuated: %+v", f)
	}

	// Maintenance survives a restart until -restore.
	l.stop(t)
	srv.NextDisconnect(t)
	l = startLauncher(t, srv, cfg)
	srv.NextStatus(t, ssntp.MAINTENANCE)
	l.stop(t)
	srv.NextDisconnect(t)
	if err := Restore(cfg); err != nil {
		t.Fatal(err)
	}
	startLauncher(t, srv, cfg)
	srv.NextReady(t)
}

func TestMaxInstancesFull(t *testing.T) {
	srv, l, _, _ := simLauncher(t, func(c *Config) { c.MaxInstances = 1 })
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "node full", func(s payloads.Stat) bool { return s.Status == "FULL" })
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance("0a1b2c3d-0000-4000-8000-000000000004")))
	if f := srv.NextStartFailure(t); f.Reason != payloads.StartFullComputeNode {
		t.Errorf("START on a full node: %+v", f)
	}
}

func TestSimAdoptedAfterRestart(t *testing.T) {
	srv, l, _, cfg := simLauncher(t, nil)
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))
	l.stop(t)
	srv.NextDisconnect(t)
	cfg.Drivers = driver.Registry{driver.KindSim: sim.New()} // a new process has a new simulator
	startLauncher(t, srv, cfg)
	waitStats(t, srv, "adopted instance active", stateIs(simInstance, payloads.InstanceActive))
}

func TestRefusesWrongRole(t *testing.T) {
	srv := newTestServer(t)
	dir := t.TempDir()
	cfg := testConfig(t, srv, dir)
	cfg.CACert, cfg.Cert = testutil.TestCerts(t).WriteFiles(t, t.TempDir(), ssntp.Controller)
	if err := Run(t.Context(), cfg); err == nil {
		t.Fatal("a Controller certificate was accepted")
	}
}

// TestSimExitWithoutPolling: simulated instances are not polled (the sim
// driver is a driver.Waiter): with polling every hour, an instance that
// dies by itself, then one restarted and killed again, is still reported
// exited, and a stopped-then-restarted instance stays watched.
func TestSimExitWithoutPolling(t *testing.T) {
	srv, l, s, _ := simLauncher(t, func(c *Config) { c.PollInterval = time.Hour })
	srv.SendCommand(t, l.id, ssntp.START, testutil.StartPayload(testutil.StartInstance(simInstance)))
	waitStats(t, srv, "instance active", stateIs(simInstance, payloads.InstanceActive))
	s.Kill(simInstance)
	waitStats(t, srv, "instance exited", stateIs(simInstance, payloads.InstanceExited))
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(simInstance, l.id.String()))
	waitStats(t, srv, "instance active again", stateIs(simInstance, payloads.InstanceActive))
	s.Kill(simInstance)
	waitStats(t, srv, "instance exited again", stateIs(simInstance, payloads.InstanceExited))
}
