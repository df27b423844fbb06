package launcher

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker/dockertest"
	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/nettest"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
	"github.com/ciao-project/ciao/uuid"
)

// containerPing pings ip from inside a container's network namespace.
func containerPing(t *testing.T, id string, ip net.IP) bool {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", docker.ContainerName(id)).Output()
	if err != nil {
		t.Fatalf("docker inspect: %v", err)
	}
	pid := strings.TrimSpace(string(out))
	return exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "busybox", "ping", "-c", "1", "-W", "5", "-w", "5", ip.String()).Run() == nil
}

// TestDockerTenantVnic: a container START with a networking section runs
// with its tenant VNIC as eth0 (address, gateway) and reaches its CNCI's
// gateway across the tunnel; after STOP and RESTART (the veth died with the
// container's namespace) it is attached again; DELETE removes every link.
func TestDockerTenantVnic(t *testing.T) {
	nettest.RequireNetAdmin(t)
	nettest.RequireTools(t, "dnsmasq", "iptables-restore", "busybox", "nsenter", "docker")
	dockertest.Require(t)
	tn := newTenantNet(t)

	srv := newTestServer(t)
	fakeCNCI := tn.agent(t, srv)
	cfg := testConfig(t, srv, t.TempDir())
	cfg.Drivers = driver.Registry{driver.KindDocker: dockertest.NewDriver(t, nil)}
	tn.onNode(&cfg)
	dockertest.CleanupRoot(t, cfg.StateDir)
	l := startLauncher(t, srv, cfg)

	id := uuid.Generate().String()
	srv.SendCommand(t, l.id, ssntp.START, startPayload(t, id, dockerUserData, testutil.StartVMType(payloads.HypervisorDocker),
		dockerImage(dockertest.Image), tn.vnic("172.16.0.2", "172.16.0.0/24")))
	ta := fakeCNCI.NextTenantAdded(t)
	sn := tn.tunnel(t, ta)
	waitStats(t, srv, "container active", stateIs(id, payloads.InstanceActive))
	gw := networking.Gateway(sn)
	if !containerPing(t, id, gw) {
		t.Fatal("the container cannot reach its gateway through its VNIC")
	}

	srv.SendCommand(t, l.id, ssntp.STOP, testutil.StopPayload(id, l.id.String()))
	waitStats(t, srv, "container stopped", stateIs(id, payloads.InstanceExited))
	srv.SendCommand(t, l.id, ssntp.RESTART, testutil.RestartPayload(id, l.id.String()))
	waitStats(t, srv, "container restarted", stateIs(id, payloads.InstanceActive))
	if !containerPing(t, id, gw) {
		t.Fatal("the restarted container cannot reach its gateway")
	}

	srv.SendCommand(t, l.id, ssntp.DELETE, testutil.DeletePayload(id, l.id.String()))
	srv.NextInstanceDeleted(t)
	fakeCNCI.NextTenantRemoved(t)
	if ls := tn.cnNS.CiaoLinks(t); len(ls) != 0 {
		t.Fatalf("node keeps %v", ls)
	}
}
