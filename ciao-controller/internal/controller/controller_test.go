package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
	yaml "gopkg.in/yaml.v2"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	tenantA = "1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a"
	tenantB = "2491851d-dce9-48d6-b83a-a717417072ce"
)

type env struct {
	fs    *testutil.FakeServer
	agent *testutil.FakeAgent
	node  string // the agent's UUID
	store *datastore.Memory
	ctl   *Controller
}

// newEnv starts a fake scheduler, a seeded memory store and a connected
// Controller, all closed at cleanup.
func newEnv(t *testing.T) *env {
	t.Helper()
	fs := testutil.NewFakeServer(t)
	store := datastore.NewMemory()
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	if err := SeedWorkloads(ctx, store); err != nil {
		t.Fatal(err)
	}
	sc := testutil.TestCerts(t).Config(t, ssntp.Controller)
	sc.Port = fs.Port()
	ctl, err := New(ctx, NewConfig(store, sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	fs.NextConnect(t)
	// A compute node for the fake scheduler to place STARTs on; it keeps
	// quiet unless commanded (no automatic STATS).
	agent := testutil.NewFakeAgent(t, fs.Port(), ssntp.AGENT)
	fs.NextConnect(t)
	return &env{fs: fs, agent: agent, node: agent.UUID().String(), store: store, ctl: ctl}
}

func (e *env) me() uuid.UUID { return e.ctl.client.UUID() }

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testutil.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for state
	}
}

func (e *env) launch(t *testing.T, tenant, wl string, n int) []datastore.Instance {
	t.Helper()
	ins, err := e.ctl.Launch(context.Background(), tenant, wl, n, "")
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	if len(ins) != n {
		t.Fatalf("launched %d, want %d", len(ins), n)
	}
	return ins
}

// launchActive launches one instance of tenantA (WorkloadClear) and
// waits until e.node reports it active.
func (e *env) launchActive(t *testing.T) datastore.Instance {
	t.Helper()
	in := e.launch(t, tenantA, WorkloadClear, 1)[0]
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: in.ID, State: payloads.InstanceActive})
	return e.waitState(t, in.ID, datastore.StateActive)
}

// report plays a launcher's STATS relayed to the controller.
func (e *env) report(t *testing.T, node string, st ...payloads.InstanceStat) {
	t.Helper()
	e.fs.SendCommand(t, e.me(), ssntp.STATS, testutil.StatsPayload(node, "host-"+node[:4], st...))
}

func (e *env) waitState(t *testing.T, id, state string) datastore.Instance {
	t.Helper()
	var in datastore.Instance
	waitFor(t, id+" "+state, func() bool {
		var err error
		in, err = e.store.Instance(context.Background(), id)
		return err == nil && in.State == state
	})
	return in
}

func (e *env) waitGone(t *testing.T, id string) {
	t.Helper()
	waitFor(t, id+" removed", func() bool {
		_, err := e.store.Instance(context.Background(), id)
		return errors.Is(err, datastore.ErrNotFound)
	})
}

func (e *env) hasEvent(tenant, typ, msg string) bool {
	es, _ := e.store.Events(context.Background(), tenant)
	for _, ev := range es {
		if ev.Type == typ && ev.Message == msg {
			return true
		}
	}
	return false
}

