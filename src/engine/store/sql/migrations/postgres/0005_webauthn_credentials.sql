-- Issue 20, passkeys (WebAuthn Level 3, https://www.w3.org/TR/webauthn-3/). One row per
-- registered public key credential: the raw credential id (base64url, §5.1 rawId), its
-- COSE public key (§6.5.1.1), the last signature counter seen (§6.1.1: a counter that does
-- not grow is a cloned authenticator's), the transports the browser reported, the
-- authenticator model (AAGUID), and the name the user gave it. A user has any number.
CREATE TABLE webauthn_credentials (
    realm          text NOT NULL,
    credential_id  text NOT NULL,
    user_id        text NOT NULL,
    public_key     bytea NOT NULL,
    sign_count     bigint NOT NULL DEFAULT 0,
    transports     text NOT NULL DEFAULT '',
    aaguid         text NOT NULL DEFAULT '',
    name           text NOT NULL,
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    PRIMARY KEY (realm, credential_id)
);
CREATE INDEX webauthn_credentials_user_idx ON webauthn_credentials (realm, user_id);
