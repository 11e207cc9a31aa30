//! `fleet`: how long the fleet takes to become ready and how
//! much memory it holds, measured from the outside the way a person starts
//! it (`bazaar up`), so the numbers include process start-up and the launcher.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use crate::harness::fleet::{Fleet, Launch};
use crate::harness::proc;

/// The long help of `bazaar bench fleet`.
pub const LONG_ABOUT: &str = "\
Start the fleet N times (`bazaar up` on a temporary data directory and a free
port), measure the wall time until its `ready:` line, read the resident memory
(VmRSS) of the launcher and of each service process, then stop it with SIGTERM.
Targets: ready within 3 s, the whole fleet within 150 MB.";

/// Options of `bazaar bench fleet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many times to start the fleet
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Target: the fleet answers within this time of `bazaar up`.
pub const READY_TARGET: Duration = Duration::from_secs(3);
/// Target: resident memory of the launcher and all its processes together.
pub const RSS_TARGET_BYTES: u64 = 150 * MB;
const MB: u64 = 1_000_000;

/// One process's memory.
#[derive(Debug, Clone)]
pub struct ProcessRss {
    /// Instance name, or `bazaar (launcher)`.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// One start of the fleet.
#[derive(Debug, Clone)]
pub struct Run {
    /// From spawning `bazaar up` to its `ready:` line.
    pub ready: Duration,
    /// The launcher first, then its children.
    pub processes: Vec<ProcessRss>,
    /// From SIGTERM to the launcher's exit.
    pub stop: Duration,
}

impl Run {
    /// Resident memory of the whole fleet.
    pub fn total_rss(&self) -> u64 {
        self.processes.iter().map(|p| p.rss).sum()
    }
}

/// Runs the benchmark with the `bazaar` binary and prints its report.
pub fn main(args: &Args, bazaar: &Path) -> ExitCode {
    let mut runs = Vec::new();
    for i in 1..=args.runs {
        if !args.json {
            eprintln!("run {i}/{}: starting the fleet…", args.runs);
        }
        match one_run(bazaar) {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("error: run {i} failed: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.json {
        println!("{}", report_json(&runs));
    } else {
        print!("{}", report_table(&runs));
    }
    ExitCode::SUCCESS
}

fn one_run(bazaar: &Path) -> anyhow::Result<Run> {
    let data_dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let mut fleet = Fleet::start(bazaar, data_dir.path(), Launch::default())?;
    fleet.wait_ready()?;
    let ready = fleet.started.elapsed();
    let pid = fleet.pid();

    let mut processes = vec![ProcessRss {
        name: "bazaar (launcher)".to_owned(),
        pid,
        rss: proc::rss_bytes(pid).context("cannot read the launcher's memory")?,
    }];
    for child in proc::children_of(pid) {
        // A child that exits between listing and reading is simply skipped.
        let Ok(rss) = proc::rss_bytes(child.pid) else {
            continue;
        };
        processes.push(ProcessRss {
            name: proc::instance_name(child.pid),
            pid: child.pid,
            rss,
        });
    }

    let stop = fleet.stop()?;
    Ok(Run {
        ready,
        processes,
        stop,
    })
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    match values.len() {
        0 => 0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// Per process name, the median RSS over the runs, launcher first.
fn rss_by_name(runs: &[Run]) -> Vec<(String, u64)> {
    let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for run in runs {
        for p in &run.processes {
            by_name.entry(p.name.clone()).or_default().push(p.rss);
        }
    }
    let mut rows: Vec<(String, u64)> = by_name.into_iter().map(|(n, v)| (n, median(v))).collect();
    rows.sort_by_key(|(n, _)| (!n.starts_with("bazaar"), n.clone()));
    rows
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / MB as f64)
}

fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// The report as a table.
pub fn report_table(runs: &[Run]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let processes = runs.first().map_or(0, |r| r.processes.len());
    let _ = writeln!(
        out,
        "bazaar bench fleet: {} of `bazaar up` (the launcher and {} each)\n",
        plural(runs.len(), "run", "runs"),
        plural(
            processes.saturating_sub(1),
            "service process",
            "service processes"
        ),
    );
    let _ = writeln!(
        out,
        "{:<5} {:>9} {:>12} {:>9} {:>10}",
        "run", "ready", "fleet RSS", "stop", "processes"
    );
    for (i, run) in runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<5} {:>9} {:>12} {:>9} {:>10}",
            i + 1,
            secs(millis(run.ready)),
            mb(run.total_rss()),
            secs(millis(run.stop)),
            run.processes.len()
        );
    }
    let rows = rss_by_name(runs);
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(5);
    let _ = writeln!(out, "\nmemory per process (median of runs)");
    for (name, rss) in &rows {
        let _ = writeln!(out, "  {name:<width$} {:>10}", mb(*rss));
    }
    let totals: Vec<u64> = runs.iter().map(Run::total_rss).collect();
    let worst_rss = totals.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        out,
        "  {:<width$} {:>10}   (worst run {}; target ≤ {}: {})",
        "total",
        mb(median(totals)),
        mb(worst_rss),
        mb(RSS_TARGET_BYTES),
        verdict(worst_rss <= RSS_TARGET_BYTES)
    );
    let ready: Vec<u64> = runs.iter().map(|r| millis(r.ready)).collect();
    let (min, max) = (
        ready.iter().copied().min().unwrap_or(0),
        ready.iter().copied().max().unwrap_or(0),
    );
    let _ = writeln!(
        out,
        "\nready time   min {}   median {}   max {}   (target ≤ {}: {})",
        secs(min),
        secs(median(ready)),
        secs(max),
        secs(millis(READY_TARGET)),
        verdict(max <= millis(READY_TARGET))
    );
    out
}

