-- Failed sign-ins per account ("account:<e-mail>") and per client address
-- ("address:<ip>"), counted in a window that starts at the first failure;
-- instants are unix seconds. Rows whose window passed are deleted as new
-- failures come in.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX login_failures_window ON login_failures (window_start);
