// Command ciao-cnci-agent runs a tenant's concentrator (CNCI): it keeps the
// tenant's subnet bridges, tunnels to compute nodes, DHCP, NAT and SSH
// forwarding, driven over SSNTP (role CNCIAGENT) by the TenantAdded and
// TenantRemoved events the scheduler forwards to it. See internal/agent.
//
// It runs wherever the CNCI's compute link is: inside a CNCI VM on a
// network node (the 2016 way; its UUID then comes from the config drive),
// or as a process in a network namespace of the network node (-netns, or
// started under `ip netns exec`), which is what a dev cluster uses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/golang/glog"

	"github.com/ciao-project/ciao/networking"
	"github.com/ciao-project/ciao/networking/ciao-cnci-agent/internal/agent"
)

const (
	defaultLogDir   = "/var/lib/ciao/logs/cnci-agent"
	defaultMetaData = "/media/openstack/latest/meta_data.json"
)

type options struct {
	metaData string // config-drive meta_data.json, read when -uuid is empty
}

func parseFlags(fs *flag.FlagSet, args []string) (agent.Config, options, error) {
	cfg := agent.DefaultConfig()
	var o options
	fs.StringVar(&cfg.Server, "server", "", `scheduler host ("" or "auto": the CA certificate's names, then localhost)`)
	fs.IntVar(&cfg.Port, "port", 0, "scheduler SSNTP port (default 8888)")
	fs.StringVar(&cfg.CACert, "cacert", "/var/lib/ciao/CAcert-server-localhost.pem", "CA certificate (PEM)")
	fs.StringVar(&cfg.Cert, "cert", "/var/lib/ciao/cert-client-localhost.pem", "CNCIAGENT certificate and key (PEM)")
	fs.StringVar(&cfg.UUID, "uuid", "", "SSNTP UUID = the CNCI instance uuid (empty: the uuid of -meta-data)")
	fs.StringVar(&o.metaData, "meta-data", defaultMetaData, "config-drive meta_data.json holding the CNCI's uuid (/dev/vdb is mounted on /media if it is missing)")
	fs.StringVar(&cfg.Tenant, "tenant", "", "tenant uuid to report in ConcentratorInstanceAdded (optional)")
	fs.StringVar(&cfg.Network.Netns, "netns", "", "network namespace file to run the CNCI in (default: the agent's own)")
	fs.StringVar(&cfg.Network.RunDir, "run-dir", "/tmp", "directory of the dnsmasq files")
	network := fs.Bool("network", true, "set up NAT (masquerade) and IP forwarding on the compute link")
	ssh := fs.Bool("ssh", true, "forward SSH ports to tenant instances (needs -network)")
	fs.Func("compute-net", "compute network CIDR (tunnel endpoint); default: the only interface's address", func(s string) error {
		_, n, err := net.ParseCIDR(s)
		if err == nil {
			cfg.Network.ComputeNets = append(cfg.Network.ComputeNets, *n)
		}
		return err
	})
	fs.Func("mgmt-net", "management network CIDR", func(s string) error {
		_, n, err := net.ParseCIDR(s)
		if err == nil {
			cfg.Network.MgmtNets = append(cfg.Network.MgmtNets, *n)
		}
		return err
	})
	fs.Func("compute-ip", "use this compute address as the tunnel endpoint", func(s string) error {
		cfg.Network.ComputeIP = net.ParseIP(s).To4()
		if cfg.Network.ComputeIP == nil {
			return fmt.Errorf("not an IPv4 address: %q", s)
		}
		return nil
	})
	fs.Func("tunnel", "tenant tunnels: vxlan (default) or gre", func(s string) (err error) {
		cfg.Network.Tunnel, err = networking.ParseTunnelKind(s)
		return err
	})
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Server == "auto" {
		cfg.Server = ""
	}
	cfg.Network.Firewall = *network && *ssh
	return cfg, o, nil
}

func main() {
	cfg, o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-cnci-agent:", err)
		os.Exit(2)
	}
	setupLogDir()
	defer glog.Flush()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, cfg, o); err != nil {
		glog.Errorf("ciao-cnci-agent: %v", err)
		glog.Flush()
		fmt.Fprintln(os.Stderr, "ciao-cnci-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg agent.Config, o options) error {
	if cfg.UUID == "" {
		id, err := uuidFromMetaData(o.metaData)
		if err != nil {
			return err
		}
		cfg.UUID = id
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	glog.Infof("ciao-cnci-agent: CNCI %s starting", cfg.UUID)
	err := agent.Run(ctx, cfg)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	glog.Infof("ciao-cnci-agent: exiting (the CNCI's networking stays)")
	return err
}

// uuidFromMetaData reads the CNCI's uuid from the config drive the
// launcher gave its VM, mounting it first if needed.
func uuidFromMetaData(path string) (string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && path == defaultMetaData {
		_ = exec.Command("mount", "/dev/vdb", "/media").Run() // may already be mounted
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no -uuid and no meta data: %w", err)
	}
	var md struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return "", fmt.Errorf("meta data %s: %w", path, err)
	}
	if strings.TrimSpace(md.UUID) == "" {
		return "", fmt.Errorf("meta data %s has no uuid", path)
	}
	return strings.TrimSpace(md.UUID), nil
}

// setupLogDir gives glog the 2016 log directory unless the command line
// chose where logs go.
func setupLogDir() {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["log_dir"] || set["logtostderr"] {
		return
	}
	if err := os.MkdirAll(defaultLogDir, 0o755); err != nil {
		_ = flag.Set("logtostderr", "true")
		return
	}
	_ = flag.Set("log_dir", defaultLogDir)
}
