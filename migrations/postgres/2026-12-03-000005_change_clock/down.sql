ALTER TABLE search_snapshots DROP COLUMN owner;
DROP TABLE audit_journal_batches;
DROP TABLE change_clock;
