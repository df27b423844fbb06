package loadtool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("loadtool: scheduler address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("loadtool: scheduler address %q: bad port", addr)
	}
	return host, port, nil
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; it is 100 on
// every Linux this runs on.
const clockTick = 10 * time.Millisecond

// procCPU is another process's user and system time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("loadtool: unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("loadtool: short /proc stat")
	}
	// utime and stime are fields 14 and 15 of the whole line.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("loadtool: bad /proc stat times")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// machineCPU returns the busy and total time of all CPUs from /proc/stat
// (steal counts as busy: it is time this machine wanted and did not get).
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("loadtool: unreadable /proc/stat")
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	idle := v[3] + v[4]
	all := v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
	return time.Duration(all-idle) * clockTick, time.Duration(all) * clockTick, nil
}

// machineBusy is machineCPU's busy time, zero if unreadable.
func machineBusy() time.Duration {
	b, _, err := machineCPU()
	if err != nil {
		return 0
	}
	return b
}

// procMemory returns a process's resident set size and its peak (VmRSS,
// VmHWM), in bytes.
func procMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// RaiseFileLimit lifts the open-file soft limit to the hard limit: every
// simulated agent holds a socket.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// Creds are the certificates of a load run: the anchor (the scheduler's
// own certificate and key, which also signs the others), the CA file, and
// one certificate each for all agents and for the controller.
type Creds struct {
	CACert, Anchor, Agent, Controller []byte
}

// MakeCreds mints a fresh anchor for localhost/127.0.0.1 and the client
// certificates, all with keys of type kt.
func MakeCreds(kt certs.KeyType) (*Creds, error) {
	ca, anchor, err := certs.CreateAnchor(certs.Template{
		Hosts: []string{"localhost", "127.0.0.1"}, Roles: ssntp.SCHEDULER | ssntp.SERVER, KeyType: kt})
	if err != nil {
		return nil, err
	}
	return credsFromAnchor(ca, anchor, kt)
}

// LoadCreds uses an existing anchor (the scheduler's certificate and key)
// to mint the client certificates.
func LoadCreds(anchorPath string, kt certs.KeyType) (*Creds, error) {
	a, err := certs.LoadAnchor(anchorPath)
	if err != nil {
		return nil, err
	}
	anchor, err := os.ReadFile(anchorPath)
	if err != nil {
		return nil, err
	}
	return credsFromAnchor(a.CertPEM(), anchor, kt)
}

func credsFromAnchor(ca, anchor []byte, kt certs.KeyType) (*Creds, error) {
	a, err := certs.ParseAnchor(anchor)
	if err != nil {
		return nil, err
	}
	agent, err := a.CreateCert(certs.Template{Hosts: []string{"localhost"}, Roles: ssntp.AGENT, KeyType: kt})
	if err != nil {
		return nil, err
	}
	ctl, err := a.CreateCert(certs.Template{Hosts: []string{"localhost"}, Roles: ssntp.Controller, KeyType: kt})
	if err != nil {
		return nil, err
	}
	return &Creds{CACert: ca, Anchor: anchor, Agent: agent, Controller: ctl}, nil
}

// Scheduler is a ciao-scheduler process started for a run.
type Scheduler struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// Launch starts the scheduler binary on a free port of 127.0.0.1 with
// the anchor as its certificate, a minimal cluster configuration, its
// logs under a temporary directory and extra arguments appended.
func Launch(ctx context.Context, binary string, cr *Creds, extra ...string) (*Scheduler, error) {
	dir, err := os.MkdirTemp("", "ciao-scheduler-load-")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"CAcert-server-localhost.pem":  cr.CACert,
		"cert-Scheduler-localhost.pem": cr.Anchor,
		"configuration.yaml":           []byte(clusterConfig),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{
		"-cert", filepath.Join(dir, "cert-Scheduler-localhost.pem"),
		"-cacert", filepath.Join(dir, "CAcert-server-localhost.pem"),
		"-configuration-uri", "file://" + filepath.Join(dir, "configuration.yaml"),
		"-listen", addr,
		"-log_dir", filepath.Join(dir, "logs"),
	}, extra...)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("loadtool: starting %s: %w", binary, err)
	}
	return &Scheduler{Addr: addr, cmd: cmd, dir: dir}, nil
}

// PID is the scheduler's process id.
func (s *Scheduler) PID() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM, waits for the scheduler to exit and removes its
// files.
func (s *Scheduler) Stop() error {
	defer os.RemoveAll(s.dir)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == -1 {
		return nil // killed by our signal before it could handle it
	}
	return err
}

// clusterConfig is the minimal configuration handed to every agent.
const clusterConfig = `configure:
  scheduler:
    storage_uri: /etc/ciao/configuration.yaml
  controller:
    compute_ca: /etc/pki/ciao/compute_ca.pem
    compute_cert: /etc/pki/ciao/compute_key.pem
    identity_user: controller
    identity_password: ciao
  launcher:
    compute_net: [198.51.100.0/24]
    mgmt_net: [198.51.100.0/24]
  identity_service:
    url: http://keystone.example.com:35357
`
