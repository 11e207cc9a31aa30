//! The Bazaar command line as a library: `bazaar up` runs the whole fleet on
//! one machine, `bazaar serve SERVICE` runs one service (what a container
//! runs), `bazaar deploy` writes deployment files, `bazaar events
//! dead-letters` lists and replays the events consumer groups gave up on, `bazaar probe` is the
//! container's health check, and `bazaar bench` hands over to the separate
//! `bazaar-bench` program. `main.rs` only parses and dispatches, so the
//! system tests and the benchmarks share the service registry and the
//! command line's checks with the binary they drive.

pub mod bench;
pub mod cli;
pub mod deploy;
pub mod events;
pub mod probe;
pub mod registry;
pub mod seed;
pub mod serve;
pub mod up;

/// A single-threaded Tokio runtime for a command that mostly waits (the
/// launcher, `bazaar events`), or `None` after saying on stderr why there is
/// none.
pub(crate) fn small_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}
