DROP TABLE audit_events;
DROP TABLE search_token;
DROP TABLE resource_versions;
DROP TABLE resources;
