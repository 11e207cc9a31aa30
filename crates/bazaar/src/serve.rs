//! `bazaar serve SERVICE`: one service in this process, configured only by
//! `BAZAAR_*` variables. The launcher starts its children this way, and so
//! does a container.

use std::process::ExitCode;
use std::time::Duration;

use bazaar_platform::Config;

use crate::registry;

/// Exit code for a usage or configuration mistake, as clap uses.
const USAGE: u8 = 2;

/// Runs `service` until it shuts down; the exit code says how that went.
pub fn main(service: &str) -> ExitCode {
    let Some(def) = registry::find(service) else {
        // clap already refuses unknown names; this guards direct callers.
        eprintln!(
            "error: unknown service {service:?}; known services: {}",
            registry::names().collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(USAGE);
    };
    let config = match Config::from_env(def.name, def.default_port) {
        Ok(config) => config,
        Err(e) => {
            // One line, nothing else: the variable, its value, the reason.
            eprintln!("{e}");
            return ExitCode::from(USAGE);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on((def.run)(config));
    // A blocking read of stdin (the launcher's liveness pipe) may still be
    // parked on the blocking pool; don't let it hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {} stopped: {e:#}", def.name);
            ExitCode::FAILURE
        }
    }
}
