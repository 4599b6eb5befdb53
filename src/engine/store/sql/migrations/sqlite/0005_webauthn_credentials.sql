-- Issue 20, passkeys (WebAuthn Level 3, https://www.w3.org/TR/webauthn-3/). One row per
-- registered public key credential: the raw credential id (base64url, §5.1 rawId), its
-- COSE public key (§6.5.1.1), the last signature counter seen (§6.1.1: a counter that does
-- not grow is a cloned authenticator's), the transports the browser reported, the
-- authenticator model (AAGUID), and the name the user gave it. A user has any number.
CREATE TABLE webauthn_credentials (
    realm          TEXT NOT NULL,
    credential_id  TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    public_key     BLOB NOT NULL,
    sign_count     INTEGER NOT NULL DEFAULT 0,
    transports     TEXT NOT NULL DEFAULT '',
    aaguid         TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT,
    PRIMARY KEY (realm, credential_id)
);
CREATE INDEX webauthn_credentials_user_idx ON webauthn_credentials (realm, user_id);
