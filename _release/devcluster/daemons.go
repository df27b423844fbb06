package devcluster

import (
	"net"
	"strconv"
)

// Daemon is one long-running process of the cluster.
type Daemon struct {
	// Name is short and unique: scheduler, controller, launcher-compute,
	// launcher-network. Logs go to logs/<Name>.log.
	Name string
	Path string
	Args []string
	// KeepChildren: stopping the daemon must leave what it started running
	// (a launcher's QEMU and process instances), so only its main process
	// is signalled (systemd KillMode=process).
	KeepChildren bool
	// After names the daemons that must be started first.
	After []string
}

// Launcher node kinds.
const (
	ComputeNode = "compute"
	NetworkNode = "network"
)

// LauncherDir is the directory of one launcher's state (instances, uuid,
// lock, maintenance flag, image cache).
func (c Config) LauncherDir(kind string) string { return c.Path("launcher-" + kind) }

// ImageDir is the compute launcher's VM image cache, where the dev VM
// workload's kernel and initramfs are put.
func (c Config) ImageDir() string { return c.Path("launcher-"+ComputeNode, "images") }

// Certificate and file paths.
func (c Config) caCert() string    { return c.Path("pki", "ca.pem") }
func (c Config) httpsCert() string { return c.Path("pki", "https-cert.pem") }
func (c Config) httpsKey() string  { return c.Path("pki", "https-key.pem") }
func (c Config) roleCert(role string) string {
	return c.Path("pki", role+".pem")
}
func (c Config) configFile() string { return c.Path("configuration.yaml") }

// Database is the controller's SQLite file.
func (c Config) Database() string { return c.Path("controller", "controller.db") }

// HTTPSCA is the certificate clients trust for the controller's API.
func (c Config) HTTPSCA() string { return c.httpsCert() }

// listenHost is the address daemons listen on: loopback for a cluster
// reached as localhost, every interface otherwise.
func (c Config) listenHost() string {
	if c.Host == "localhost" {
		return "127.0.0.1"
	}
	return ""
}

// Daemons is the cluster's process table, in start order: scheduler,
// controller, the compute-node launcher, the network-node launcher and
// the web UI.
// network turns tenant networking on in the controller and launchers.
func (c Config) Daemons(network bool) []Daemon {
	sp := strconv.Itoa(c.SchedulerPort)
	glog := []string{"-logtostderr", "-v", "2"}
	sched := Daemon{Name: "scheduler", Path: c.Bin("ciao-scheduler"), Args: append([]string{
		"-cacert", c.caCert(), "-cert", c.roleCert("scheduler"),
		"-configuration-uri", "file://" + c.configFile(),
		"-listen", net.JoinHostPort(c.listenHost(), sp)}, glog...)}
	ctl := Daemon{Name: "controller", Path: c.Bin("ciao-controller"), After: []string{"scheduler"}, Args: []string{
		"-cacert", c.caCert(), "-cert", c.roleCert("controller"),
		"-server", c.Host, "-port", sp,
		"-httpscert", c.httpsCert(), "-httpskey", c.httpsKey(),
		"-compute-host", c.listenHost(), "-compute-port", strconv.Itoa(c.APIPort),
		"-database", c.Database(), "-image-dir", c.Path("controller", "images"),
		"-tables_init_path", c.tablesDir(), "-workloads_path", c.workloadsDir(),
		"-public-url", c.APIURL()}}
	if network {
		ctl.Args = append(ctl.Args, "-network")
	}
	ctl.Args = append(ctl.Args, glog...)
	launcher := func(kind, cert string) Daemon {
		d := c.LauncherDir(kind)
		var netArgs []string
		if network {
			netArgs = c.networkArgs(kind)
		}
		return Daemon{Name: "launcher-" + kind, Path: c.Bin("ciao-launcher"), KeepChildren: true,
			After: []string{"scheduler"}, Args: append([]string{
				"-cacert", c.caCert(), "-cert", c.roleCert(cert),
				"-server", c.Host, "-port", sp,
				"-network=" + strconv.FormatBool(network), "-osprepare=false",
				"-state-dir", d + "/instances", "-uuid-dir", d + "/uuid",
				"-lock-file", d + "/lock", "-maintenance-file", d + "/maintenance",
				"-image-dir", d + "/images",
				// A dev machine is shared with builds: admit while 1 GB
				// of disk and 256 MB of memory stay free.
				"-disk-low-water", "1000", "-disk-high-water", "2000",
				"-mem-low-water", "256", "-mem-high-water", "512",
				"-stats-interval", "2s", "-accel", c.Accel}, append(netArgs, glog...)...)}
	}
	webui := Daemon{Name: "webui", Path: c.Bin("ciao-webui"), After: []string{"controller"}, Args: append([]string{
		"-listen", net.JoinHostPort(c.listenHost(), strconv.Itoa(c.WebUIPort)),
		"-cert", c.httpsCert(), "-key", c.httpsKey(),
		"-controller", c.APIURL(), "-controller-cacert", c.httpsCert()}, glog...)}
	return []Daemon{sched, ctl, launcher(ComputeNode, "agent"), launcher(NetworkNode, "netagent"), webui}
}
