-- 0004: the store serves instance lists and tenant usage from memory
-- (sqlite_state.go), so the instance indexes only cost every create a
-- B-tree insert each, and usage is summed from the instances at open.
DROP INDEX IF EXISTS instances_tenant;
DROP INDEX IF EXISTS instances_node;
DROP INDEX IF EXISTS instances_workload;
DROP TABLE IF EXISTS tenant_usage;
