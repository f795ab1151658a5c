-- Notifications (R4 Subscriptions Backport): the transactional outbox.
--
-- subscription_state: one row per stored Subscription, kept by the after-write hook in
-- the transaction that writes the Subscription, plus its delivery state (written by the
-- delivery worker). Endpoint, payload and headers are read from the Subscription itself.
CREATE TABLE subscription_state (
    id TEXT PRIMARY KEY,
    -- the topic's canonical URL and the resource type it is about
    topic TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    -- the backport-filter-criteria as one query string ('' = none)
    filter_query TEXT NOT NULL,
    -- requested | active | error | off (Subscription.status)
    status TEXT NOT NULL,
    -- the last event number handed out (events-since-subscription-start)
    events_since_start BIGINT NOT NULL DEFAULT 0,
    -- every event up to this number was delivered (acknowledged with 2xx)
    delivered_through BIGINT NOT NULL DEFAULT 0,
    -- microseconds since the Unix epoch: no attempt before this
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    -- failed attempts since the last success, and when the first of them failed
    attempts INTEGER NOT NULL DEFAULT 0,
    failing_since BIGINT,
    last_error TEXT,
    -- backport-heartbeat-period in seconds (NULL: no heartbeats)
    heartbeat_period BIGINT,
    -- when anything (handshake, heartbeat, events) was last delivered
    last_sent_at BIGINT NOT NULL DEFAULT 0,
    -- the instance delivering it now, until when (a crashed instance's lease expires)
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- HMAC-SHA256 signing secret (never in the stored Subscription)
    secret TEXT
);
CREATE INDEX subscription_state_due ON subscription_state (status, next_attempt_at);

-- One row per (subscription, event): written in the transaction of the change that
-- causes it, so a committed change always has its events and a rolled-back one none.
CREATE TABLE subscription_events (
    subscription_id TEXT NOT NULL,
    event_number BIGINT NOT NULL,
    -- the focus version's commit stamp (microseconds)
    at BIGINT NOT NULL,
    focus_type TEXT NOT NULL,
    focus_id TEXT NOT NULL,
    focus_version BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, event_number)
);
