-- Categories (a fixed list) and products. Ids are UUIDv7 text; times
-- RFC 3339 text. Deleted products stay as rows (deleted_at set) so orders
-- can tell "no longer on sale" from "never existed".

CREATE TABLE categories (
    slug     TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    position INTEGER NOT NULL
);
INSERT INTO categories (slug, name, position) VALUES
    ('electronics', 'Electronics', 1),
    ('books', 'Books', 2),
    ('home-kitchen', 'Home & Kitchen', 3),
    ('fashion', 'Fashion', 4),
    ('sports-outdoors', 'Sports & Outdoors', 5),
    ('toys-games', 'Toys & Games', 6),
    ('beauty-health', 'Beauty & Health', 7),
    ('garden-diy', 'Garden & DIY', 8);

CREATE TABLE products (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    seller_id    TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount > 0),
    currency     TEXT NOT NULL,
    category     TEXT NOT NULL REFERENCES categories (slug),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT,
    -- Full-text document: the title weighs more than the description.
    search       TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A')
        || setweight(to_tsvector('english', description), 'B')
    ) STORED
);
-- Listings: newest first (UUIDv7 ids sort by creation), optionally by
-- category or seller; only live products.
CREATE INDEX products_live ON products (id) WHERE deleted_at IS NULL;
CREATE INDEX products_live_category ON products (category, id) WHERE deleted_at IS NULL;
CREATE INDEX products_live_seller ON products (seller_id, id) WHERE deleted_at IS NULL;
CREATE INDEX products_search ON products USING GIN (search);
