-- Values of any length are searchable (a 3,000-character name used to fail on
-- PostgreSQL: "index row size exceeds maximum"). Exact-match columns hold long values
-- as a prefix plus a SHA-256 (src/store/index.rs, `index_key`); the string lookup
-- index holds the first 128 characters of the normalised value, and every search
-- compares the whole value after narrowing on that prefix (src/store/search/filter.rs).
-- Data stored before this migration with values over 256 bytes: run `wor-hub reindex`.
DROP INDEX search_string_lookup;
CREATE INDEX search_string_lookup ON search_string (resource_type, param, substr(value_norm, 1, 128));
