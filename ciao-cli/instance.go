package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

const serverData = `[]client.Server for list and add, client.Server for show
(instance list -cn: []client.NodeServer {ID, NodeID, Status, TenantID, IPv4 string;
Timestamp time.Time; VCPUUsage, MemUsage, DiskUsage int}):

	Addresses.Private []{Addr, OSEXTIPSMACMacAddr, OSEXTIPSType, Version}
	Created time.Time; Flavor.ID, Image.ID string; HostID (node) string
	ID, Name, Status, TenantID, SSHIP string; SSHPort int
	and the other OpenStack server fields (KeyName, AccessIPv4, Updated, ...)

Helpers: tojson <v>; filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp <slice> "<Field.Path>" "<value>" (keep the matching
elements); select <slice> "<Field>" (one line per element); head <slice> [n],
tail <slice> [n], rows <slice> <i>..., sort <slice> "<Field>" ["dsc"].
`

func instanceCommand() command {
	return command{name: "instance", subs: []subcommand{
		{name: "add", desc: "Launches a new instance", data: serverData, setup: instanceAdd},
		{name: "delete", desc: "Deletes a given instance", setup: instanceDelete},
		{name: "list", desc: "List instances for a tenant", data: serverData, setup: instanceList},
		{name: "show", desc: "Print detailed information about an instance", data: serverData, setup: instanceShow},
		{name: "restart", desc: "Restart a stopped Ciao instance", setup: func(fs *flag.FlagSet) func(context.Context, *app) error {
			return instanceAction(fs, "os-start", "restarted")
		}},
		{name: "stop", desc: "Stop a Ciao instance", setup: func(fs *flag.FlagSet) func(context.Context, *app) error {
			return instanceAction(fs, "os-stop", "stopped")
		}},
	}}
}

func instanceAdd(fs *flag.FlagSet) func(context.Context, *app) error {
	workload := fs.String("workload", "", "Workload UUID")
	n := fs.Int("instances", 1, "Number of instances to create")
	label := fs.String("label", "", "Set a frame label. This will trigger frame tracing")
	wait := fs.Bool("wait", false, "wait until every new instance is active or has failed")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long -wait waits")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *workload == "" {
			return &usageMsg{"missing required -workload parameter"}
		}
		if *wait && *timeout <= 0 {
			return &usageMsg{"-timeout must be positive"}
		}
		t, err := a.tenant(ctx)
		if err != nil {
			return err
		}
		servers, err := a.api.CreateServers(ctx, t, *workload, *n, *label)
		if err != nil {
			return err
		}
		human := o.format == "" && !o.json
		if human {
			for _, s := range servers {
				fmt.Fprintf(a.stdout, "Created new instance: %s\n", s.ID)
			}
		}
		if *wait {
			if servers, err = waitServers(ctx, a, t, servers, *timeout); err != nil {
				return err
			}
		}
		if human {
			return nil
		}
		_, err = o.custom(a.stdout, servers)
		return err
	}
}

// waitServers polls until every server is active or exited, showing
// progress on stderr: one rewritten line on a terminal, otherwise a line
// per change. It fails when an instance exited or vanished, or on timeout.
func waitServers(ctx context.Context, a *app, tenant string, servers []client.Server, timeout time.Duration) ([]client.Server, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tty := isTerminal(a.stderr)
	last := ""
	tick := time.NewTicker(a.poll)
	defer tick.Stop()
	for {
		var pending, active, failed []string
		for i, s := range servers {
			if s.Status != client.StateActive && s.Status != client.StateExited {
				ns, err := a.api.ShowServer(ctx, tenant, s.ID)
				var ae *client.APIError
				switch {
				case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
					ns = s
					ns.Status = "deleted"
				case err != nil && ctx.Err() == nil:
					return servers, fmt.Errorf("waiting for instances: %w", err)
				case err != nil:
					ns = s
				}
				servers[i] = ns
			}
			switch servers[i].Status {
			case client.StateActive:
				active = append(active, s.ID)
			case client.StateExited, "deleted":
				failed = append(failed, s.ID)
			default:
				pending = append(pending, s.ID)
			}
		}
		line := fmt.Sprintf("waiting for %d instance(s): %d active, %d failed, %d pending", len(servers), len(active), len(failed), len(pending))
		if tty {
			fmt.Fprintf(a.stderr, "\r%s", line)
		} else if line != last {
			fmt.Fprintln(a.stderr, line)
		}
		last = line
		if len(pending) == 0 {
			if tty {
				fmt.Fprintln(a.stderr)
			}
			if len(failed) > 0 {
				return servers, fmt.Errorf("%d of %d instance(s) failed to start (first: %s); see 'ciao-cli event list'", len(failed), len(servers), failed[0])
			}
			return servers, nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(a.stderr)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return servers, fmt.Errorf("timed out after %v with %d instance(s) still pending (first: %s); raise -timeout or check 'ciao-cli instance list'", timeout, len(pending), pending[0])
			}
			return servers, ctx.Err()
		case <-tick.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func instanceDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("instance", "", "Instance UUID")
	all := fs.Bool("all", false, "Delete all instances for the given tenant")
	return func(ctx context.Context, a *app) error {
		if !*all && *id == "" {
			return &usageMsg{"missing required -instance parameter (or -all)"}
		}
		t, err := a.tenant(ctx)
		if err != nil {
			return err
		}
		if *all {
			if err := deleteAll(ctx, a, t); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "os-delete all instances for tenant %s\n", t)
			return nil
		}
		if err := a.api.DeleteServer(ctx, t, *id); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Deleted instance: %s\n", *id)
		return nil
	}
}

