-- 0003: image metadata (ciao-controller/internal/images). The image data
-- lives on disk as <image-dir>/<id>; owner is a tenant id, not a foreign
-- key, so images survive tenant bookkeeping.
CREATE TABLE images (
	id               TEXT PRIMARY KEY,
	name             TEXT NOT NULL DEFAULT '',
	status           TEXT NOT NULL,
	disk_format      TEXT NOT NULL DEFAULT '',
	container_format TEXT NOT NULL DEFAULT '',
	size             INTEGER NOT NULL DEFAULT -1, -- -1 = no data yet
	checksum         TEXT NOT NULL DEFAULT '',    -- md5 hex
	hash_algo        TEXT NOT NULL DEFAULT '',
	hash_value       TEXT NOT NULL DEFAULT '',
	visibility       TEXT NOT NULL,
	owner            TEXT NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
);
