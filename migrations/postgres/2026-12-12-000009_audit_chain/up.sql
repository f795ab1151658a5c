-- NEN 7513 audit trail: the organisation the actor acted for, the patients the access
-- concerned, and the hash chain that makes an edited or deleted row detectable.
ALTER TABLE audit_events ADD COLUMN organization TEXT;
-- The patients concerned, `Patient/<id>` separated by spaces, sorted (NULL: none).
ALTER TABLE audit_events ADD COLUMN patients TEXT;
-- Position in the hash chain, set by the sealer (NULL until sealed). The chain runs in
-- sealing order, which is commit order: a row committed late is chained when it is
-- visible, never skipped.
ALTER TABLE audit_events ADD COLUMN chain_pos BIGINT;
-- SHA-256 (hex) of the previous chained row, and of this row's fields plus prev_hash.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_pos);
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE hash IS NULL;
CREATE INDEX audit_events_actor ON audit_events (actor, seq);

-- AuditEvent?patient=: one row per patient an audit row concerns (its `patients`).
CREATE TABLE audit_event_patients (
    patient TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (patient, seq)
);

-- The chain's head: the last sealed position and its hash. Sealers lock this row, so
-- one at a time extends the chain (several instances on one PostgreSQL).
CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chain (id, position, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
