//! Outbound calls: deadline, retries, circuit breaker, concurrency limit, balancing.
//!
//! Every call a service makes to another goes through a [`Stack`]: it takes a
//! concurrency permit for the upstream (a bulkhead per upstream), picks an
//! instance from [`Endpoints`] by power of two choices among those whose
//! circuit breaker admits a call, bounds the attempt by what is left of the
//! deadline, and retries only when that cannot do a side effect twice and
//! the retry budget allows: at once on another instance, else after a
//! pause with full jitter. Consecutive failures eject an instance for a
//! growing interval; an active health check readmits it once it answers
//! ready. [`HttpClient`] and
//! [`GrpcClient`] are thin wrappers that classify HTTP statuses and gRPC codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bazaar_platform::client::CallError> {
//! use bazaar_platform::client::{Endpoints, HttpClient, Policy};
//! let urls = vec!["http://127.0.0.1:7001".parse().unwrap()];
//! let catalog = HttpClient::new(Endpoints::new("catalog", urls), Policy::default());
//! let response = catalog.get("/api/v1/products").await?;
//! # let _ = response; Ok(()) }
//! ```

mod breaker;
mod endpoints;
mod error;
mod grpc_client;
mod http_client;
mod policy;
mod stack;

pub use breaker::{BreakerPolicy, BreakerState};
pub use endpoints::{Endpoints, HEALTH_CHECK_EVERY, HEALTH_CHECK_LIMIT};
pub use error::{CallError, Side, UpstreamStatus};
pub use grpc_client::GrpcClient;
pub use http_client::HttpClient;
pub use policy::{ByClass, Deadlines, Policy};
pub use stack::{Failure, Idempotency, Retry, Stack, Target};

/// Locks a std mutex, shrugging off poisoning: the guarded state is a few
/// counters that stay consistent even if a holder panicked.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
