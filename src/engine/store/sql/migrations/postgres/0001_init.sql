-- Tessera durable schema, PostgreSQL. Times are timestamptz (UTC, chosen by the app clock).
-- Secrets arrive hashed or encrypted; nothing here is a plaintext secret.

CREATE TABLE users (
    realm          text        NOT NULL,
    id             text        NOT NULL,
    email          text,
    email_lower    text,
    email_verified boolean     NOT NULL DEFAULT false,
    profile        jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL,
    disabled       boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (realm, id),
    CHECK ((email IS NULL) = (email_lower IS NULL))
);
CREATE UNIQUE INDEX users_realm_email_lower_key ON users (realm, email_lower);

CREATE TABLE credentials (
    realm       text        NOT NULL,
    user_id     text        NOT NULL,
    kind        text        NOT NULL,
    secret_hash text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (realm, user_id, kind)
);

CREATE TABLE external_identities (
    realm       text        NOT NULL,
    issuer      text        NOT NULL,
    subject     text        NOT NULL,
    provider_id text        NOT NULL,
    user_id     text        NOT NULL,
    email       text,
    claims      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (realm, issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (realm, user_id);

CREATE TABLE refresh_families (
    realm          text        NOT NULL,
    id             text        NOT NULL,
    client_id      text        NOT NULL,
    user_id        text        NOT NULL,
    scope          text        NOT NULL,
    session_id     text,
    auth_time      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    data           jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (realm, id)
);
CREATE INDEX refresh_families_live_user_idx
    ON refresh_families (realm, user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_families_live_session_idx
    ON refresh_families (realm, session_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    realm       text        NOT NULL,
    token_hash  text        NOT NULL,
    family_id   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    replaced_by text,
    replaced_at timestamptz,
    PRIMARY KEY (realm, token_hash),
    FOREIGN KEY (realm, family_id) REFERENCES refresh_families (realm, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (realm, family_id);

CREATE TABLE consents (
    realm      text        NOT NULL,
    user_id    text        NOT NULL,
    client_id  text        NOT NULL,
    scopes     text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (realm, user_id, client_id)
);

CREATE TABLE signing_keys (
    realm        text        NOT NULL,
    kid          text        NOT NULL,
    alg          text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('next', 'active', 'retiring', 'retired')),
    public_jwk   jsonb       NOT NULL,
    private_jwk  bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    activated_at timestamptz,
    retire_after timestamptz,
    PRIMARY KEY (realm, kid)
);

CREATE TABLE audit_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    realm     text        NOT NULL,
    type      text        NOT NULL,
    at        timestamptz NOT NULL,
    user_id   text,
    client_id text,
    ip        text,
    data      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_realm_at_idx ON audit_events (realm, at, id);
