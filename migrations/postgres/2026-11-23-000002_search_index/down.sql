DROP TABLE search_snapshot_entries;
DROP TABLE search_snapshots;
DROP TABLE search_date;
DROP TABLE search_reference;
DROP TABLE search_string;
DROP INDEX search_token_system;
DROP INDEX resources_type_updated;
