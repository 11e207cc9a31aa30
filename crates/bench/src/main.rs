//! `bazaar-bench`: Bazaar's benchmarks, a program apart from the product.
//! Each scenario starts the fleet with the `bazaar` binary (`bazaar up`, as
//! a person would) and measures it from outside; `bazaar bench …` runs this
//! program.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod harness;
mod scenarios;

use scenarios::{catalog, checkout, faults, fleet, gateway, storefront};

/// The `bazaar-bench` command line.
#[derive(Debug, Parser)]
#[command(
    name = "bazaar-bench",
    version,
    about = "Measure Bazaar: each benchmark starts the fleet with the bazaar binary and measures it from outside."
)]
pub struct Cli {
    /// The bazaar binary to run [default: the one beside this program]
    #[arg(long, global = true, value_name = "PATH", env = "BAZAAR_BIN")]
    pub bazaar: Option<PathBuf>,
    /// The benchmark.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Start the fleet N times: time until ready, memory of every process
    #[command(long_about = fleet::LONG_ABOUT)]
    Fleet(fleet::Args),
    /// The gateway against nginx and no proxy: requests/s and added latency
    #[command(long_about = gateway::LONG_ABOUT)]
    Gateway(gateway::Args),
    /// The catalog's read path through the gateway: max requests/s within a p99 limit, the gateway's share
    #[command(long_about = catalog::LONG_ABOUT)]
    Catalog(catalog::Args),
    /// The checkout saga end to end at fixed order rates: orders/s, POST and accepted → confirmed latency
    #[command(long_about = checkout::LONG_ABOUT)]
    Checkout(Box<checkout::Args>),
    /// Faults as clients see them: reads while a replica is frozen, checkouts while services are killed
    #[command(long_about = faults::LONG_ABOUT)]
    Faults(faults::Args),
    /// The shop's server-rendered pages through the gateway at fixed rates: latency, errors, CPU per service
    #[command(long_about = storefront::LONG_ABOUT)]
    Storefront(storefront::Args),
    /// A process of the gateway benchmark (its upstream, load generator or nginx watcher)
    #[command(subcommand, hide = true)]
    GatewayProcess(gateway::Process),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bazaar = cli.bazaar.as_deref();
    match cli.scenario {
        Scenario::Fleet(args) => with_bazaar(bazaar, |b| fleet::main(&args, b)),
        Scenario::Gateway(args) => with_bazaar(bazaar, |b| gateway::main(&args, b)),
        Scenario::Catalog(args) => with_bazaar(bazaar, |b| catalog::main(&args, b)),
        Scenario::Checkout(args) => with_bazaar(bazaar, |b| checkout::main(&args, b)),
        Scenario::Storefront(args) => with_bazaar(bazaar, |b| storefront::main(&args, b)),
        Scenario::Faults(args) => with_bazaar(bazaar, |b| faults::main(&args, b)),
        // The benchmark's own processes start no fleet.
        Scenario::GatewayProcess(process) => gateway::process(process),
    }
}

/// Runs a scenario with the `bazaar` binary it starts, or fails saying
/// where none was found.
fn with_bazaar(given: Option<&Path>, run: impl FnOnce(&Path) -> ExitCode) -> ExitCode {
    match harness::fleet::bazaar_binary(given) {
        Ok(bazaar) => run(&bazaar),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
