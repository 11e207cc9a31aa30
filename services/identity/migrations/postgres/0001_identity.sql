-- Users, their refresh tokens and whom they follow. Ids are UUIDv7 text;
-- creation times RFC 3339 text; token instants unix seconds, compared as
-- numbers.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    -- Normalised (trimmed, lower-case) before it gets here, so a plain
    -- unique index makes addresses unique however they were typed.
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'seller', 'admin')),
    -- PHC string: algorithm, parameters, salt and hash.
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    -- The chain of tokens started by one sign-in; revoked as a whole.
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token, hex; the token itself is never stored.
    token_hash TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_expiry ON refresh_tokens (user_id, expires_at);

CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seller_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (follower_id, seller_id),
    CHECK (follower_id <> seller_id)
);
-- A seller's followers, for whoever will notify them.
CREATE INDEX follows_seller ON follows (seller_id);
