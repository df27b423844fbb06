-- 0008: a DELETE asked for an instance is recorded until the instance is
-- removed (its node confirmed, or said it has no such instance), so that
-- a restarted controller re-sends it (controller/deleting.go).
CREATE TABLE instance_deletions (
	instance_id  TEXT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
	requested_at INTEGER NOT NULL
) WITHOUT ROWID;
