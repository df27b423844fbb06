// Package datastore holds everything ciao-controller remembers: tenants
// with their limits, usage and CNCI, workloads, instances, the private
// addresses allocated in each tenant's /24 subnets, node and instance
// statistics, the event log and trace reports.
//
// Policy code talks to the Store interface only, so another engine (for
// example a replicated one) can be added without touching it. Two
// implementations live here:
//
//   - OpenSQLite: the production store, one SQLite file on disk (see
//     sqlite.go for the durability choices and the schema migrations).
//   - NewMemory: maps behind one mutex, for policy unit tests.
//
// Both pass the same conformance suite (conformance_test.go). Both also
// implement IdentityStore (identity.go), the users, projects, role
// assignments and hashed tokens of the built-in identity service
// (migration 0002, identity_test.go).
//
// Rules every implementation keeps:
//
//   - CreateInstances is all-or-nothing: the admission check, the address
//     allocation, the instance rows and the tenant usage change commit
//     together or not at all (spec §4.5 Q4 recommendation).
//   - Addresses follow spec §4.9 with the recommended fixes: only hosts in
//     use count, hosts are .2–.254, a /24 belongs to one tenant only, and
//     the claimed set is rebuilt from storage (it is storage).
//   - Usage is kept exact: it always equals the sum over the tenant's
//     instances of their usage maps (instances = count).
//   - Lists are sorted by id; events and trace frames in insertion order.
//
// Errors wrap the sentinels below with the step that failed.
package datastore

import (
	"context"
	"time"
)

// Store is the controller's datastore. All methods are safe for
// concurrent use.
type Store interface {
	// Tenants.
	CreateTenant(ctx context.Context, t Tenant) error                       // ErrExists
	EnsureTenant(ctx context.Context, t Tenant) (Tenant, bool, error)       // create on first use; true if created
	Tenant(ctx context.Context, id string) (Tenant, error)                  // ErrNotFound
	Tenants(ctx context.Context) ([]Tenant, error)                          // sorted by id
	DeleteTenant(ctx context.Context, id string) error                      // ErrInUse while it has instances
	SetLimit(ctx context.Context, tenantID, resource string, max int) error // upsert; -1 removes the limit
	Quotas(ctx context.Context, tenantID string) ([]Quota, error)           // Resources order, then extra names

	// Workloads.
	CreateWorkload(ctx context.Context, w Workload) error // ErrExists
	Workload(ctx context.Context, id string) (Workload, error)
	Workloads(ctx context.Context, f WorkloadFilter) ([]Workload, error)
	DeleteWorkload(ctx context.Context, id string) error // ErrInUse while instances use it

	// Instances.
	CreateInstances(ctx context.Context, reqs []InstanceRequest) ([]Instance, error) // all-or-nothing; ErrQuota, ErrNoAddress
	Instance(ctx context.Context, id string) (Instance, error)
	Instances(ctx context.Context, q InstanceQuery) (InstancePage, error)
	UpdateInstances(ctx context.Context, ups []InstanceUpdate) (int, error) // unknown ids skipped; returns rows changed
	DeleteInstance(ctx context.Context, id string) (Instance, error)        // releases address and usage
	MarkDeleting(ctx context.Context, id string, t time.Time) error         // sets Deleting until DeleteInstance (deletions.go)

	// Instance lifetimes, kept after deletion for usage (lifetimes.go).
	Lifetimes(ctx context.Context, tenantID string, start, end time.Time) ([]Lifetime, error) // overlapping [start, end); "" = all tenants
	PruneLifetimes(ctx context.Context, cutoff time.Time) (int, error)                        // drops those ended before cutoff

	// Addresses.
	AllocateAddress(ctx context.Context, tenantID string) (Address, error) // not tied to an instance
	ReleaseAddress(ctx context.Context, tenantID, ip string) error
	Addresses(ctx context.Context, tenantID string) ([]Address, error) // sorted by IP
	Subnets(ctx context.Context, tenantID string) ([]string, error)    // CIDRs, ascending

	// CNCIs (one per tenant).
	PutCNCI(ctx context.Context, c CNCI) error // create or replace the tenant's CNCI
	CNCI(ctx context.Context, tenantID string) (CNCI, error)
	CNCIs(ctx context.Context) ([]CNCI, error) // sorted by tenant
	DeleteCNCI(ctx context.Context, tenantID string) error

	// Statistics.
	RecordStats(ctx context.Context, r StatsReport) error // one STATS: latest + history + instance state
	Nodes(ctx context.Context) ([]NodeStats, error)       // latest per node, sorted by id
	Node(ctx context.Context, nodeID string) (NodeStats, error)
	DeleteNode(ctx context.Context, nodeID string) error // drops latest node stats (NodeDisconnected)
	NodeHistory(ctx context.Context, nodeID string, limit int) ([]NodeStats, error)
	InstanceStats(ctx context.Context, instanceID string) (InstanceStats, error)                      // latest
	NodeInstanceStats(ctx context.Context, nodeID string) ([]InstanceStats, error)                    // latest entries on a node, by id
	InstanceHistory(ctx context.Context, instanceID string, since time.Time) ([]InstanceStats, error) // oldest first

	// Events.
	AddEvent(ctx context.Context, e Event) (Event, error)         // stamps ID and Time (if zero)
	Events(ctx context.Context, tenantID string) ([]Event, error) // "" = all; insertion order
	ClearEvents(ctx context.Context) error

	// Traces.
	AddTraces(ctx context.Context, frames []TraceFrame) error
	TraceSummaries(ctx context.Context) ([]TraceSummary, error) // sorted by label
	TraceFrames(ctx context.Context, label string) ([]TraceFrame, error)

	// Close releases the store. Methods fail after Close.
	Close() error
}

// History retention: statistics older than this (relative to the newest
// report) are pruned.
const (
	DefaultNodeHistory     = 15 * time.Minute // short node history
	DefaultInstanceHistory = 2 * time.Hour    // enough for usage charts
	DefaultStatsRefresh    = time.Minute      // rewrite of unchanged instance statistics
)
