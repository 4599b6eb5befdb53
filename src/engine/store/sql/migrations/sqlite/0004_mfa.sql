-- Issue 20, second factors (engine.accounts.mfa). A user's TOTP secret (RFC 6238),
-- encrypted under the key-encryption key (AES-256-GCM, realm and user bound as associated
-- data), and the last time step a code was accepted for (each code is accepted once).
CREATE TABLE mfa_totp (
    realm       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    secret      BLOB NOT NULL,
    last_step   INTEGER,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (realm, user_id)
);

-- Recovery codes: SHA-256 hex of each unused code; a used code is deleted.
CREATE TABLE mfa_recovery_codes (
    realm       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (realm, user_id, code_hash)
);
