//! Service tests of catalog: the real service on port 0 over a real socket,
//! with a real identity beside it for tokens, against SQLite always and
//! PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set. One binary.

mod support;

mod grpc;
mod products;
mod search;
