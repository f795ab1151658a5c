-- The change feed's clock: one row, updated by every write transaction just before its
-- first version is written. The update takes SQLite's writer lock (PostgreSQL: the row
-- lock) until commit, so versions get `last_updated` (and `seq`) in commit order: a
-- change committed after a poller read position P always gets a position above P.
CREATE TABLE change_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- microseconds since the Unix epoch: the last timestamp handed out
    last_at BIGINT NOT NULL
);
INSERT INTO change_clock (id, last_at)
    SELECT 1, COALESCE(MAX(last_updated), 0) FROM resource_versions;

-- Read audit records that waited in the journal file while a long write held SQLite's
-- writer lock: the batches already moved into audit_events (a batch is moved once,
-- also when the process stopped between the insert and removing the file).
CREATE TABLE audit_journal_batches (
    batch_id TEXT PRIMARY KEY,
    moved BIGINT NOT NULL
);

-- Who made a search snapshot: its later pages are for that principal only (another
-- would learn how many matches the first one saw).
ALTER TABLE search_snapshots ADD COLUMN owner TEXT;
