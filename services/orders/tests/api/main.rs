//! Service tests of orders: the real service on port 0 over a real socket,
//! with every service it calls running beside it for real (identity,
//! catalog, inventory, cart, payments), against SQLite always and
//! PostgreSQL too (orders' own database) when `BAZAAR_TEST_POSTGRES_URL`
//! is set. One binary for all of them.

mod support;

mod admin;
mod checkout;
mod failures;
mod recovery;
mod requests;
