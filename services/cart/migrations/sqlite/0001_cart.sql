-- Carts: one row per user who has (or had) a cart, and its lines. Ids are
-- UUID text; instants are unix milliseconds.

CREATE TABLE carts (
    user_id       TEXT PRIMARY KEY,
    -- The position given to the cart's newest line. Every write that may
    -- add a line upserts this row first, which also serializes the writes
    -- to one cart (the 50-line limit is checked under that lock).
    last_position BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE cart_lines (
    user_id    TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    -- Lines are listed by position: the order they were first added in.
    position   BIGINT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
