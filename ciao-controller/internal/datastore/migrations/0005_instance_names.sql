-- 0005: instances keep the server name given at create (OpenStack
-- clients look servers up by name).
ALTER TABLE instances ADD COLUMN name TEXT NOT NULL DEFAULT '';
