-- Who may read what (README "Security"): per organisation the resources it may read.
-- The application keeps these rows in the unit of work of every write they follow:
-- a referral's rows (anchor `ServiceRequest/<id>`) are recomputed whenever the
-- referral, one of its Tasks or a Consent of its patient changes; what a client
-- created is its organisation's (anchor '', relation `creator`) for good.
CREATE TABLE access_grants (
    -- `Organization/<id>`
    organization TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    -- the resource the row follows: `ServiceRequest/<id>`, or '' (created by)
    anchor TEXT NOT NULL,
    -- referrer | performer | creator: may read; withheld: the organisation works on
    -- the referral but no active Consent lets it read this resource (a Patient)
    relation TEXT NOT NULL,
    -- microseconds: the row grants only from / until then (a Consent's provision
    -- period); NULL: no bound
    valid_from BIGINT,
    valid_until BIGINT,
    PRIMARY KEY (organization, resource_type, resource_id, anchor, relation)
);
CREATE INDEX access_grants_anchor ON access_grants (anchor);
CREATE INDEX access_grants_resource ON access_grants (resource_type, resource_id);
