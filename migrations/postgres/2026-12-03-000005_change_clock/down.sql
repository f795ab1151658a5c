DROP TABLE audit_journal_batches;
DROP TABLE change_clock;