func TestLaunchStartPayload(t *testing.T) {
	e := newEnv(t)
	ins := e.launch(t, tenantA, WorkloadClear, 2)
	for i, in := range ins {
		f := e.fs.NextCommand(t, ssntp.START)
		p := string(f.Payload)
		if !strings.HasPrefix(p, "---\nstart:\n  tenant_uuid: "+tenantA+"\n") {
			t.Fatalf("payload does not begin with the start document:\n%s", p)
		}
		startDoc, ud, md, err := payloads.SplitStart(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := payloads.DecodeStart(startDoc)
		if err != nil {
			t.Fatal(err)
		}
		c := s.Start
		ip := fmt.Sprintf("172.16.0.%d", i+2)
		checks := []struct{ name, got, want string }{
			{"tenant_uuid", c.TenantUUID, tenantA},
			{"instance_uuid", c.InstanceUUID, in.ID},
			{"image_uuid", c.ImageUUID, "df3768da-31f5-4ba6-82f0-127a1a705169"},
			{"docker_image", c.DockerImage, ""},
			{"fw_type", string(c.FWType), "efi"},
			{"persistence", string(c.InstancePersistence), "host"},
			{"vm_type", string(c.VMType), "qemu"},
			{"vnic_mac", c.Networking.VnicMAC, fmt.Sprintf("02:00:ac:10:00:%02x", i+2)},
			{"private_ip", c.Networking.PrivateIP, ip},
			{"subnet", c.Networking.Subnet, "172.16.0.0/24"},
			{"concentrator_uuid", c.Networking.ConcentratorUUID, ""},
			{"concentrator_ip", c.Networking.ConcentratorIP, ""},
			{"subnet_key", c.Networking.SubnetKey, ""},
			{"ip in store", in.IP, ip},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("instance %d %s = %q, want %q", i, ch.name, ch.got, ch.want)
			}
		}
		if _, err := uuid.Parse(c.Networking.VnicUUID); err != nil {
			t.Errorf("vnic_uuid %q: %v", c.Networking.VnicUUID, err)
		}
		want := []payloads.RequestedResource{{Type: "vcpus", Value: 2, Mandatory: true}, {Type: "mem_mb", Value: 128, Mandatory: true}, {Type: "disk_mb", Value: 80, Mandatory: true}}
		if fmt.Sprint(c.RequestedResources) != fmt.Sprint(want) {
			t.Errorf("requested_resources %v, want %v", c.RequestedResources, want)
		}
		if len(c.EstimatedResources) != 0 || c.Networking.PublicIP || c.Storage.ID != "" {
			t.Errorf("estimated %v public %v storage %v", c.EstimatedResources, c.Networking.PublicIP, c.Storage)
		}
		if !strings.Contains(p, "  estimated_resources: []\n") {
			t.Error("estimated_resources not written as []")
		}
		if string(ud) != cloudInitTest {
			t.Errorf("user data %q, want %q", ud, cloudInitTest)
		}
		wantMeta := "---\n{\n\t\"uuid\": \"" + in.ID + "\",\n\t\"hostname\": \"" + in.ID + "\"\n}\n...\n"
		if string(md) != wantMeta || !strings.HasSuffix(p, wantMeta) {
			t.Errorf("metadata %q, want %q", md, wantMeta)
		}
		var meta payloads.StartMetadata
		if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(string(md), "---\n"), "...\n")), &meta); err != nil || meta.UUID != in.ID {
			t.Errorf("metadata %+v: %v", meta, err)
		}
		if in.State != datastore.StatePending || in.NodeID != "" {
			t.Errorf("new instance %+v", in)
		}
	}
	if !e.hasEvent(tenantA, datastore.EventInfo, "Registered tenant "+tenantA) {
		t.Error("no tenant registration event")
	}
}

func TestLaunchDocker(t *testing.T) {
	e := newEnv(t)
	e.launch(t, tenantA, WorkloadDockerUbuntu, 1)
	c := e.fs.NextStart(t)
	if c.VMType != payloads.HypervisorDocker || c.DockerImage != "ubuntu:latest" || c.FWType != "" {
		t.Errorf("docker start %+v", c)
	}
}

func TestLaunchRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		name     string
		workload string
		n        int
		want     error
	}{
		{"unknown workload", "00000000-0000-4000-8000-000000000000", 1, datastore.ErrNotFound},
		{"CNCI workload", WorkloadCNCI, 1, datastore.ErrNotFound},
		{"zero count", WorkloadClear, 0, datastore.ErrInvalid},
		{"too many", WorkloadClear, DefaultMaxLaunch + 1, datastore.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.ctl.Launch(ctx, tenantA, c.workload, c.n, ""); !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
	t.Run("over quota", func(t *testing.T) {
		if err := e.ctl.ConfirmTenant(ctx, tenantA); err != nil {
			t.Fatal(err)
		}
		if err := e.store.SetLimit(ctx, tenantA, datastore.ResInstances, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ctl.Launch(ctx, tenantA, WorkloadClear, 3, ""); !errors.Is(err, datastore.ErrQuota) {
			t.Fatalf("err %v, want ErrQuota", err)
		}
		p, err := e.store.Instances(ctx, datastore.InstanceQuery{TenantID: tenantA})
		if err != nil || p.Total != 0 {
			t.Fatalf("instances after refusal: %+v %v", p, err)
		}
		e.fs.Nothing(t, ssntp.COMMAND, uint8(ssntp.START), 100*time.Millisecond)
		e.launch(t, tenantA, WorkloadClear, 2)
	})
}

func TestStatsUpdateState(t *testing.T) {
	e := newEnv(t)
	in := e.launch(t, tenantA, WorkloadClear, 1)[0]
	e.fs.NextStart(t)
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: in.ID, State: payloads.InstanceActive, SSHIP: "198.51.100.75", SSHPort: 33002},
		payloads.InstanceStat{InstanceUUID: "c6beb8b5-0bfc-43fd-9638-7dd788179fd8", State: "active"}) // unknown: ignored
	got := e.waitState(t, in.ID, datastore.StateActive)
	if got.NodeID != e.node || got.SSHIP != "198.51.100.75" || got.SSHPort != 33002 {
		t.Errorf("after STATS: %+v", got)
	}
	n, err := e.store.Node(context.Background(), e.node)
	if err != nil || n.Status != "READY" || n.MemTotalMB <= 0 {
		t.Errorf("node stats %+v: %v", n, err)
	}
}

func TestStartFailure(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ins := e.launch(t, tenantA, WorkloadClear, 2)
	e.fs.SendError(t, e.me(), ssntp.StartFailure, testutil.StartFailurePayload(ins[0].ID, payloads.StartFullCloud))
	e.waitGone(t, ins[0].ID)
	// The event is written after the instance goes: poll for it.
	waitFor(t, "Start Failure event", func() bool {
		return e.hasEvent(tenantA, datastore.EventError, "Start Failure "+ins[0].ID+": Cloud is full")
	})
	qs, _ := e.store.Quotas(ctx, tenantA)
	if qs[0].Resource != datastore.ResInstances || qs[0].Usage != 1 {
		t.Errorf("quotas after failure: %+v", qs)
	}
	// The released address is handed out again.
	again := e.launch(t, tenantA, WorkloadClear, 1)[0]
	if again.IP != ins[0].IP {
		t.Errorf("address %s not reused (got %s)", ins[0].IP, again.IP)
	}

	e.fs.SendError(t, e.me(), ssntp.StartFailure, testutil.StartFailurePayload(ins[1].ID, payloads.StartLaunchFailure))
	e.waitState(t, ins[1].ID, StateError)
	// Unknown ids are ignored, and the controller still works afterwards.
	e.fs.SendError(t, e.me(), ssntp.StartFailure, testutil.StartFailurePayload("c6beb8b5-0bfc-43fd-9638-7dd788179fd8", payloads.StartFullCloud))
	if err := e.ctl.Delete(ctx, tenantA, ins[1].ID); err != nil {
		t.Fatalf("delete failed instance: %v", err)
	}
	e.waitGone(t, ins[1].ID)
}

