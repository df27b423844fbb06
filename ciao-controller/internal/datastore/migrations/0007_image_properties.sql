-- 0007: images keep their additional properties (OpenStack custom
-- metadata, `openstack image set --property k=v`) as a JSON object.
ALTER TABLE images ADD COLUMN properties TEXT NOT NULL DEFAULT '{}';
