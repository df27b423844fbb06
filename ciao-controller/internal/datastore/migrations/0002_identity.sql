-- 0002: the controller's built-in identity (Keystone v3 subset). Times are
-- Unix nanoseconds (UTC). Passwords are bcrypt hashes; tokens are kept only
-- as the hex SHA-256 of the opaque id handed to the client.
CREATE TABLE identity_projects (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	domain_id   TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	enabled     INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	UNIQUE (domain_id, name)
);
CREATE TABLE identity_users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	domain_id     TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	enabled       INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	UNIQUE (domain_id, name)
);
CREATE TABLE identity_role_assignments (
	user_id    TEXT NOT NULL REFERENCES identity_users(id) ON DELETE CASCADE,
	project_id TEXT NOT NULL REFERENCES identity_projects(id) ON DELETE CASCADE,
	role       TEXT NOT NULL,
	PRIMARY KEY (user_id, project_id, role)
) WITHOUT ROWID;
CREATE INDEX identity_role_assignments_project ON identity_role_assignments(project_id);
CREATE TABLE identity_tokens (
	hash       TEXT PRIMARY KEY, -- hex SHA-256 of the token id
	user_id    TEXT NOT NULL REFERENCES identity_users(id) ON DELETE CASCADE,
	project_id TEXT NOT NULL DEFAULT '', -- '' = unscoped
	methods    TEXT NOT NULL, -- comma separated
	audit_id   TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX identity_tokens_expiry ON identity_tokens(expires_at);