func TestCommandsRouted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ins := e.launch(t, tenantA, WorkloadClear, 2)
	in, pending := ins[0], ins[1]
	if err := e.ctl.Delete(ctx, tenantA, pending.ID); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("delete pending: %v", err)
	}
	if err := e.ctl.Stop(ctx, tenantA, pending.ID); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("stop pending: %v", err)
	}
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: in.ID, State: payloads.InstanceActive})
	e.waitState(t, in.ID, datastore.StateActive)

	if err := e.ctl.Delete(ctx, tenantB, in.ID); !errors.Is(err, ErrNotOwner) {
		t.Errorf("other tenant's delete: %v", err)
	}
	if err := e.ctl.Restart(ctx, tenantA, in.ID); !errors.Is(err, ErrBadState) {
		t.Errorf("restart active: %v", err)
	}
	if err := e.ctl.Stop(ctx, tenantA, in.ID); err != nil {
		t.Fatal(err)
	}
	if s := e.fs.NextStop(t); s.InstanceUUID != in.ID || s.WorkloadAgentUUID != e.node {
		t.Errorf("STOP %+v", s)
	}
	e.report(t, e.node, payloads.InstanceStat{InstanceUUID: in.ID, State: payloads.InstanceExited})
	e.waitState(t, in.ID, datastore.StateExited)
	if err := e.ctl.Restart(ctx, tenantA, in.ID); err != nil {
		t.Fatal(err)
	}
	f := e.fs.NextCommand(t, ssntp.RESTART)
	var rs payloads.Restart
	if err := yaml.Unmarshal(f.Payload, &rs); err != nil || rs.Restart.InstanceUUID != in.ID || rs.Restart.WorkloadAgentUUID != e.node {
		t.Errorf("RESTART %+v: %v", rs, err)
	}
	if err := e.ctl.Delete(ctx, tenantA, in.ID); err != nil {
		t.Fatal(err)
	}
	if d := e.fs.NextDelete(t); d.InstanceUUID != in.ID || d.WorkloadAgentUUID != e.node {
		t.Errorf("DELETE %+v", d)
	}
	// The agent confirms with InstanceDeleted, which removes the instance.
	e.waitGone(t, in.ID)
	waitFor(t, "Deleted Instance event under the tenant", func() bool {
		return e.hasEvent(tenantA, datastore.EventInfo, "Deleted Instance "+in.ID)
	})
}

func TestNodeEvents(t *testing.T) {
	e := newEnv(t)
	e.fs.SendEvent(t, e.me(), ssntp.NodeConnected, testutil.NodeConnectedPayload(e.node, payloads.ComputeNode))
	e.report(t, e.node)
	waitFor(t, "node stats", func() bool { _, err := e.store.Node(context.Background(), e.node); return err == nil })
	e.fs.SendEvent(t, e.me(), ssntp.NodeDisconnected, testutil.NodeDisconnectedPayload(e.node, payloads.ComputeNode))
	waitFor(t, "node removed", func() bool {
		_, err := e.store.Node(context.Background(), e.node)
		return errors.Is(err, datastore.ErrNotFound)
	})
	waitFor(t, "node events", func() bool {
		return e.hasEvent("", datastore.EventInfo, "Node connected "+e.node+" (compute_node)") &&
			e.hasEvent("", datastore.EventWarn, "Node disconnected "+e.node+" (compute_node)")
	})
}

func TestConfigValidate(t *testing.T) {
	c := NewConfig(datastore.NewMemory(), ssntp.Config{})
	if c.SSNTP.Role != ssntp.Controller || c.Validate() != nil {
		t.Fatalf("default config %+v: %v", c, c.Validate())
	}
	c.Network = true
	if err := c.Validate(); err != nil {
		t.Errorf("networking refused: %v", err)
	}
	c.CNCITimeout = 0
	if c.Validate() == nil {
		t.Error("networking without a CNCI timeout accepted")
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.ResendPendingAfter = -time.Second },
		func(c *Config) { c.ResendDeleteAfter = -time.Second },
	} {
		c := NewConfig(datastore.NewMemory(), ssntp.Config{})
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-1s < 0") {
			t.Errorf("negative re-send delay: %v, want refused naming it", err)
		}
	}
	c = NewConfig(datastore.NewMemory(), ssntp.Config{})
	c.ResendPendingAfter, c.ResendDeleteAfter = 0, 0
	if err := c.Validate(); err != nil {
		t.Errorf("re-sends off refused: %v", err)
	}
}
