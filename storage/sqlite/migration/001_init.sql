-- Times are INTEGER Unix nanoseconds (0 = unset): exact, ordered, cheap to compare.

CREATE TABLE tenants (
	id            TEXT PRIMARY KEY, -- lower-case GUID
	name          TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL,
	from_config   INTEGER NOT NULL DEFAULT 0,
	activated_at  INTEGER NOT NULL DEFAULT 0,
	watermark     INTEGER NOT NULL DEFAULT 0,
	auth_failures INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	last_success  INTEGER NOT NULL DEFAULT 0,
	next_attempt  INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL DEFAULT 0
);

-- A customer channel is linked to exactly one tenant.
CREATE TABLE links (
	channel     TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id),
	from_config INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX links_tenant ON links (tenant_id);

CREATE TABLE alerts (
	tenant_id        TEXT NOT NULL REFERENCES tenants (id),
	id               TEXT NOT NULL, -- exact, case-sensitive (BINARY collation)
	title            TEXT NOT NULL DEFAULT '',
	description      TEXT NOT NULL DEFAULT '',
	severity         INTEGER NOT NULL DEFAULT 0,
	status           TEXT NOT NULL DEFAULT '',
	classification   TEXT NOT NULL DEFAULT '',
	determination    TEXT NOT NULL DEFAULT '',
	assigned_to      TEXT NOT NULL DEFAULT '',
	category         TEXT NOT NULL DEFAULT '',
	detection_source TEXT NOT NULL DEFAULT '',
	service_source   TEXT NOT NULL DEFAULT '',
	device_name      TEXT NOT NULL DEFAULT '',
	device_id        TEXT NOT NULL DEFAULT '',
	device_group     TEXT NOT NULL DEFAULT '',
	user_name        TEXT NOT NULL DEFAULT '',
	incident_id      TEXT NOT NULL DEFAULT '',
	incident_url     TEXT NOT NULL DEFAULT '',
	mitre            TEXT, -- JSON array, NULL when empty
	evidence         TEXT, -- JSON array, NULL when empty
	portal_url       TEXT NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL DEFAULT 0,
	last_updated_at  INTEGER NOT NULL DEFAULT 0,
	resolved_at      INTEGER NOT NULL DEFAULT 0,
	raw              BLOB,
	PRIMARY KEY (tenant_id, id)
);
-- `alerts`: one tenant, by status, newest first.
CREATE INDEX alerts_list ON alerts (tenant_id, status, created_at);
-- Purge; partial so that ingest of open alerts does not maintain it.
CREATE INDEX alerts_resolved ON alerts (last_updated_at) WHERE status = 'Resolved';

CREATE TABLE rules (
	id           INTEGER PRIMARY KEY,
	channel      TEXT NOT NULL,
	min_severity INTEGER NOT NULL DEFAULT 0,
	category     TEXT NOT NULL DEFAULT '',
	source       TEXT NOT NULL DEFAULT '',
	grp          TEXT NOT NULL DEFAULT '',
	title        TEXT NOT NULL DEFAULT '',
	tenant_id    TEXT NOT NULL DEFAULT '',
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rules_channel ON rules (channel);

CREATE TABLE deliveries (
	-- AUTOINCREMENT: an id is never reused after a purge, since the delivery
	-- key derived from it finds a card on the platform after a crash.
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	kind       TEXT NOT NULL,
	channel    TEXT NOT NULL,
	tenant_id  TEXT NOT NULL DEFAULT '',
	alert_id   TEXT,    -- NULL unless kind = 'alert', so the unique index ignores other kinds
	digest_id  INTEGER, -- a digest member: the digest's delivery id
	ref_id     TEXT NOT NULL DEFAULT '',
	payload    BLOB,
	message_id TEXT,    -- NULL until posted
	state      TEXT NOT NULL,
	error      TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL DEFAULT 0
);
-- One card per (alert, channel): the "never send twice" key.
CREATE UNIQUE INDEX deliveries_alert ON deliveries (tenant_id, alert_id, channel);
CREATE INDEX deliveries_message ON deliveries (channel, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX deliveries_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE outbox (
	id           INTEGER PRIMARY KEY,
	delivery_id  INTEGER NOT NULL REFERENCES deliveries (id),
	kind         TEXT NOT NULL,
	text         TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	pass_id      INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_delivery ON outbox (delivery_id);
CREATE INDEX outbox_due ON outbox (state, next_attempt);
CREATE INDEX outbox_held ON outbox (pass_id) WHERE state = 'held';

CREATE TABLE write_backs (
	id             INTEGER PRIMARY KEY,
	tenant_id      TEXT NOT NULL,
	alert_id       TEXT NOT NULL,
	kind           TEXT NOT NULL,
	status         TEXT NOT NULL DEFAULT '',
	assigned_to    TEXT NOT NULL DEFAULT '',
	classification TEXT NOT NULL DEFAULT '',
	determination  TEXT NOT NULL DEFAULT '',
	comment        TEXT NOT NULL DEFAULT '',
	actor          TEXT NOT NULL DEFAULT '',
	state          TEXT NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0,
	next_attempt   INTEGER NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX write_backs_due ON write_backs (state, next_attempt);
CREATE INDEX write_backs_tenant ON write_backs (tenant_id, state);

CREATE TABLE audit (
	id        INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	actor     TEXT NOT NULL DEFAULT '',
	identity  TEXT NOT NULL DEFAULT '',
	channel   TEXT NOT NULL DEFAULT '',
	tenant_id TEXT NOT NULL DEFAULT '',
	action    TEXT NOT NULL DEFAULT '',
	target    TEXT NOT NULL DEFAULT '',
	outcome   TEXT NOT NULL DEFAULT '',
	detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_tenant ON audit (tenant_id, time);
CREATE INDEX audit_channel ON audit (channel, time);
CREATE INDEX audit_time ON audit (time);

CREATE TABLE access_requests (
	id           INTEGER PRIMARY KEY,
	kind         TEXT NOT NULL,
	tenant_id    TEXT NOT NULL,
	tenant_name  TEXT NOT NULL DEFAULT '',
	channel      TEXT NOT NULL DEFAULT '',
	requested_by TEXT NOT NULL DEFAULT '',
	state_hash   TEXT, -- NULL for kinds without a consent state
	expires_at   INTEGER NOT NULL DEFAULT 0,
	outcome      TEXT NOT NULL,
	reason       TEXT NOT NULL DEFAULT '',
	prompt_id    INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL DEFAULT 0,
	closed_at    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX access_requests_state ON access_requests (state_hash) WHERE state_hash IS NOT NULL;
CREATE INDEX access_requests_open ON access_requests (tenant_id, kind) WHERE outcome = 'open';

CREATE TABLE channel_failures (
	channel TEXT PRIMARY KEY,
	reason  TEXT NOT NULL DEFAULT '',
	since   INTEGER NOT NULL
);
