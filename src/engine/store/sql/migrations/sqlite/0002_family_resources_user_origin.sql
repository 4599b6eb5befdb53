-- Issue 23. A refresh family remembers the resources (RFC 8707 audiences) it was granted,
-- as a JSON list; NULL for families made before this migration (they keep what they got
-- before: the client's audiences at each refresh).
ALTER TABLE refresh_families ADD COLUMN resources TEXT;

-- Accounts made through /register (self-registration), so that those never verified can
-- be removed after `lifetimes.unverified_account`; operator-made and federated ones are 0.
ALTER TABLE users ADD COLUMN self_registered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_unverified_idx ON users (realm, created_at)
    WHERE self_registered = 1 AND email_verified = 0;
-- Removing a user removes its families, revoked ones too (the live-only index cannot serve that).
CREATE INDEX refresh_families_user_idx ON refresh_families (realm, user_id);
