package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
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

// TestBinaryAgainstRealController runs the ciao-cli binary against the
// real ciao-controller binary (static tokens), with testutil's fake
// scheduler and a fake launcher behind it.
func TestBinaryAgainstRealController(t *testing.T) {
	cli := buildCLI(t)
	dir := t.TempDir()
	ctlBin := filepath.Join(dir, "ciao-controller")
	if out, err := exec.Command("go", "build", "-o", ctlBin, "../ciao-controller").CombinedOutput(); err != nil {
		// ciao-controller is another team's package: its work in progress
		// must not turn the CLI's tests red, but it must be visible.
		if os.Getenv("CI") != "" {
			t.Fatalf("ciao-controller does not build: %v\n%s", err, out)
		}
		t.Skipf("ciao-controller does not build, skipping: %v\n%s", err, out)
	}
	certs := testutil.TestCerts(t)
	ca, ctlCert := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "controller.pem")
	write(t, ca, certs.CACert)
	write(t, ctlCert, certs.Cert(t, ssntp.Controller))
	httpsCert, httpsKey := testutil.WriteHTTPSCert(t, dir)
	tokens := filepath.Join(dir, "tokens")
	write(t, tokens, []byte("tok T1 demo user\nadmintok A1 admin admin\n"))

	sched := testutil.NewFakeServer(t)
	port := freePort(t)
	testutil.StartCommand(t, dir, "controller", ctlBin, "-cacert", ca, "-cert", ctlCert, "-server", "127.0.0.1", "-port", strconv.Itoa(sched.Port()),
		"-httpscert", httpsCert, "-httpskey", httpsKey, "-compute-host", "127.0.0.1", "-compute-port", strconv.Itoa(port),
		"-database", filepath.Join(dir, "controller.db"), "-tokens", tokens, "-logtostderr")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("controller did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	agent := testutil.NewFakeAgent(t, sched.Port(), ssntp.AGENT, testutil.WithAutoReady(4096))

	env := []string{"HOME=" + dir, "CIAO_CONTROLLER=127.0.0.1", "CIAO_COMPUTEPORT=" + strconv.Itoa(port),
		"CIAO_CA_CERT_FILE=" + filepath.Join(dir, "https-cert.pem"), "CIAO_TOKEN=tok", "CIAO_TENANT_ID=T1"}
	sh := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, cli, args...)
		c.Env = env
		var o, e strings.Builder
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	var wls []struct{ ID, Name string }
	out, errOut, code := sh("workload", "list", "-json")
	if code != 0 || json.Unmarshal([]byte(out), &wls) != nil || len(wls) == 0 {
		t.Fatalf("workload list: %d %q %q", code, out, errOut)
	}
	// instance add -wait: the fake launcher reports its instances running
	// (STATS) once it has them; -wait sees them turn active.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	add := exec.CommandContext(ctx, cli, "instance", "add", "-workload", wls[0].ID, "-instances", "2", "-wait", "-timeout", "20s",
		"-f", `[{{range $i,$v := .}}{{if $i}},{{end}}"{{$v.ID | js}}"{{end}}]`)
	add.Env = env
	var addOut, addErr strings.Builder
	add.Stdout, add.Stderr = &addOut, &addErr
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	for len(agent.Instances()) < 2 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	agent.SendStats(t)
	err := add.Wait()
	var ids []string
	if err != nil || json.Unmarshal([]byte(addOut.String()), &ids) != nil || len(ids) != 2 {
		t.Fatalf("instance add -wait: %v %q %q", err, addOut.String(), addErr.String())
	}
	if out, errOut, code = sh("instance", "show", "-instance", ids[0], "-f", "{{.Status}} {{.TenantID}}"); code != 0 || out != "active T1" {
		t.Errorf("instance show: %d %q %q", code, out, errOut)
	}
	if out, errOut, code = sh("instance", "list"); code != 0 || strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, "# UUID") {
		t.Errorf("instance list: %d %q %q", code, out, errOut)
	}
	if out, errOut, code = sh("instance", "delete", "-instance", ids[0]); code != 0 || out != "Deleted instance: "+ids[0]+"\n" {
		t.Errorf("instance delete: %d %q %q", code, out, errOut)
	}
	if _, errOut, code = sh("instance", "show", "-instance", "00000000-0000-4000-8000-000000000000"); code == 0 ||
		strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("unknown instance: %d %q", code, errOut)
	}
	if _, errOut, code = sh("tenant", "list"); code == 0 || !strings.Contains(errOut, "HTTP 401") {
		t.Errorf("tenant list as a user: %d %q", code, errOut)
	}
}
