//! The runtime every Bazaar service shares: one port serving HTTP (axum) and
//! gRPC (tonic), health, readiness and metrics, typed config, telemetry,
//! problem+json errors, the service's own database, resilient outbound
//! clients, background tasks and graceful shutdown. It knows no service by
//! name.

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod events;
pub mod listen;
pub mod metrics;
pub mod probe;
pub mod problem;
pub mod ready;
pub mod server;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;

pub use bazaar_bus::{backoff, clock};
pub use config::Config;
pub use problem::{Json, Problem};
pub use server::{Context, Routes, Server, Service, serve};
pub use tasks::{Shutdown, Tasks};
