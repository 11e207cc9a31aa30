//! The `bazaar` binary: parses the command line and hands over to the
//! library. Without a subcommand it runs `bazaar up`, so `cargo run --release`
//! at the workspace root starts the whole fleet.

use std::process::ExitCode;

use bazaar::cli::{Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Command::Up(Box::new(cli.up))) {
        Command::Up(args) => bazaar::up::main(*args),
        Command::Serve(args) => bazaar::serve::main(&args.service),
        Command::Bench(args) => bazaar::bench::main(&args.args),
        Command::Deploy(command) => bazaar::deploy::main(&command),
        Command::Probe(args) => bazaar::probe::main(&args),
        Command::Events(command) => bazaar::events::main(&command),
    }
}
