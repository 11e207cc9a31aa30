-- Stock per product and the reservations orders hold on it. Ids are UUID
-- text; instants are unix milliseconds, compared as numbers; flags are 0/1.

CREATE TABLE stock (
    product_id   TEXT PRIMARY KEY,
    -- The seller who owns the product: the only one who may set on_hand.
    seller_id    TEXT NOT NULL,
    on_hand      BIGINT NOT NULL CHECK (on_hand >= 0),
    -- Held by reservations; available = on_hand - reserved, never negative.
    reserved     BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    -- 1 once inventory.stock.low was announced, 0 again when back at or
    -- above the threshold: one event per crossing.
    low_notified BIGINT NOT NULL DEFAULT 0,
    -- 1 once the product was deleted in the catalog; kept for the
    -- reservations that still name it, and so a late "created" cannot
    -- bring it back.
    deleted      BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE reservations (
    order_id   TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES stock (product_id),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    -- Every row of one order has the same state.
    state      TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released', 'expired')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
-- The sweeper looks for held reservations past their expiry.
CREATE INDEX reservations_held ON reservations (state, expires_at);
