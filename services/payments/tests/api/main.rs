//! Service tests of payments: the real service on port 0 over a real socket,
//! with a real identity beside it for tokens, against SQLite always and
//! PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set. One binary for
//! all of them.

mod support;

mod calls;
mod cards;
mod concurrency;
mod events;
mod faults;
mod rest;
mod secrecy;
