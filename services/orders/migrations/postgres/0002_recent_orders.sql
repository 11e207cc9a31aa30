-- Every user's orders, newest first: what an admin's list reads
-- (GET /api/v1/orders?all=true), without sorting the whole table.
CREATE INDEX orders_recent ON orders (created_at, id);
