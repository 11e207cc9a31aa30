-- Notifications' own data: the feed of each user, what it needs to know to
-- write it (users, follows, product titles: its own copies, fed by events)
-- and the e-mails to send. Ids are UUID text; instants are unix
-- milliseconds; flags are 0/1.

-- Who can be notified, from identity.user.registered: the e-mail address
-- and the name to greet.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    registered_at BIGINT NOT NULL
);

-- The follow graph, from identity.seller.followed|unfollowed. An unfollow
-- keeps its row (following = 0), and changed_at is the time of the event
-- that set it, so an older event delivered late changes nothing.
CREATE TABLE follows (
    seller_id   TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    following   BIGINT NOT NULL,
    changed_at  BIGINT NOT NULL,
    PRIMARY KEY (seller_id, follower_id)
);
CREATE INDEX follows_of_follower ON follows (follower_id);

-- Products as catalog announced them: for the titles in stock warnings, and
-- so a follow that arrives after a product it predates still notifies.
CREATE TABLE products (
    product_id   TEXT PRIMARY KEY,
    seller_id    TEXT NOT NULL,
    title        TEXT NOT NULL,
    price_amount BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    -- The catalog.product.created event and its time.
    event_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX products_of_seller ON products (seller_id, created_at);

-- The newest notification id of each user. Taking this row (a write) is
-- what orders the user's notifications: ids only grow, in commit order, so
-- "everything after id X" is a complete answer to a reconnecting stream.
CREATE TABLE feed_heads (
    user_id TEXT PRIMARY KEY,
    last_id TEXT NOT NULL
);

CREATE TABLE notifications (
    -- UUIDv7, increasing per user in commit order; the SSE event id.
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('welcome', 'order_confirmed', 'order_cancelled', 'stock_low', 'new_product')),
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    link            TEXT NOT NULL,
    is_read         BIGINT NOT NULL DEFAULT 0,
    -- The event it was made from: one notification per event and user,
    -- whatever the broker redelivers.
    source_event_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (source_event_id, user_id)
);
CREATE INDEX notifications_feed ON notifications (user_id, id);

-- E-mails to send, recorded in the transaction of their notification and
-- sent by the mail worker. The id names the message (Message-ID, file name).
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL UNIQUE REFERENCES notifications (id),
    user_id         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    -- Not before this instant (backoff after a failure).
    next_attempt_at BIGINT NOT NULL,
    -- A worker holds it until this instant; another may take it after.
    claimed_until   BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
