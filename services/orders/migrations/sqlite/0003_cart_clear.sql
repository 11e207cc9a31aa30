-- A confirmed order of the cart whose lines still have to leave the cart:
-- when the next attempt is due (ms since the epoch), NULL once done. Set in
-- the transaction that confirms the order, so a crash right after cannot
-- leave the cart as it was; the poller retries what is due.
ALTER TABLE orders ADD COLUMN cart_clear_at BIGINT;
CREATE INDEX orders_cart_clear ON orders (cart_clear_at) WHERE cart_clear_at IS NOT NULL;
