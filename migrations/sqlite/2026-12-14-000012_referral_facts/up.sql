-- The statistics projection (README "Statistics"): one row per referral, kept by the
-- after-write hook in the unit of work of every write to the referral's
-- ServiceRequest or Tasks, and rebuilt from the stored versions by
-- `wor-hub reports rebuild`. Codes, directory references, dates and numbers only:
-- never an identifier, name, address or free text of a patient.
CREATE TABLE referral_facts (
    -- the ServiceRequest id (never reported)
    referral TEXT NOT NULL,
    -- the routing reference date, YYYY-MM-DD
    referral_date TEXT NOT NULL,
    -- CBS municipality code, '' when routing found none
    municipality TEXT NOT NULL,
    -- Organization/<id> (or Practitioner/<id>) of the GP practice
    practice TEXT,
    -- under-18 or 18-plus
    age_group TEXT,
    -- Organization/<id> owning the latest Task
    organization TEXT,
    category TEXT NOT NULL,
    -- the latest Task's status (cancelled for a revoked referral)
    status TEXT NOT NULL,
    unroutable_reason TEXT,
    rejection_reason TEXT,
    -- 1 routed, 2 accepted, 4 re-routed, 8 feedback
    flags BIGINT NOT NULL,
    -- microseconds
    received_at BIGINT NOT NULL,
    contact_at BIGINT,
    intake_at BIGINT,
    completed_at BIGINT,
    -- Positive Health scores, first and last response: "4,5,6,7,8,9|6,6,7,8,8,9"
    health TEXT,
    -- A report reads one municipality's period: its rows lie together on disk.
    PRIMARY KEY (municipality, referral_date, referral)
) WITHOUT ROWID;
CREATE UNIQUE INDEX referral_facts_referral ON referral_facts (referral);
CREATE INDEX referral_facts_date ON referral_facts (referral_date);
