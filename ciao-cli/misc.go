package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

func workloadCommand() command {
	return command{name: "workload", subs: []subcommand{
		{name: "list", desc: "List all workloads", setup: workloadList, data: `[]client.Flavor:

	ID, Name, Disk (the image UUID), Swap string; RAM, Vcpus, OSFLVEXTDATAEphemeral int
	OSFLVDISABLEDDisabled, OsFlavorAccessIsPublic bool; Links []any

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`},
		workloadCreateSub(), workloadShowSub(), workloadDeleteSub(), // workload.go
	}}
}

func workloadList(fs *flag.FlagSet) func(context.Context, *app) error {
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		t, err := a.tenant(ctx)
		if err != nil {
			return err
		}
		fl, err := a.api.ListFlavors(ctx, t)
		if err != nil {
			return err
		}
		if fl == nil {
			fl = []client.Flavor{}
		}
		if done, err := o.custom(a.stdout, fl); done {
			return err
		}
		for i, f := range fl {
			fmt.Fprintf(a.stdout, "Workload %d\n\tName: %s\n\tUUID:%s\n\tImage UUID: %s\n\tCPUs: %d\n\tMemory: %d MB\n",
				i+1, f.Name, f.ID, f.Disk, f.Vcpus, f.RAM)
		}
		return nil
	}
}

func eventCommand() command {
	return command{name: "event", subs: []subcommand{
		{name: "list", desc: "List prints a list of events found in the ciao cluster", setup: eventList, data: `[]client.Event:

	Timestamp time.Time; TenantID, EventType, Message string

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`},
		{name: "delete", desc: "Deletes all events (admin)", setup: eventDelete},
	}}
}

func eventDelete(*flag.FlagSet) func(context.Context, *app) error {
	return func(ctx context.Context, a *app) error {
		if err := a.api.DeleteEvents(ctx); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Deleted all event logs")
		return nil
	}
}

func eventList(fs *flag.FlagSet) func(context.Context, *app) error {
	all := fs.Bool("all", false, "List events for all tenants in a cluster (admin)")
	tenant := fs.String("tenant-id", "", "Tenant ID (default: the current tenant)")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		t := ""
		if !*all {
			t = *tenant
			if t == "" {
				var err error
				if t, err = a.tenant(ctx); err != nil {
					return err
				}
			}
		}
		evs, err := a.api.ListEvents(ctx, t)
		if err != nil {
			return err
		}
		if evs == nil {
			evs = []client.Event{}
		}
		if done, err := o.custom(a.stdout, evs); done {
			return err
		}
		fmt.Fprintf(a.stdout, "%d Ciao event(s):\n", len(evs))
		for i, e := range evs {
			fmt.Fprintf(a.stdout, "\t[%d] %v: %s:%s (Tenant %s)\n", i+1, e.Timestamp, e.EventType, e.Message, e.TenantID)
		}
		return nil
	}
}

func tenantCommand() command {
	return command{name: "tenant", subs: []subcommand{
		{name: "list", desc: "List tenants for the current user", setup: tenantList, data: `[]client.Tenant {ID, Name string}; with -quotas a client.Quotas:

	ID string; Timestamp time.Time; InstanceLimit, InstanceUsage, VCPULimit,
	VCPUUsage, MemLimit, MemUsage, DiskLimit, DiskUsage int (-1 = unlimited)

with -resources a []client.Usage {VCPU, Memory, Disk int; Timestamp time.Time}

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`},
	}}
}

// tenantList lists the user's projects (identity login), every tenant
// the controller knows (-all, admin; also the default with a static
// token), the current tenant's quotas (-quotas) or its usage over the
// last 15 minutes (-resources). The first of -all, -quotas, -resources
// given wins, as in 2016.
func tenantList(fs *flag.FlagSet) func(context.Context, *app) error {
	all := fs.Bool("all", false, "List all tenants the controller knows (admin)")
	quotas := fs.Bool("quotas", false, "List quotas and usage of the current tenant")
	resources := fs.Bool("resources", false, "List the current tenant's usage over the last 15 minutes")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		ks, identity := a.tokens.(*client.Keystone)
		switch {
		case *all:
		case *quotas:
			return tenantQuotas(ctx, a, o)
		case *resources:
			return tenantResources(ctx, a, o)
		case identity:
			ps, err := ks.Projects(ctx)
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []client.Tenant{}
			}
			if done, err := o.custom(a.stdout, ps); done {
				return err
			}
			fmt.Fprintf(a.stdout, "Projects for user %s\n", a.cfg.Username)
			for _, p := range ps {
				fmt.Fprintf(a.stdout, "\tUUID: %s\n\tName: %s\n", p.ID, p.Name)
			}
			return nil
		}
		ts, err := a.api.ListTenants(ctx)
		if err != nil {
			return err
		}
		if ts == nil {
			ts = []client.Tenant{}
		}
		if done, err := o.custom(a.stdout, ts); done {
			return err
		}
		for i, t := range ts {
			fmt.Fprintf(a.stdout, "Tenant [%d]\n\tUUID: %s\n\tName: %s\n", i+1, t.ID, t.Name)
		}
		return nil
	}
}

func tenantQuotas(ctx context.Context, a *app, o output) error {
	t, err := a.tenant(ctx)
	if err != nil {
		return err
	}
	q, err := a.api.Quotas(ctx, t)
	if err != nil {
		return err
	}
	if done, err := o.custom(a.stdout, q); done {
		if err == nil && o.format != "" {
			fmt.Fprintln(a.stdout)
		}
		return err
	}
	fmt.Fprintf(a.stdout, "Quotas for tenant %s:\n\tInstances: %d | %s\n\tCPUs:      %d | %s\n\tMemory:    %d | %s\n\tDisk:      %d | %s\n",
		q.ID, q.InstanceUsage, limit(q.InstanceLimit), q.VCPUUsage, limit(q.VCPULimit),
		q.MemUsage, limit(q.MemLimit), q.DiskUsage, limit(q.DiskLimit))
	return nil
}

func tenantResources(ctx context.Context, a *app, o output) error {
	t, err := a.tenant(ctx)
	if err != nil {
		return err
	}
	end := time.Now()
	us, err := a.api.Resources(ctx, t, end.Add(-15*time.Minute), end.Add(time.Second))
	if err != nil {
		return err
	}
	if us == nil {
		us = []client.Usage{}
	}
	if done, err := o.custom(a.stdout, us); done {
		return err
	}
	if len(us) == 0 {
		fmt.Fprintf(a.stdout, "No usage history for %s\n", t)
		return nil
	}
	fmt.Fprintf(a.stdout, "Usage for tenant %s:\n", t)
	for _, u := range us {
		fmt.Fprintf(a.stdout, "\t%v: [%d CPUs] [%d MB memory] [%d MB disk]\n", u.Timestamp, u.VCPU, u.Memory, u.Disk)
	}
	return nil
}

func limit(n int) string {
	if n == -1 {
		return "Unlimited"
	}
	return strconv.Itoa(n)
}
