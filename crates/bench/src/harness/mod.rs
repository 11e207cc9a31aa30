//! What the scenarios share: the fleet (started by the `bazaar` binary),
//! the processes a scenario starts, the load generator and its histogram,
//! `/proc` readings, the Prometheus and SSE readers, and report printing.

pub mod api;
pub mod fleet;
pub mod histogram;
pub mod load;
pub mod proc;
pub mod process;
pub mod prometheus;
pub mod report;
pub mod sse;
