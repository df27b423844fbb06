-- 0006: workloads created through the workloads API (controller.md §14)
-- keep the disks of their definition: a JSON list of
-- {"source_type","source_id","size","bootable","ephemeral"} objects,
-- '' when the workload has none (every workload of the CSV files).
ALTER TABLE workloads ADD COLUMN storage TEXT NOT NULL DEFAULT '';
