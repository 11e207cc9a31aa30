-- Orders' card payments and the money each moved. Ids are UUIDv7 text;
-- times RFC 3339 text; amounts integer minor units. No column holds more
-- of a card than its last four digits.

CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    -- The idempotency key of every call: one payment per order.
    order_id       TEXT NOT NULL UNIQUE,
    -- The buyer: the only one who may read the payment.
    user_id        TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL CHECK (length(currency) = 3),
    state          TEXT NOT NULL
                   CHECK (state IN ('authorized', 'captured', 'voided', 'refunded', 'declined')),
    decline_reason TEXT
                   CHECK (decline_reason IN ('card_declined', 'insufficient_funds', 'invalid_card')),
    card_last4     TEXT NOT NULL CHECK (length(card_last4) = 4),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    -- A reason exactly when declined.
    CHECK ((state = 'declined') = (decline_reason IS NOT NULL))
);

-- Every movement of money, written in the transaction that changes the
-- payment's state.
CREATE TABLE ledger (
    id         TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    kind       TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'void', 'refund')),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    currency   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- Each kind at most once per payment: a second capture, void or refund
    -- cannot be written, whatever the code above does.
    UNIQUE (payment_id, kind)
);
