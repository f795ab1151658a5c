-- Idempotent writes: the response to a write that carried X-Request-Id, replayed when
-- the same request arrives again (kept for the configured retention time).
CREATE TABLE request_records (
    request_id TEXT PRIMARY KEY,
    -- sha256 of method, URL and body: a retry must be the identical request
    fingerprint TEXT NOT NULL,
    -- the stored response (status, headers, body) as JSON
    reply TEXT NOT NULL,
    -- microseconds since the Unix epoch
    recorded BIGINT NOT NULL
);
CREATE INDEX request_records_recorded ON request_records (recorded);
