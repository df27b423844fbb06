package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds ciao-cnci-agent and ciao-scheduler once.
func binaries(t *testing.T) (agent, scheduler string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs ciao-scheduler and ciao-cnci-agent")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ciao-cnci-agent-bin"); buildErr != nil {
			return
		}
		buildOut, buildErr = exec.Command("go", "build", "-o", binDir+"/", ".", "../../ciao-scheduler").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(binDir, "ciao-cnci-agent"), filepath.Join(binDir, "ciao-scheduler")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floodList is the compute nodes in the flood list of the CNCI's tunnel
// for subnet (nil if the subnet has no tunnel).
func floodList(t *testing.T, h *netlink.Handle, subnet string) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Type() != "vxlan" || l.Attrs().Alias != "gre_"+subnetPlus(subnet) {
			continue
		}
		fdb, err := h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, e := range fdb {
			if e.HardwareAddr.String() == "00:00:00:00:00:00" {
				out = append(out, e.IP.String())
			}
		}
		return out
	}
	return nil
}

func subnetPlus(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '/' {
			b[i] = '+'
		}
	}
	return string(b)
}

func tenantEvent(ev *networking.TunnelEvent, agentUUID, concUUID string) payloads.TenantAddedEvent {
	return payloads.TenantAddedEvent{
		AgentUUID: agentUUID, AgentIP: ev.CnIP.String(), TenantUUID: ev.TenantID, TenantSubnet: ev.Subnet.String(),
		ConcentratorUUID: concUUID, ConcentratorIP: ev.CnciIP.String(), SubnetKey: int(ev.SubnetKey),
	}
}

