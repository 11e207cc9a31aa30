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
    -- A stable rowid (VACUUM may renumber an implicit one), which the
    -- full-text index refers to.
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    seller_id    TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount > 0),
    currency     TEXT NOT NULL,
    category     TEXT NOT NULL REFERENCES categories (slug),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT
);
-- Listings: newest first (UUIDv7 ids sort by creation), optionally by
-- category or seller; only live products.
CREATE INDEX products_live ON products (id) WHERE deleted_at IS NULL;
CREATE INDEX products_live_category ON products (category, id) WHERE deleted_at IS NULL;
CREATE INDEX products_live_seller ON products (seller_id, id) WHERE deleted_at IS NULL;

-- Full-text index over title and description, an external-content table
-- kept in step with `products` by the triggers below.
CREATE VIRTUAL TABLE products_fts USING fts5(
    title, description, content = 'products', content_rowid = 'seq'
);
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, title, description)
    VALUES (new.seq, new.title, new.description);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, title, description)
    VALUES ('delete', old.seq, old.title, old.description);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF title, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, title, description)
    VALUES ('delete', old.seq, old.title, old.description);
    INSERT INTO products_fts (rowid, title, description)
    VALUES (new.seq, new.title, new.description);
END;