// deleteAll uses the controller's os-delete action and, if the
// controller does not route it, deletes the instances one by one.
func deleteAll(ctx context.Context, a *app, tenant string) error {
	err := a.api.DeleteAllServers(ctx, tenant)
	var ae *client.APIError
	if err == nil || !errors.As(err, &ae) || (ae.Status != http.StatusNotFound && ae.Status != http.StatusMethodNotAllowed) {
		return err
	}
	servers, err := a.api.ListServers(ctx, tenant, client.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range servers {
		err := a.api.DeleteServer(ctx, tenant, s.ID)
		var de *client.APIError
		if err != nil && !(errors.As(err, &de) && de.Status == http.StatusNotFound) {
			return err
		}
	}
	return nil
}

func instanceAction(fs *flag.FlagSet, action, done string) func(context.Context, *app) error {
	id := fs.String("instance", "", "Instance UUID")
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -instance parameter"}
		}
		t, err := a.tenant(ctx)
		if err != nil {
			return err
		}
		if err := a.api.ServerAction(ctx, t, *id, action); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Instance %s %s\n", *id, done)
		return nil
	}
}

func instanceList(fs *flag.FlagSet) func(context.Context, *app) error {
	detail := fs.Bool("detail", false, "Print detailed information about each instance")
	tenant := fs.String("tenant", "", "Specify to list instances from a tenant other than -tenant-id")
	workload := fs.String("workload", "", "List the instances of this workload, all tenants (admin)")
	cn := fs.String("cn", "", "List the instances on this compute node, in the node format (admin; paging and -detail do not apply)")
	var lo client.ListOptions
	fs.StringVar(&lo.Marker, "marker", "", "Show instance list starting from the next instance after marker")
	fs.IntVar(&lo.Offset, "offset", 0, "Show instance list starting from instance <offset>")
	fs.IntVar(&lo.Limit, "limit", 0, "Limit list to <limit> results")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if lo.Offset < 0 || lo.Limit < 0 {
			return &usageMsg{"-offset and -limit must not be negative"}
		}
		if *cn != "" {
			return nodeInstances(ctx, a, o, *cn)
		}
		var servers []client.Server
		var err error
		if *workload != "" {
			servers, err = a.api.WorkloadServers(ctx, *workload, lo)
		} else {
			t := *tenant
			if t == "" {
				if t, err = a.tenant(ctx); err != nil {
					return err
				}
			}
			servers, err = a.api.ListServers(ctx, t, lo)
		}
		if err != nil {
			return err
		}
		if servers == nil {
			servers = []client.Server{}
		}
		if done, err := o.custom(a.stdout, servers); done {
			return err
		}
		if *detail {
			for i, s := range servers {
				fmt.Fprintf(a.stdout, "Instance #%d\n", i+1)
				writeInstance(a.stdout, s)
			}
			return nil
		}
		return table(a.stdout, []string{"#", "UUID", "Status", "Private IP", "SSH IP", "SSH PORT"}, instanceRows(servers))
	}
}

func instanceRows(servers []client.Server) [][]string {
	rows := make([][]string, 0, len(servers))
	for i, s := range servers {
		ip, _ := privateAddr(s)
		sshIP, sshPort := "N/A", "N/A"
		if s.SSHIP != "" {
			sshIP, sshPort = s.SSHIP, strconv.Itoa(s.SSHPort)
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), s.ID, s.Status, ip, sshIP, sshPort})
	}
	return rows
}

func privateAddr(s client.Server) (ip, mac string) {
	if len(s.Addresses.Private) > 0 {
		return s.Addresses.Private[0].Addr, s.Addresses.Private[0].OSEXTIPSMACMacAddr
	}
	return "", ""
}

// writeInstance prints the instance block of cli.md §6.4.
func writeInstance(w io.Writer, s client.Server) {
	ip, mac := privateAddr(s)
	fmt.Fprintf(w, "\tUUID: %s\n\tStatus: %s\n\tPrivate IP: %s\n\tMAC Address: %s\n\tCN UUID: %s\n\tImage UUID: %s\n\tTenant UUID: %s\n",
		s.ID, s.Status, ip, mac, s.HostID, s.Image.ID, s.TenantID)
	if s.SSHIP != "" {
		fmt.Fprintf(w, "\tSSH IP: %s\n\tSSH Port: %d\n", s.SSHIP, s.SSHPort)
	}
}

func instanceShow(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("instance", "", "Instance UUID")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -instance parameter"}
		}
		t, err := a.tenant(ctx)
		if err != nil {
			return err
		}
		s, err := a.api.ShowServer(ctx, t, *id)
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, s); done {
			return err
		}
		writeInstance(a.stdout, s)
		return nil
	}
}

// nodeInstances is instance list -cn: the node format of cli.md §6.4.
func nodeInstances(ctx context.Context, a *app, o output, node string) error {
	ns, err := a.api.NodeServers(ctx, node)
	if err != nil {
		return err
	}
	if ns == nil {
		ns = []client.NodeServer{}
	}
	if done, err := o.custom(a.stdout, ns); done {
		return err
	}
	for i, s := range ns {
		fmt.Fprintf(a.stdout, "Instance #%d\n\tUUID: %s\n\tStatus: %s\n\tTenant UUID: %s\n\tIPv4: %s\n\tCPUs used: %d\n\tMemory used: %d MB\n\tDisk used: %d MB\n",
			i+1, s.ID, s.Status, s.TenantID, s.IPv4, s.VCPUUsage, s.MemUsage, s.DiskUsage)
	}
	return nil
}
