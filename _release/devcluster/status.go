package devcluster

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// DaemonPID is the pid of a running daemon of the cluster (0 if it is not
// running), from the supervisor's status file or from systemd.
func (c Config) DaemonPID(ctx context.Context, name string) (int, error) {
	m, err := c.LoadManifest()
	if err != nil {
		return 0, err
	}
	if m.Mode == "systemd" {
		out, err := exec.CommandContext(ctx, "systemctl", "show", "-p", "MainPID", "--value", "ciao-dev-"+name+".service").Output()
		if err != nil {
			return 0, fmt.Errorf("systemctl show %s: %w", name, err)
		}
		return strconv.Atoi(strings.TrimSpace(string(out)))
	}
	st, err := ReadStatus(c.Path("status.json"))
	if err != nil {
		return 0, err
	}
	ds, ok := st.Daemons[name]
	if !ok {
		return 0, fmt.Errorf("no daemon %q in %s", name, c.Path("status.json"))
	}
	return ds.PID, nil
}

// DaemonNames are the names of the cluster's daemons, in start order.
func DaemonNames() []string {
	return []string{"scheduler", "controller", "launcher-" + ComputeNode, "launcher-" + NetworkNode, "webui"}
}
