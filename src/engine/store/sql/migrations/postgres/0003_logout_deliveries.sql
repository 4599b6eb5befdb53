-- Issue 19, OIDC Back-Channel Logout 1.0. Which clients (with a backchannel_logout_uri)
-- got tokens in which browser session: recorded when the code is exchanged, taken when
-- the session (or every session of the user) ends.
CREATE TABLE session_clients (
    realm       text NOT NULL,
    session_id  text NOT NULL,
    client_id   text NOT NULL,
    user_id     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (realm, session_id, client_id)
);
CREATE INDEX session_clients_user_idx ON session_clients (realm, user_id);
CREATE INDEX session_clients_created_idx ON session_clients (created_at);

-- Logout tokens to deliver, at least once: a row is claimed by moving `next_at` past a
-- lease, deleted once delivered (or given up), moved to the next retry otherwise.
CREATE TABLE logout_deliveries (
    id          text PRIMARY KEY,
    realm       text NOT NULL,
    client_id   text NOT NULL,
    subject     text NOT NULL,
    session_id  text,
    created_at  timestamptz NOT NULL,
    next_at     timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX logout_deliveries_due_idx ON logout_deliveries (next_at);
