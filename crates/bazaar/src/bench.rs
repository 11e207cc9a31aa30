//! `bazaar bench …`: the benchmarks are a program of their own,
//! `bazaar-bench` (crates/bench), so this binary holds none of them. This
//! runs the one built beside it, on this very `bazaar`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

/// The benchmark program's file name.
const BENCH: &str = "bazaar-bench";

/// Replaces this process with `bazaar-bench ARGS…`, found beside this
/// binary, told to start this binary's fleet (`BAZAAR_BIN`).
pub fn main(args: &[OsString]) -> ExitCode {
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => {
            eprintln!("error: cannot find this program's own path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bench = me.with_file_name(BENCH);
    if !bench.is_file() {
        eprintln!(
            "error: `bazaar bench` runs {BENCH}, which is not built beside {}: \
             build it with cargo build --release -p {BENCH}",
            me.display()
        );
        return ExitCode::FAILURE;
    }
    // Its usage lines then read `bazaar bench …`.
    let e = Command::new(&bench)
        .arg0("bazaar bench")
        .args(args)
        .env("BAZAAR_BIN", &me)
        .exec();
    eprintln!("error: cannot run {}: {e}", bench.display());
    ExitCode::FAILURE
}
