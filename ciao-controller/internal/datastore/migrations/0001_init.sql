-- 0001: initial schema. Times are Unix nanoseconds (UTC), 0 = unset.
CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL DEFAULT '',
	cnci_mac   TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
CREATE TABLE limits (
	tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	resource  TEXT NOT NULL,
	max_value INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, resource)
) WITHOUT ROWID;
-- Running usage per tenant, changed in the same transaction as instances.
CREATE TABLE tenant_usage (
	tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	resource  TEXT NOT NULL,
	value     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, resource)
) WITHOUT ROWID;
CREATE TABLE workloads (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT REFERENCES tenants(id), -- NULL = public
	description TEXT NOT NULL,
	filename    TEXT NOT NULL,
	fw_type     TEXT NOT NULL,
	vm_type     TEXT NOT NULL,
	image_id    TEXT NOT NULL,
	image_name  TEXT NOT NULL,
	config      TEXT NOT NULL,
	internal    INTEGER NOT NULL
);
CREATE TABLE workload_resources (
	workload_id TEXT NOT NULL REFERENCES workloads(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,
	resource    TEXT NOT NULL,
	value       INTEGER NOT NULL,
	mandatory   INTEGER NOT NULL,
	PRIMARY KEY (workload_id, position)
) WITHOUT ROWID;
CREATE TABLE instances (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	workload_id TEXT NOT NULL REFERENCES workloads(id),
	state       TEXT NOT NULL,
	node_id     TEXT NOT NULL DEFAULT '',
	ip          TEXT NOT NULL DEFAULT '',
	mac         TEXT NOT NULL DEFAULT '',
	ssh_ip      TEXT NOT NULL DEFAULT '',
	ssh_port    INTEGER NOT NULL DEFAULT 0,
	usage       TEXT NOT NULL, -- JSON object resource → value
	created_at  INTEGER NOT NULL
);
CREATE INDEX instances_tenant ON instances(tenant_id, id);
CREATE INDEX instances_node ON instances(node_id, id);
CREATE INDEX instances_workload ON instances(workload_id, id);
-- A /24 belongs to one tenant (subnet = (2nd octet << 8) | 3rd octet).
CREATE TABLE subnets (
	subnet    INTEGER PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE INDEX subnets_tenant ON subnets(tenant_id, subnet);
CREATE TABLE addresses (
	subnet      INTEGER NOT NULL REFERENCES subnets(subnet) ON DELETE CASCADE,
	host        INTEGER NOT NULL CHECK (host BETWEEN 2 AND 254),
	tenant_id   TEXT NOT NULL,
	instance_id TEXT REFERENCES instances(id) ON DELETE CASCADE,
	PRIMARY KEY (subnet, host)
) WITHOUT ROWID;
CREATE INDEX addresses_tenant ON addresses(tenant_id);
CREATE UNIQUE INDEX addresses_instance ON addresses(instance_id);
CREATE TABLE cncis (
	tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
	id         TEXT NOT NULL,
	mac        TEXT NOT NULL,
	ip         TEXT NOT NULL,
	state      TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE node_latest (
	node_id           TEXT PRIMARY KEY,
	hostname          TEXT NOT NULL,
	status            TEXT NOT NULL,
	mem_total_mb      INTEGER NOT NULL,
	mem_available_mb  INTEGER NOT NULL,
	disk_total_mb     INTEGER NOT NULL,
	disk_available_mb INTEGER NOT NULL,
	load              INTEGER NOT NULL,
	cpus_online       INTEGER NOT NULL,
	time              INTEGER NOT NULL
);
CREATE TABLE node_statistics (
	id                INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id           TEXT NOT NULL,
	hostname          TEXT NOT NULL,
	status            TEXT NOT NULL,
	mem_total_mb      INTEGER NOT NULL,
	mem_available_mb  INTEGER NOT NULL,
	disk_total_mb     INTEGER NOT NULL,
	disk_available_mb INTEGER NOT NULL,
	load              INTEGER NOT NULL,
	cpus_online       INTEGER NOT NULL,
	time              INTEGER NOT NULL
);
CREATE INDEX node_statistics_node ON node_statistics(node_id, id);
CREATE INDEX node_statistics_time ON node_statistics(time);
CREATE TABLE instance_latest (
	instance_id     TEXT PRIMARY KEY,
	node_id         TEXT NOT NULL,
	state           TEXT NOT NULL,
	ssh_ip          TEXT NOT NULL,
	ssh_port        INTEGER NOT NULL,
	memory_usage_mb INTEGER NOT NULL,
	disk_usage_mb   INTEGER NOT NULL,
	cpu_usage       INTEGER NOT NULL,
	time            INTEGER NOT NULL
);
CREATE INDEX instance_latest_node ON instance_latest(node_id, instance_id);
CREATE TABLE instance_statistics (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	instance_id     TEXT NOT NULL,
	node_id         TEXT NOT NULL,
	state           TEXT NOT NULL,
	ssh_ip          TEXT NOT NULL,
	ssh_port        INTEGER NOT NULL,
	memory_usage_mb INTEGER NOT NULL,
	disk_usage_mb   INTEGER NOT NULL,
	cpu_usage       INTEGER NOT NULL,
	time            INTEGER NOT NULL
);
CREATE INDEX instance_statistics_instance ON instance_statistics(instance_id, id);
CREATE INDEX instance_statistics_time ON instance_statistics(time);
CREATE TABLE events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id TEXT NOT NULL,
	type      TEXT NOT NULL,
	message   TEXT NOT NULL,
	time      INTEGER NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, id);
CREATE TABLE trace_frames (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	label    TEXT NOT NULL,
	type     TEXT NOT NULL,
	operand  TEXT NOT NULL,
	start_ns INTEGER NOT NULL,
	end_ns   INTEGER NOT NULL
);
CREATE INDEX trace_frames_label ON trace_frames(label, id);
CREATE TABLE trace_hops (
	frame_id   INTEGER NOT NULL REFERENCES trace_frames(id) ON DELETE CASCADE,
	position   INTEGER NOT NULL,
	ssntp_uuid TEXT NOT NULL,
	role       TEXT NOT NULL,
	tx_ns      INTEGER NOT NULL,
	rx_ns      INTEGER NOT NULL,
	PRIMARY KEY (frame_id, position)
) WITHOUT ROWID;
