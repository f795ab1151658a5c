-- Client authentication (README "Authentication"): the clients an operator registered
-- (`wor-hub client add` or [[clients]] in the config file), the access tokens issued to
-- them (only their SHA-256, so a database dump holds no usable token) and the `jti` of
-- every client assertion used, until it expires (a replay is refused on every instance).
CREATE TABLE auth_clients (
    client_id TEXT PRIMARY KEY,
    -- referrer | performer | coordinator | monitor
    role TEXT NOT NULL,
    -- Organization/<id> the client acts for
    organization TEXT NOT NULL,
    -- allowed SMART system scopes, space separated
    scopes TEXT NOT NULL,
    -- the client's public keys, a JSON Web Key Set (private_key_jwt)
    jwks TEXT,
    -- argon2 PHC string of the client secret (client_secret_basic)
    secret_hash TEXT,
    -- microseconds since the Unix epoch
    created BIGINT NOT NULL
);

CREATE TABLE auth_tokens (
    -- hex SHA-256 of the opaque access token
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    -- granted scopes, space separated
    scopes TEXT NOT NULL,
    -- microseconds since the Unix epoch
    expires BIGINT NOT NULL
);
CREATE INDEX auth_tokens_client ON auth_tokens (client_id);
CREATE INDEX auth_tokens_expires ON auth_tokens (expires);

CREATE TABLE auth_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    -- microseconds since the Unix epoch: the assertion's exp (plus leeway)
    expires BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_jtis_expires ON auth_jtis (expires);
