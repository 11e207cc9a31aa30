//! The `bazaar` binary: parses the command line and hands over to the
//! library. Without a subcommand it runs `bazaar up`, so `cargo run --release`
//! at the workspace root starts the whole fleet.

use std::process::ExitCode;

use bazaar::cli::{BenchCommand, Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Command::Up(Box::new(cli.up))) {
        Command::Up(args) => bazaar::up::main(*args),
        Command::Serve(args) => bazaar::serve::main(&args.service),
        Command::Bench(BenchCommand::Fleet(args)) => bazaar::bench::fleet(&args),
        Command::Bench(BenchCommand::Gateway(args)) => bazaar::bench_gateway::gateway(&args),
        Command::Bench(BenchCommand::Catalog(args)) => bazaar::bench_catalog::catalog(&args),
        Command::Bench(BenchCommand::Checkout(args)) => bazaar::bench_checkout::checkout(&args),
        Command::Bench(BenchCommand::Storefront(args)) => {
            bazaar::bench_storefront::storefront(&args)
        }
        Command::Bench(BenchCommand::GatewayProcess(process)) => {
            bazaar::bench_gateway::process(process)
        }
        Command::Deploy(command) => bazaar::deploy::main(&command),
        Command::Probe(args) => bazaar::probe::main(&args),
    }
}
