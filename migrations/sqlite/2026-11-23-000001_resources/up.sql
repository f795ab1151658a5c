-- Current state of each resource; the body lives in resource_versions.
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    -- microseconds since the Unix epoch, UTC
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_type, id)
);

-- Every version ever written (history). `seq` orders all writes for history paging.
CREATE TABLE resource_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    -- POST, PUT or DELETE
    method TEXT NOT NULL,
    -- the stored JSON (client's body + server id/meta); NULL for a delete
    body TEXT,
    UNIQUE (resource_type, id, version_id)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);
CREATE INDEX resource_versions_updated ON resource_versions (last_updated);

-- Token search index for the current version of each resource.
CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT,
    code TEXT NOT NULL
);
CREATE INDEX search_token_lookup ON search_token (resource_type, param, code, system);
CREATE INDEX search_token_owner ON search_token (resource_type, id);

-- Audit trail (NEN 7513): who touched which resource, when, how.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- C R U D E (FHIR AuditEvent.action)
    action TEXT NOT NULL,
    interaction TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    version_id BIGINT,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id);
CREATE INDEX audit_events_recorded ON audit_events (recorded);