// TestAgentWithScheduler runs the real scheduler and the ciao-cnci-agent
// binary, its CNCI in a network namespace on an underlay shared with a
// compute node (another namespace). The agent announces itself to the
// controller with its compute IP and MAC; the compute node's TenantAdded,
// forwarded by the scheduler, makes the CNCI serve the subnet, and the
// instance gets its address by DHCP across the tunnel. A bad event is
// refused; the agent killed and restarted rebuilds, announces itself again
// and still serves; TenantRemoved takes the compute node off the tunnel.
func TestAgentWithScheduler(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter")
	agentBin, schedBin := binaries(t)
	dir := t.TempDir()
	certs := testutil.TestCerts(t)
	ca, schedCert := certs.WriteFiles(t, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, cnciCert := certs.WriteFiles(t, dir, ssntp.CNCIAGENT)
	conf := filepath.Join(dir, "configuration.yaml")
	if err := os.WriteFile(conf, testutil.Marshal(t, testutil.ConfigureCmd()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	testutil.StartCommand(t, dir, "scheduler", schedBin, "-cert", schedCert, "-cacert", ca,
		"-listen", "127.0.0.1:"+strconv.Itoa(port), "-configuration-uri", "file://"+conf, "-logtostderr")
	ctl := testutil.NewFakeController(t, port)

	ul := nettest.NewUnderlay(t)
	cnciNS, cnciIP := ul.Attach(t, "cnci")
	cnNS, _ := ul.Attach(t, "cn")
	cnciMAC := mustLink(t, cnciNS, "eth0").Attrs().HardwareAddr.String()
	cnciID := uuid.Generate().String()
	runDir := t.TempDir()
	startAgent := func(name string) *exec.Cmd {
		return testutil.StartCommand(t, dir, name, agentBin, "-server", "127.0.0.1", "-port", strconv.Itoa(port),
			"-cacert", ca, "-cert", cnciCert, "-uuid", cnciID, "-tenant", testutil.TenantUUID,
			"-netns", cnciNS.Path(), "-run-dir", runDir, "-logtostderr", "-v", "2")
	}
	agent := startAgent("cnci-agent")

	added := ctl.NextConcentratorAdded(t)
	if added.InstanceUUID != cnciID || added.ConcentratorIP != cnciIP.String() || added.ConcentratorMAC != cnciMAC || added.TenantUUID != testutil.TenantUUID {
		t.Fatalf("ConcentratorInstanceAdded %+v; want uuid %s, IP %v, MAC %s", added, cnciID, cnciIP, cnciMAC)
	}

	// The compute node: a launcher's networking, and its SSNTP identity.
	cfg := networking.DefaultConfig()
	cfg.Netns, cfg.Logger = cnNS.Path(), nettest.Logger{T: t}
	cn, err := networking.NewComputeNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	launcher := testutil.NewFakeAgent(t, port, ssntp.AGENT)
	subnet, _ := networking.ParseSubnet("172.16.0.0/24")
	ip := net.ParseIP("172.16.0.2").To4()
	vc := networking.VnicConfig{Role: networking.TenantContainer, VnicIP: ip, VnicMAC: networking.InstanceMAC(ip),
		Subnet: subnet, ConcIP: cnciIP, VnicID: "vnic-1", InstanceID: "inst-1", TenantID: testutil.TenantUUID,
		SubnetID: subnet.String(), ConcID: cnciID}
	ctx := context.Background()

	// A bad event first (wrong key): refused. Events are applied in order,
	// so once the good one shows, the bad one has been dealt with.
	bad := payloads.TenantAddedEvent{AgentUUID: launcher.UUID().String(), AgentIP: "10.77.0.99", TenantUUID: testutil.TenantUUID,
		TenantSubnet: "172.16.5.0/24", ConcentratorUUID: cnciID, ConcentratorIP: cnciIP.String(), SubnetKey: 8}
	launcher.SendEvent(t, ssntp.TenantAdded, testutil.Marshal(t, payloads.EventTenantAdded{TenantAdded: bad}))

	v, ev, err := cn.CreateVnic(ctx, vc)
	if err != nil || ev == nil {
		t.Fatalf("CreateVnic: %+v %v", ev, err)
	}
	launcher.SendEvent(t, ssntp.TenantAdded, testutil.Marshal(t, payloads.EventTenantAdded{
		TenantAdded: tenantEvent(ev, launcher.UUID().String(), cnciID)}))
	h := cnciNS.Handle(t)
	eventually(t, "the CNCI to add the compute node", func() bool {
		l := floodList(t, h, subnet.String())
		return len(l) == 1 && l[0] == ev.CnIP.String()
	})
	if l := floodList(t, h, "172.16.5.0/24"); l != nil {
		t.Fatalf("the CNCI accepted a TenantAdded with a wrong key: %v", l)
	}

	inst := nettest.NewNS(t, "in")
	cnNS.MustRun(t, "ip", "link", "set", v.PeerName, "netns", inst.Name)
	inst.MustRun(t, "ip", "link", "set", v.PeerName, "name", "eth0")
	inst.MustRun(t, "ip", "link", "set", "eth0", "up")
	if got := inst.DHCP(t); !got.Equal(ip) {
		t.Fatalf("DHCP through the agent's CNCI gave %v, want %v", got, ip)
	}
	if !inst.Ping(networking.Gateway(subnet)) {
		t.Fatal("instance cannot reach its gateway")
	}

	// Kill the agent; a new one rebuilds and announces itself again.
	_ = agent.Process.Kill()
	_ = agent.Wait()
	startAgent("cnci-agent-2")
	if again := ctl.NextConcentratorAdded(t); again.InstanceUUID != cnciID || again.ConcentratorIP != cnciIP.String() {
		t.Fatalf("after restart: %+v", again)
	}
	if got := inst.DHCP(t); !got.Equal(ip) {
		t.Fatalf("DHCP after the agent restart gave %v", got)
	}
	if !inst.Ping(networking.Gateway(subnet)) {
		t.Fatal("instance lost its gateway after the agent restart")
	}

	ev, err = cn.DestroyVnic(ctx, vc)
	if err != nil || ev == nil {
		t.Fatalf("DestroyVnic: %+v %v", ev, err)
	}
	launcher.SendEvent(t, ssntp.TenantRemoved, testutil.Marshal(t, payloads.EventTenantRemoved{
		TenantRemoved: tenantEvent(ev, launcher.UUID().String(), cnciID)}))
	eventually(t, "the CNCI to drop the compute node", func() bool {
		l := floodList(t, h, subnet.String())
		return l != nil && len(l) == 0
	})
	if l := cnNS.CiaoLinks(t); len(l) != 0 {
		t.Fatalf("compute node keeps %v", l)
	}
}

func mustLink(t *testing.T, n nettest.NS, name string) netlink.Link {
	t.Helper()
	l, err := n.Handle(t).LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
