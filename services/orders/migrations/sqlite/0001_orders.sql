-- Orders, their lines and timeline, the saga's state and lease, and the
-- card an order still has to authorize. Ids are UUID text; instants are
-- unix milliseconds, compared as numbers; flags are 0/1.

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    -- The client's Idempotency-Key, unique per user, and a digest of the
    -- request it came with (no card number in it), to tell a retry from
    -- another request under the same key.
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    -- The saga's next step (or its end): written before that step is taken.
    stage           TEXT NOT NULL CHECK (stage IN ('pricing', 'reserving', 'authorizing',
                        'committing', 'capturing', 'compensating', 'confirmed', 'cancelled')),
    -- 1 when the items were read from the cart (cleared after confirmation).
    from_cart       BIGINT NOT NULL,
    -- Set once priced.
    currency        TEXT,
    total           BIGINT,
    -- All the order keeps of the card.
    card_last4      TEXT NOT NULL,
    ship_name        TEXT NOT NULL,
    ship_line1       TEXT NOT NULL,
    ship_city        TEXT NOT NULL,
    ship_postal_code TEXT NOT NULL,
    ship_country     TEXT NOT NULL,
    -- Set when the saga decides to cancel.
    cancel_code     TEXT,
    cancel_reason   TEXT,
    -- Compensations still to do, in this order: void, then release.
    undo_void       BIGINT NOT NULL DEFAULT 0,
    undo_release    BIGINT NOT NULL DEFAULT 0,
    -- Which process drives the saga, until when (renewed while it runs).
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    UNIQUE (user_id, idempotency_key)
);
-- A user's orders, newest first.
CREATE INDEX orders_by_user ON orders (user_id, created_at);
-- The poller looks for pending orders whose lease expired.
CREATE INDEX orders_pending ON orders (status, lease_until);

CREATE TABLE order_lines (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    position    BIGINT NOT NULL,
    product_id  TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    -- Set once priced.
    title       TEXT,
    seller_id   TEXT,
    unit_amount BIGINT,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE order_timeline (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    step     TEXT NOT NULL,
    detail   TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- The card of an order that has not been authorized yet: deleted in the
-- transaction that records Authorize's answer or the order's cancellation.
CREATE TABLE order_cards (
    order_id  TEXT PRIMARY KEY REFERENCES orders (id),
    number    TEXT NOT NULL,
    exp_month BIGINT NOT NULL,
    exp_year  BIGINT NOT NULL,
    cvc       TEXT NOT NULL
);