/// The report as one JSON object.
pub fn report_json(runs: &[Run]) -> serde_json::Value {
    let ready: Vec<u64> = runs.iter().map(|r| millis(r.ready)).collect();
    let totals: Vec<u64> = runs.iter().map(Run::total_rss).collect();
    json!({
        "benchmark": "fleet",
        "runs": runs.iter().map(|r| json!({
            "ready_ms": millis(r.ready),
            "stop_ms": millis(r.stop),
            "rss_total_bytes": r.total_rss(),
            "processes": r.processes.iter().map(|p| json!({
                "name": p.name, "pid": p.pid, "rss_bytes": p.rss,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rss_median_bytes": rss_by_name(runs).into_iter().map(|(n, v)| (n, json!(v))).collect::<serde_json::Map<_, _>>(),
        "summary": {
            "ready_ms": {
                "min": ready.iter().min(), "median": median(ready.clone()), "max": ready.iter().max(),
                "target": millis(READY_TARGET),
            },
            "rss_total_bytes": {
                "median": median(totals.clone()), "max": totals.iter().max(),
                "target": RSS_TARGET_BYTES,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ready_ms: u64, rss: &[(&str, u64)]) -> Run {
        Run {
            ready: Duration::from_millis(ready_ms),
            stop: Duration::from_millis(100),
            processes: rss
                .iter()
                .enumerate()
                .map(|(i, (n, r))| ProcessRss {
                    name: (*n).to_owned(),
                    pid: i as u32 + 1,
                    rss: *r,
                })
                .collect(),
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![4, 1, 2, 3]), 2);
        assert_eq!(median(vec![]), 0);
    }

    #[test]
    fn the_report_states_numbers_and_targets() {
        let runs = [
            run(
                500,
                &[("bazaar (launcher)", 5 * MB), ("gateway-0", 20 * MB)],
            ),
            run(
                700,
                &[("bazaar (launcher)", 6 * MB), ("gateway-0", 22 * MB)],
            ),
            run(
                4000,
                &[("bazaar (launcher)", 5 * MB), ("gateway-0", 21 * MB)],
            ),
        ];
        let table = report_table(&runs);
        assert!(
            table.contains("min 0.50 s   median 0.70 s   max 4.00 s"),
            "{table}"
        );
        assert!(table.contains("(target ≤ 3.00 s: MISSED)"), "{table}");
        assert!(table.contains("gateway-0"), "{table}");
        assert!(table.contains("target ≤ 150.0 MB: ok"), "{table}");
        let json = report_json(&runs);
        assert_eq!(json["summary"]["ready_ms"]["median"], 700);
        assert_eq!(json["rss_median_bytes"]["gateway-0"], 21 * MB);
    }
}
