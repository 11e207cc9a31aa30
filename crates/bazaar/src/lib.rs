//! The Bazaar command line as a library: `bazaar up` runs the whole fleet on
//! one machine, `bazaar serve SERVICE` runs one service (what a container
//! runs), `bazaar bench` measures the fleet. `main.rs` only parses and
//! dispatches, so the system tests can share the service registry and the
//! `/proc` helpers with the binary they drive.

pub mod bench;
pub mod bench_catalog;
pub mod bench_checkout;
pub mod bench_gateway;
pub mod bench_storefront;
pub mod cli;
pub mod deploy;
pub mod load;
pub mod probe;
pub mod procfs;
pub mod registry;
pub mod seed;
pub mod serve;
pub mod up;
