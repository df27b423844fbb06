package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

const nodeData = `[]client.Node for -compute, []client.CNCI for -cnci:

	Node: ID, Hostname, Status string; Timestamp time.Time; MemTotal, MemAvailable,
	DiskTotal, DiskAvailable (MB), Load, OnlineCPUs, TotalInstances,
	TotalRunningInstances, TotalPendingInstances, TotalPausedInstances int
	CNCI: ID, TenantID, IPv4, Geography string; Subnets []{Subnet string}

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`

func nodeCommand() command {
	return command{name: "node", subs: []subcommand{
		{name: "list", desc: "List nodes (admin)", data: nodeData, setup: nodeList},
		{name: "status", desc: "Show cluster status (admin)", setup: nodeStatus, data: `client.ClusterStatus:

	TotalNodes, TotalNodesReady, TotalNodesFull, TotalNodesOffline,
	TotalNodesMaintenance int
`},
		{name: "evacuate", desc: "Evacuate a compute node: it deletes its instances and enters maintenance until its launcher is restarted with -restore (admin)", setup: nodeEvacuate},
		{name: "show", desc: "Show info about a node (admin)", setup: nodeShow, data: `client.CNCI with -cnci, else client.Node (see 'ciao-cli node list -help').
`},
	}}
}

func nodeList(fs *flag.FlagSet) func(context.Context, *app) error {
	compute := fs.Bool("compute", false, "List all compute nodes")
	cnci := fs.Bool("cnci", false, "List all CNCIs")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		switch {
		case *compute:
			ns, err := a.api.ListNodes(ctx)
			if err != nil {
				return err
			}
			if ns == nil {
				ns = []client.Node{}
			}
			if done, err := o.custom(a.stdout, ns); done {
				return err
			}
			for i, n := range ns {
				fmt.Fprintf(a.stdout, "Compute Node %d\n", i+1)
				writeNode(a.stdout, n)
			}
			return nil
		case *cnci:
			cs, err := a.api.ListCNCIs(ctx)
			if err != nil {
				return err
			}
			if cs == nil {
				cs = []client.CNCI{}
			}
			if done, err := o.custom(a.stdout, cs); done {
				return err
			}
			for i, c := range cs {
				fmt.Fprintf(a.stdout, "CNCI %d\n", i+1)
				writeCNCI(a.stdout, c)
			}
			return nil
		}
		return &usageMsg{"give -compute or -cnci"}
	}
}

func writeNode(w io.Writer, n client.Node) {
	fmt.Fprintf(w, "\tUUID: %s\n\tStatus: %s\n\tLoad: %d\n\tAvailable/Total memory: %d/%d MB\n\tAvailable/Total disk: %d/%d MB\n"+
		"\tTotal Instances: %d\n\t\tRunning Instances: %d\n\t\tPending Instances: %d\n\t\tPaused Instances: %d\n",
		n.ID, n.Status, n.Load, n.MemAvailable, n.MemTotal, n.DiskAvailable, n.DiskTotal,
		n.TotalInstances, n.TotalRunningInstances, n.TotalPendingInstances, n.TotalPausedInstances)
}

func writeCNCI(w io.Writer, c client.CNCI) {
	fmt.Fprintf(w, "\tCNCI UUID: %s\n\tTenant UUID: %s\n\tIPv4: %s\n\tSubnets:\n", c.ID, c.TenantID, c.IPv4)
	for _, s := range c.Subnets {
		fmt.Fprintf(w, "\t\t%s\n", s.Subnet)
	}
}

func nodeStatus(fs *flag.FlagSet) func(context.Context, *app) error {
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		c, err := a.api.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, c); done {
			return err
		}
		fmt.Fprintf(a.stdout, "Total Nodes %d\n\tReady %d\n\tFull %d\n\tOffline %d\n\tMaintenance %d\n",
			c.TotalNodes, c.TotalNodesReady, c.TotalNodesFull, c.TotalNodesOffline, c.TotalNodesMaintenance)
		return nil
	}
}

// nodeShow shows a CNCI (-cnci, as in 2016) or, without -cnci, a compute
// node (an addition: the 2016 command only showed CNCIs).
func nodeShow(fs *flag.FlagSet) func(context.Context, *app) error {
	cnci := fs.Bool("cnci", false, "Show a CNCI instead of a compute node")
	id := fs.String("node-id", "", "Node (or CNCI) UUID")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -node-id parameter"}
		}
		if *cnci {
			c, err := a.api.ShowCNCI(ctx, *id)
			if err != nil {
				return err
			}
			if done, err := o.custom(a.stdout, c); done {
				return err
			}
			writeCNCI(a.stdout, c)
			return nil
		}
		ns, err := a.api.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.ID == *id {
				if done, err := o.custom(a.stdout, n); done {
					return err
				}
				writeNode(a.stdout, n)
				return nil
			}
		}
		return fmt.Errorf("no compute node %s is reporting; 'ciao-cli node list -compute' lists them (use -cnci for a CNCI)", *id)
	}
}

func traceCommand() command {
	return command{name: "trace", subs: []subcommand{
		{name: "list", desc: "List all trace labels (admin)", setup: traceList, data: `[]client.TraceSummary {Label string; Instances int}
`},
		{name: "show", desc: "Dump all trace data for a given label (admin)", setup: traceShow, data: `client.TraceData (seconds):

	NumInstances int; TotalElapsed, AverageElapsed, AverageControllerElapsed,
	AverageLauncherElapsed, AverageSchedulerElapsed, VarianceController,
	VarianceLauncher, VarianceScheduler float64
`},
	}}
}

func traceList(fs *flag.FlagSet) func(context.Context, *app) error {
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		ts, err := a.api.ListTraces(ctx)
		if err != nil {
			return err
		}
		if ts == nil {
			ts = []client.TraceSummary{}
		}
		if done, err := o.custom(a.stdout, ts); done {
			return err
		}
		fmt.Fprintf(a.stdout, "%d trace label(s) available\n", len(ts))
		for i, t := range ts {
			fmt.Fprintf(a.stdout, "\tLabel #%d: %s (%d instances running)\n", i+1, t.Label, t.Instances)
		}
		return nil
	}
}

func traceShow(fs *flag.FlagSet) func(context.Context, *app) error {
	label := fs.String("label", "", "Label name")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *label == "" {
			return &usageMsg{"missing required -label parameter"}
		}
		d, err := a.api.ShowTrace(ctx, *label)
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, d); done {
			return err
		}
		fmt.Fprintf(a.stdout, "Trace data for [%s]:\n\tNumber of instances: %d\n"+
			"\tTotal time elapsed     : %f seconds\n\tAverage time elapsed   : %f seconds\n"+
			"\tAverage Controller time: %f seconds\n\tAverage Scheduler time : %f seconds\n"+
			"\tAverage Launcher time  : %f seconds\n\tController variance    : %f seconds²\n"+
			"\tScheduler variance     : %f seconds²\n\tLauncher variance      : %f seconds²\n",
			*label, d.NumInstances, d.TotalElapsed, d.AverageElapsed, d.AverageControllerElapsed,
			d.AverageSchedulerElapsed, d.AverageLauncherElapsed, d.VarianceController,
			d.VarianceScheduler, d.VarianceLauncher)
		return nil
	}
}

func nodeEvacuate(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("node-id", "", "Node UUID")
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -node-id parameter"}
		}
		if err := a.api.EvacuateNode(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Evacuating node %s\n", *id)
		return nil
	}
}
