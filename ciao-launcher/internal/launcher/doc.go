// Package launcher is the core of ciao-launcher, the agent that runs on
// every compute and network node: it connects to the scheduler over SSNTP
// (role AGENT and/or NETAGENT), runs the instances it is sent on a backend
// driver, reports the node and its instances, and re-adopts its instances
// when it restarts.
//
// # Goroutines and who owns what
//
//   - The SSNTP client's reading goroutine calls the notifier, which only
//     queues what arrives in an unbounded mailbox (it never blocks).
//   - The main loop (Launcher.loop) owns the instance table, the node's
//     resource accounting and the connection state. It parses commands,
//     answers those it can refuse at once (bad payload, unknown instance,
//     full node), hands the rest to the instances' mailboxes without ever
//     waiting for them, and sends READY/FULL/MAINTENANCE and STATS every
//     Config.StatsInterval while connected, followed by a TraceReport when
//     path-traced STARTs have succeeded since the last one (trace.go).
//   - One goroutine per instance (instance.run) owns that instance's state
//     file and driver handle for the instance's whole life in this launcher,
//     serialises the commands sent to it, polls it for exit and samples its
//     resources. It reports to the main loop over one channel, and sends its
//     own failure frames.
//
// # Two lifetimes
//
// Instances outlive the launcher. Cancelling Run's context stops the
// goroutines that watch instances, never the instances: a launcher that is
// stopped (or killed) and started again finds every instance directory under
// Config.StateDir and adopts what still runs. Only STOP, DELETE, EVACUATE
// and HardReset stop instances.
//
// # Tenant networking
//
// With Config.Network, an instance whose START has a networking section
// gets a VNIC on its tenant subnet's bridge (package networking) before its
// backend starts: a tap wired into QEMU for VMs, a veth otherwise. The
// first VNIC of a subnet on the node creates the subnet's tunnel to the
// tenant's CNCI and sends TenantAdded; the last one's removal sends
// TenantRemoved. Networking is set up on first use and rebuilt from the
// kernel's link aliases, so re-adoption finds the VNICs again. A network
// node given Config.CNCI.Agent runs CNCI STARTs (network_node 1) as network
// namespaces with a ciao-cnci-agent (driver kind cnci); otherwise CNCIs are
// VMs like any other instance.
//
// # Instance directory
//
// <StateDir>/<instance uuid>/state is JSON: the START payload as received and
// the driver's handle. A START creates it once (O_EXCL, no temporary file)
// before launching (no handle, not synced: it survives a killed launcher,
// not a power loss) and, once launched, rewrites it in place with the handle
// and syncs it, its directory and the state directory before the instance
// is reported active (state.go says why in place is safe there); a RESTART
// replaces it atomically (temporary file and rename) and durably. A
// DELETE first writes <StateDir>/<instance uuid>/deleting, durably: a
// launcher that finds it at start finishes the deletion instead of
// adopting the instance (state.go, deletingFileName). A deletion whose
// driver Delete fails while the instance may still run keeps the instance
// (and the mark) for the next DELETE or launcher start, so nothing is left
// running untracked. Drivers
// may keep files next to it (a process instance's stdout.log and
// stderr.log).
package launcher
