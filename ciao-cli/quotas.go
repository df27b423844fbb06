package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

const quotaData = `[]client.NamedQuota {Name, Value, Usage string} ("unlimited" = no limit)

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`

// quotasCommand is the 2017 quotas command (cli.md §10.4, §11).
func quotasCommand() command {
	return command{name: "quotas", subs: []subcommand{
		{name: "list", desc: "List a tenant's quotas and usage", data: quotaData, setup: quotasList},
		{name: "update", desc: "Set a tenant's quota (admin)", data: quotaData, setup: quotasUpdate},
	}}
}

func writeQuotas(a *app, tenant string, qs []client.NamedQuota) {
	fmt.Fprintf(a.stdout, "Quotas for tenant %s:\n", tenant)
	for _, q := range qs {
		fmt.Fprintf(a.stdout, "\t%s: %s of %s\n", q.Name, q.Usage, q.Value)
	}
}

func quotasList(fs *flag.FlagSet) func(context.Context, *app) error {
	forTenant := fs.String("for-tenant", "", "Tenant to list (default: the current tenant; another one needs admin)")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		t := *forTenant
		if t == "" {
			var err error
			if t, err = a.tenant(ctx); err != nil {
				return err
			}
		}
		qs, err := a.api.ListQuotas(ctx, t)
		if err != nil {
			return err
		}
		if qs == nil {
			qs = []client.NamedQuota{}
		}
		if done, err := o.custom(a.stdout, qs); done {
			return err
		}
		writeQuotas(a, t, qs)
		return nil
	}
}

func quotasUpdate(fs *flag.FlagSet) func(context.Context, *app) error {
	forTenant := fs.String("for-tenant", "", "Tenant whose quota to set (required)")
	name := fs.String("name", "", "Quota name: tenant-instances-quota, tenant-vcpu-quota, tenant-mem-quota (MB) or tenant-disk-quota (MB)")
	value := fs.String("value", "", "New limit: a count, or unlimited")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *forTenant == "" || *name == "" || *value == "" {
			return &usageMsg{"missing required -for-tenant, -name or -value parameter"}
		}
		qs, err := a.api.UpdateQuotas(ctx, *forTenant, []client.NamedQuota{{Name: *name, Value: *value}})
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, qs); done {
			return err
		}
		fmt.Fprintf(a.stdout, "Updated quota %s of tenant %s to %s\n", *name, *forTenant, *value)
		return nil
	}
}
