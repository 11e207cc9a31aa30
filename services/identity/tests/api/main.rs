//! Service tests of identity: the real service on port 0 over a real
//! socket, against SQLite always and PostgreSQL too when
//! `BAZAAR_TEST_POSTGRES_URL` is set. One binary for all of them.

mod support;

mod accounts;
mod admin;
mod follows;
mod startup;
mod throttle;
mod tokens;
