-- The search index for the current version of each resource, one table per search
-- parameter type, written in the same transaction as the version (deleted resources
-- have no rows). `search_token` (from the first migration) keeps its layout.
CREATE INDEX search_token_system ON search_token (resource_type, param, system);
-- _lastUpdated criteria and sorting (polling: `Task?_lastUpdated=gt...`).
CREATE INDEX resources_type_updated ON resources (resource_type, last_updated);

-- string: `value_norm` is lower case without accents (default "starts with" and
-- :contains); `value_exact` is the value as sent (:exact).
CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    value_norm TEXT NOT NULL,
    value_exact TEXT NOT NULL
);
CREATE INDEX search_string_lookup ON search_string (resource_type, param, value_norm);
CREATE INDEX search_string_owner ON search_string (resource_type, id);

-- reference: a literal local reference (target_type/target_id), an absolute URL
-- (url), and/or a logical reference (Reference.identifier: ident_system/ident_value).
CREATE TABLE search_reference (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    url TEXT,
    ident_system TEXT,
    ident_value TEXT
);
CREATE INDEX search_reference_target ON search_reference (resource_type, param, target_id, target_type);
CREATE INDEX search_reference_ident ON search_reference (resource_type, param, ident_value);
CREATE INDEX search_reference_url ON search_reference (resource_type, param, url);
CREATE INDEX search_reference_owner ON search_reference (resource_type, id);

-- date: the value as a range of microseconds since the Unix epoch (UTC), both ends
-- inclusive: `2026-11` is 2026-11-01T00:00:00Z .. 2026-11-30T23:59:59.999999Z.
CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    low BIGINT NOT NULL,
    high BIGINT NOT NULL
);
CREATE INDEX search_date_low ON search_date (resource_type, param, low);
CREATE INDEX search_date_high ON search_date (resource_type, param, high);
CREATE INDEX search_date_owner ON search_date (resource_type, id);

-- Search snapshots: the ordered matches of a search, so paging links neither skip nor
-- repeat entries while writes happen. Expired (1 hour) snapshots are deleted lazily.
CREATE TABLE search_snapshots (
    search_id TEXT PRIMARY KEY,
    resource_type TEXT NOT NULL,
    -- the canonical query (search and result parameters) the pages repeat
    query TEXT NOT NULL,
    -- matches held (at most the cap); total as reported on the first page, if any
    size BIGINT NOT NULL,
    total BIGINT,
    created BIGINT NOT NULL
);
CREATE INDEX search_snapshots_created ON search_snapshots (created);

CREATE TABLE search_snapshot_entries (
    search_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (search_id, position)
);
