-- Tessera durable schema, SQLite. Times are ISO-8601 UTC text with microseconds and a Z
-- ('2025-01-31T12:00:00.000000Z'), so text order is time order. JSON columns are text.

CREATE TABLE users (
    realm          TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    email          TEXT,
    email_lower    TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    profile        TEXT    NOT NULL DEFAULT '{}',
    created_at     TEXT    NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (realm, id),
    CHECK ((email IS NULL) = (email_lower IS NULL))
);
CREATE UNIQUE INDEX users_realm_email_lower_key ON users (realm, email_lower);

CREATE TABLE credentials (
    realm       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (realm, user_id, kind)
);

CREATE TABLE external_identities (
    realm       TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    email       TEXT,
    claims      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    PRIMARY KEY (realm, issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (realm, user_id);

CREATE TABLE refresh_families (
    realm          TEXT NOT NULL,
    id             TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    scope          TEXT NOT NULL,
    session_id     TEXT,
    auth_time      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT,
    data           TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (realm, id)
);
CREATE INDEX refresh_families_live_user_idx
    ON refresh_families (realm, user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_families_live_session_idx
    ON refresh_families (realm, session_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    realm       TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    family_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    replaced_by TEXT,
    replaced_at TEXT,
    PRIMARY KEY (realm, token_hash),
    FOREIGN KEY (realm, family_id) REFERENCES refresh_families (realm, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (realm, family_id);

CREATE TABLE consents (
    realm      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (realm, user_id, client_id)
);

CREATE TABLE signing_keys (
    realm        TEXT NOT NULL,
    kid          TEXT NOT NULL,
    alg          TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('next', 'active', 'retiring', 'retired')),
    public_jwk   TEXT NOT NULL,
    private_jwk  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    activated_at TEXT,
    retire_after TEXT,
    PRIMARY KEY (realm, kid)
);

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    realm     TEXT NOT NULL,
    type      TEXT NOT NULL,
    at        TEXT NOT NULL,
    user_id   TEXT,
    client_id TEXT,
    ip        TEXT,
    data      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_realm_at_idx ON audit_events (realm, at, id);
