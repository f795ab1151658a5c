-- A snapshot of a search sorted by id is filled as its pages are read, not all at the
-- first page: `as_of` is the change clock the first page read, and later entries are
-- the matches (ordered by id, after the last entry held) that existed by then.
-- NULL: every entry was stored with the first page (a search with _sort).
ALTER TABLE search_snapshots ADD COLUMN as_of BIGINT;
