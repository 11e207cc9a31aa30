//! Service tests of notifications: the real service on port 0 over real
//! sockets, a real identity beside it for tokens, events published into
//! the real broker (the embedded log always, NATS JetStream too when
//! `BAZAAR_TEST_NATS_URL` is set), against SQLite always and PostgreSQL
//! too when `BAZAAR_TEST_POSTGRES_URL` is set. One binary for all of them.

mod support;

mod crash;
mod events;
mod feed;
mod mail;
mod stream;
