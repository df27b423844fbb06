-- 0009: each instance's lifetime, kept after the instance is deleted, so
-- os-simple-tenant-usage bills a past period from what ran in it
-- (lifetimes.go). Written with the instance row (CreateInstances) and
-- closed with its removal (DeleteInstance); rows whose deleted_at is older
-- than the controller's -usage-retention are pruned.
-- Keyed by tenant and creation so a tenant's period is one range of the
-- table and an insert touches one b-tree (no secondary index on the
-- create path); DeleteInstance knows all three key columns.
CREATE TABLE instance_lifetimes (
	tenant_id   TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	instance_id TEXT NOT NULL,
	workload_id TEXT NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	vcpus       INTEGER NOT NULL DEFAULT 0,
	mem_mb      INTEGER NOT NULL DEFAULT 0,
	disk_mb     INTEGER NOT NULL DEFAULT 0,
	deleted_at  INTEGER, -- NULL while the instance exists
	PRIMARY KEY (tenant_id, created_at, instance_id)
) WITHOUT ROWID;
-- Only ended lifetimes are in it (for pruning); inserts do not touch it.
CREATE INDEX instance_lifetimes_deleted ON instance_lifetimes(deleted_at) WHERE deleted_at IS NOT NULL;

-- Instances that exist at upgrade time start their lifetime at creation.
INSERT INTO instance_lifetimes (instance_id, tenant_id, workload_id, name, vcpus, mem_mb, disk_mb, created_at)
	SELECT id, tenant_id, workload_id, name,
		COALESCE(json_extract(usage, '$.vcpus'), 0),
		COALESCE(json_extract(usage, '$.mem_mb'), 0),
		COALESCE(json_extract(usage, '$.disk_mb'), 0),
		created_at
	FROM instances;
