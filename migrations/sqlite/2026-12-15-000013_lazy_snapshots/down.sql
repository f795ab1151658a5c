ALTER TABLE search_snapshots DROP COLUMN as_of;
