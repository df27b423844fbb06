package launcher

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/process"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// procNetns runs a command in the network namespace of a process.
func procNetns(pid int, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", pid), name}, args...)...)
}

// sameNetns reports whether pid shares the test's network namespace.
func sameNetns(t *testing.T, pid int) bool {
	t.Helper()
	a, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return a == b
}

// TestProcessTenantVnic: a process instance whose START has a networking
// section runs in its own network namespace with its VNIC as eth0 (the
// START's address and MAC, default route via the tenant gateway); it
// reaches its gateway across the CNCI tunnel and another instance of the
// tenant on the node. STOP/RESTART and a launcher restart keep it on its
// network; DELETE leaves no namespace and no link of the instance, and
// a hard reset none at all. A process without
// networking stays in the launcher's namespace.
func TestProcessTenantVnic(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter", "ip")
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tn := newTenantNet(t)
	cnNS := tn.cnNS

	srv := newTestServer(t)
	fakeCNCI := tn.agent(t, srv)
	cfg := testConfig(t, srv, t.TempDir())
	tn.onNode(&cfg)
	t.Cleanup(func() { _ = process.New(process.DefaultConfig()).Reset(context.Background(), cfg.StateDir) })
	killAll(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)

	loop := processUserData("/bin/sleep", "300")
	a, b, plain := uuid.Generate().String(), uuid.Generate().String(), uuid.Generate().String()
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, a, loop, tn.vnic("172.16.0.2", "172.16.0.0/24")))
	ta := fakeCNCI.NextTenantAdded(t)
	sn := tn.tunnel(t, ta)
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, b, loop, tn.vnic("172.16.0.3", "172.16.0.0/24")))
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, plain, loop))
	for _, id := range []string{a, b, plain} {
		waitStats(t, srv, "process "+id+" active", stateIs(id, payloads.InstanceActive))
	}
	gw := networking.Gateway(sn)

	check := func(when string) {
		t.Helper()
		pa := handleOf(t, cfg.StateDir, a).PID
		// The launcher's own threads (the main one is never ended by
		// the runtime) stay in its namespace.
		if ns, _ := os.Readlink("/proc/self/ns/net"); ns != hostNS {
			t.Fatalf("%s: the launcher's main thread moved to %s (was %s)", when, ns, hostNS)
		}
		if sameNetns(t, pa) {
			t.Fatalf("%s: instance %s runs in the host's network namespace", when, a)
		}
		out, err := procNetns(pa, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "inet 172.16.0.2/24") {
			t.Fatalf("%s: eth0 of %s: %v: %s", when, a, err, out)
		}
		out, _ = procNetns(pa, "ip", "link", "show", "dev", "eth0").CombinedOutput()
		if mac := networking.InstanceMAC(net.ParseIP("172.16.0.2")).String(); !strings.Contains(string(out), mac) {
			t.Errorf("%s: eth0 of %s has not MAC %s: %s", when, a, mac, out)
		}
		out, _ = procNetns(pa, "ip", "-4", "route", "show", "default").CombinedOutput()
		if !strings.Contains(string(out), "via "+gw.String()+" dev eth0") {
			t.Errorf("%s: default route of %s: %s", when, a, out)
		}
		if out, _ := procNetns(pa, "ip", "-o", "link", "show", "dev", "lo").CombinedOutput(); !strings.Contains(string(out), "UP") {
			t.Errorf("%s: lo of %s is down: %s", when, a, out)
		}
		if err := procNetns(pa, "busybox", "ping", "-c", "1", "-W", "5", "-w", "5", gw.String()).Run(); err != nil {
			t.Errorf("%s: %s cannot reach its gateway %v: %v", when, a, gw, err)
		}
		if err := procNetns(pa, "busybox", "ping", "-c", "1", "-W", "5", "-w", "5", "172.16.0.3").Run(); err != nil {
			t.Errorf("%s: %s cannot reach %s of its tenant: %v", when, a, b, err)
		}
	}
	check("started")
	if pp := handleOf(t, cfg.StateDir, plain).PID; !sameNetns(t, pp) {
		t.Errorf("process %s without networking left the launcher's namespace", plain)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, plain, "netns")); err == nil {
		t.Errorf("process %s without networking got a namespace", plain)
	}

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(a, l.id.String()))
	waitStats(t, srv, "process stopped", stateIs(a, payloads.InstanceExited))
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(a, l.id.String()))
	waitStats(t, srv, "process restarted", stateIs(a, payloads.InstanceActive))
	check("restarted")

	l.stop(t)
	srv.NextDisconnect(t)
	l = startLauncher(t, srv, cfg)
	waitStats(t, srv, "process re-adopted", stateIs(a, payloads.InstanceActive))
	check("re-adopted")

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(a, l.id.String()))
	srv.NextInstanceDeleted(t)
	if _, err := os.Stat(filepath.Join(cfg.StateDir, a)); !os.IsNotExist(err) {
		t.Errorf("instance %s directory left: %v", a, err)
	}
	h := cnNS.Handle(t)
	waitFor(t, "the VNIC of the deleted instance gone", func() bool { return vnicLink(t, h, "172.16.0.2") == nil })
	if vnicLink(t, h, "172.16.0.3") == nil {
		t.Fatalf("deleting %s removed the VNIC of %s", a, b)
	}

	// A hard reset removes the namespace of the instance left, and its link.
	pb := handleOf(t, cfg.StateDir, b).PID
	l.stop(t)
	srv.NextDisconnect(t)
	if err := HardReset(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if alive(pb) {
		t.Errorf("hard reset left pid %d of %s", pb, b)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, b)); !os.IsNotExist(err) {
		t.Errorf("instance %s directory left: %v", b, err)
	}
	waitFor(t, "no ciao link left on the node", func() bool { return len(cnNS.CiaoLinks(t)) == 0 })
}

// TestHardResetHeldNetns: a launcher that died after mounting a process
// instance's network namespace but before saving its handle leaves a
// directory the first removal cannot take (the mount is busy); one hard
// reset still removes it, after the process driver has unmounted it.
func TestHardResetHeldNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a network namespace")
	}
	srv := newTestServer(t)
	cfg := testConfig(t, srv, t.TempDir())
	dir := filepath.Join(cfg.StateDir, "6b3e3bd2-4f0e-4d57-9d1c-2f3e9c1a0b7e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "netns")
	if err := os.WriteFile(held, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "--bind", "/proc/self/ns/net", held).Run(); err != nil {
		t.Fatalf("bind-mounting a namespace: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", held).Run() })
	if err := os.RemoveAll(dir); err == nil {
		t.Fatal("the held directory could be removed: the test does not test anything")
	}
	if err := HardReset(context.Background(), cfg); err != nil {
		t.Fatalf("HardReset: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("instance directory left after hard reset: %v", err)
	}
}
