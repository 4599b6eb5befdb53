-- Issue 20, second factors (engine.accounts.mfa). A user's TOTP secret (RFC 6238),
-- encrypted under the key-encryption key (AES-256-GCM, realm and user bound as associated
-- data), and the last time step a code was accepted for (each code is accepted once).
CREATE TABLE mfa_totp (
    realm       text NOT NULL,
    user_id     text NOT NULL,
    secret      bytea NOT NULL,
    last_step   bigint,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (realm, user_id)
);

-- Recovery codes: SHA-256 hex of each unused code; a used code is deleted.
CREATE TABLE mfa_recovery_codes (
    realm       text NOT NULL,
    user_id     text NOT NULL,
    code_hash   text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (realm, user_id, code_hash)
);
