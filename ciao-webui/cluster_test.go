package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/testutil"
)

// cluster is a real Ciao cluster on loopback: ciao-scheduler,
// ciao-controller (built-in identity), simulated ciao-launchers and
// ciao-webui, each a binary built from this tree.
type cluster struct {
	dir       string
	db        string // the controller's database
	ctlURL    string // https://127.0.0.1:port
	webURL    string
	ctlCA     string // PEM trusted for the controller's HTTPS
	client    *http.Client
	adminPass string
}

const (
	adminUser = "admin"
	demoUser  = "demo"
	demoPass  = "demo-password"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// TestMain removes the binaries that buildBinaries made.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinaries builds the four daemons once per test process; TestMain
// removes them.
func buildBinaries(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ciao-webui-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"ciao-scheduler", "ciao-controller", "ciao-launcher", "ciao-webui"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, pkg), "../"+pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitListen(tb testing.TB, addr string) {
	waitFor(tb, addr+" to listen", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func writeFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// startCluster starts the cluster with n simulated launchers and two
// identity users: admin (role admin on project admin) and demo (member of
// project demo). ctlArgs are extra flags of the controller.
func startCluster(tb testing.TB, launchers int, ctlArgs ...string) *cluster {
	tb.Helper()
	bin := buildBinaries(tb)
	dir := tb.TempDir()
	c := &cluster{dir: dir, db: filepath.Join(dir, "controller.db"), adminPass: "admin-password"}

	certs := testutil.TestCerts(tb)
	ca, schedCert := certs.WriteFiles(tb, dir, ssntp.SCHEDULER|ssntp.SERVER)
	_, ctlCert := certs.WriteFiles(tb, dir, ssntp.Controller)
	_, agentCert := certs.WriteFiles(tb, dir, ssntp.AGENT)
	conf := filepath.Join(dir, "configuration.yaml")
	writeFile(tb, conf, testutil.Marshal(tb, testutil.ConfigureCmd()))
	httpsCert, httpsKey := testutil.WriteHTTPSCert(tb, dir)
	c.ctlCA = httpsCert

	for _, u := range []struct{ user, pass, project, role string }{
		{adminUser, c.adminPass, "admin", "admin"}, {demoUser, demoPass, "demo", "member"}} {
		cmd := exec.Command(filepath.Join(bin, "ciao-controller"), "-database", c.db, "-create-user", u.user,
			"-password", "-", "-project", u.project, "-role", u.role)
		cmd.Stdin = strings.NewReader(u.pass + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("create user %s: %v\n%s", u.user, err, out)
		}
	}

	sp := strconv.Itoa(freePort(tb))
	testutil.StartCommand(tb, dir, "scheduler", filepath.Join(bin, "ciao-scheduler"), "-cert", schedCert, "-cacert", ca,
		"-listen", "127.0.0.1:"+sp, "-configuration-uri", "file://"+conf, "-logtostderr")
	waitListen(tb, "127.0.0.1:"+sp)
	ctlPort := strconv.Itoa(freePort(tb))
	args := append([]string{"-cacert", ca, "-cert", ctlCert, "-server", "127.0.0.1", "-port", sp,
		"-httpscert", httpsCert, "-httpskey", httpsKey, "-compute-host", "127.0.0.1", "-compute-port", ctlPort,
		"-database", c.db, "-logtostderr"}, ctlArgs...)
	testutil.StartCommand(tb, dir, "controller", filepath.Join(bin, "ciao-controller"), args...)
	waitListen(tb, "127.0.0.1:"+ctlPort)
	c.ctlURL = "https://127.0.0.1:" + ctlPort
	for i := 0; i < launchers; i++ {
		ld := filepath.Join(dir, fmt.Sprintf("launcher%d", i))
		testutil.StartCommand(tb, dir, fmt.Sprintf("launcher%d", i), filepath.Join(bin, "ciao-launcher"), "-simulation", "-osprepare=false",
			"-cacert", ca, "-cert", agentCert, "-server", "127.0.0.1", "-port", sp,
			"-state-dir", filepath.Join(ld, "instances"), "-uuid-dir", filepath.Join(ld, "uuid"),
			"-lock-file", filepath.Join(ld, "lock"), "-maintenance-file", filepath.Join(ld, "maintenance"),
			"-image-dir", filepath.Join(ld, "images"), "-cgroup-root", "", "-network=false",
			"-stats-interval", "1s", "-logtostderr")
	}
	for i := 0; i < launchers; i++ {
		log := filepath.Join(dir, fmt.Sprintf("launcher%d.log", i))
		waitFor(tb, "launcher to connect", 30*time.Second, func() bool {
			b, _ := os.ReadFile(log)
			return bytes.Contains(b, []byte("launcher: connected to scheduler"))
		})
	}
	webPort := strconv.Itoa(freePort(tb))
	testutil.StartCommand(tb, dir, "webui", filepath.Join(bin, "ciao-webui"), "-listen", "127.0.0.1:"+webPort,
		"-controller", c.ctlURL, "-controller-cacert", httpsCert, "-logtostderr", "-v", "1")
	waitListen(tb, "127.0.0.1:"+webPort)
	c.webURL = "https://127.0.0.1:" + webPort

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(httpsCert)
	pool.AppendCertsFromPEM(pem)
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return c
}

// token signs in to the controller's identity directly and returns the
// token and its project id.
func (c *cluster) token(tb testing.TB, user, pass, project string) (tok, projectID string) {
	tb.Helper()
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"domain":{"id":"default"},"password":%q}}},"scope":{"project":{"name":%q,"domain":{"id":"default"}}}}}`,
		user, pass, project)
	resp, err := c.client.Post(c.ctlURL+"/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token struct {
			Project struct{ ID string } `json:"project"`
		} `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusCreated {
		tb.Fatalf("sign in %s: %d %v", user, resp.StatusCode, err)
	}
	return resp.Header.Get("X-Subject-Token"), tr.Token.Project.ID
}

// revoke invalidates a token at the identity service, as its expiry
// would.
func (c *cluster) revoke(tb testing.TB, tok string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodDelete, c.ctlURL+"/v3/auth/tokens", nil)
	req.Header.Set("X-Auth-Token", tok)
	req.Header.Set("X-Subject-Token", tok)
	resp, err := c.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("revoke: HTTP %d", resp.StatusCode)
	}
}

// decodeJSON reads a 2xx JSON answer into v.
func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
