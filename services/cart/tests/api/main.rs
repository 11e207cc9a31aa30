//! Service tests of the cart: the store contract run against every
//! adapter, and the real service on port 0 over a real socket (REST and
//! gRPC), with a real identity beside it for tokens. SQLite always;
//! PostgreSQL with `BAZAAR_TEST_POSTGRES_URL`, Redis with
//! `BAZAAR_TEST_REDIS_URL`. One binary for all of them.

mod support;

mod contract;
mod grpc;
mod rest;
