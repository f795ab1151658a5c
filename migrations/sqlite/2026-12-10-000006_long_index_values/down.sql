DROP INDEX search_string_lookup;
CREATE INDEX search_string_lookup ON search_string (resource_type, param, value_norm);
