package api

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/testutil"
)

// TestUsageOfDeletedInstance: on the SQLite store, an instance created
// and deleted (the launcher confirmed) still has its hours in `usage
// show` for a period it ran in, as terminated with ended_at; a running
// one next to it keeps its state; tenant B's member cannot read A's.
func TestUsageOfDeletedInstance(t *testing.T) {
	store, err := datastore.OpenSQLite(context.Background(), datastore.NewConfig(filepath.Join(t.TempDir(), "db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnvStore(t, store)
	before := time.Now().UTC().Add(-time.Minute)
	cr := e.create(t, tenantA, "tokA", 2)
	gone, kept := cr.Servers[0].ID, cr.Servers[1].ID
	e.create(t, tenantB, "tokB", 1)
	e.activate(t, gone, kept)
	e.expect(t, "DELETE", "/v2.1/"+tenantA+"/servers/"+gone, "tokA", "", 204)
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		_, err := store.Instance(context.Background(), gone)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deleted server still in the store")
		}
		time.Sleep(5 * time.Millisecond) // poll: the fake launcher confirms with InstanceDeleted
	}
	after := time.Now().UTC().Add(time.Minute)
	period := "start=" + url.QueryEscape(before.Format(usageTime)) + "&end=" + url.QueryEscape(after.Format(usageTime))

	var one struct {
		Usage tenantUsage `json:"tenant_usage"`
	}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage/"+tenantA+"?"+period, "tokA", "", 200), &one)
	u := one.Usage
	if len(u.ServerUsages) != 2 || u.TotalHours <= 0 || u.TotalVCPUs != 2*u.TotalHours || u.TotalMemoryMB != 128*u.TotalHours {
		t.Fatalf("usage %+v", u)
	}
	var ended time.Time
	for _, su := range u.ServerUsages {
		switch su.InstanceID {
		case gone:
			if su.State != "terminated" || su.EndedAt == nil || su.Hours <= 0 || su.VCPUs != 2 {
				t.Errorf("deleted server usage %+v", su)
			}
			if ended, err = time.Parse(usageTime, *su.EndedAt); err != nil || ended.Before(before) || ended.After(after) {
				t.Fatalf("ended_at %q: %v", *su.EndedAt, err)
			}
		case kept:
			if su.State != "active" || su.EndedAt != nil {
				t.Errorf("running server usage %+v", su)
			}
		default:
			t.Errorf("unexpected server usage %+v", su)
		}
	}
	// A period from just after the deletion has only the running server.
	from := ended.Add(time.Microsecond)
	later := "start=" + url.QueryEscape(from.Format(usageTime)) + "&end=" + url.QueryEscape(from.Add(time.Hour).Format(usageTime))
	one.Usage = tenantUsage{}
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage/"+tenantA+"?"+later, "tokA", "", 200), &one)
	if len(one.Usage.ServerUsages) != 1 || one.Usage.ServerUsages[0].InstanceID != kept {
		t.Errorf("later period %+v", one.Usage)
	}

	checkMemberBUsage(t, e, period)
	// The admin's list has A with the deleted server.
	var list usageList
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantA+"/os-simple-tenant-usage?detailed=1&"+period, "admin", "", 200), &list)
	if len(list.Usages) != 2 || list.Usages[0].TenantID > list.Usages[1].TenantID {
		t.Fatalf("admin's list %+v", list.Usages)
	}
	for _, tu := range list.Usages {
		if tu.TenantID == tenantA && len(tu.ServerUsages) != 2 {
			t.Errorf("admin's list, A: %+v", tu)
		}
	}
}

// usageList is the body of GET os-simple-tenant-usage.
type usageList struct {
	Usages []tenantUsage `json:"tenant_usages"`
}

// checkMemberBUsage checks what tenant B's member gets over period: A's
// usage refused, and a list of B only, with its one server.
func checkMemberBUsage(t *testing.T, e *env, period string) {
	t.Helper()
	e.expect(t, "GET", "/v2.1/"+tenantB+"/os-simple-tenant-usage/"+tenantA+"?"+period, "tokB", "", 403)
	var list usageList
	decodeJSON(t, e.expect(t, "GET", "/v2.1/"+tenantB+"/os-simple-tenant-usage?detailed=1&"+period, "tokB", "", 200), &list)
	if len(list.Usages) != 1 || list.Usages[0].TenantID != tenantB || len(list.Usages[0].ServerUsages) != 1 {
		t.Errorf("B's list %+v", list.Usages)
	}
}
