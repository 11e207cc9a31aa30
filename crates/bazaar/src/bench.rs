//! `bazaar bench fleet`: how long the fleet takes to become ready and how
//! much memory it holds, measured from the outside the way a person starts
//! it (`bazaar up`), so the numbers include process start-up and the launcher.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::cli::FleetBenchArgs;
use crate::procfs;

/// Target: the fleet answers within this time of `bazaar up`.
pub const READY_TARGET: Duration = Duration::from_secs(3);
/// Target: resident memory of the launcher and all its processes together.
pub const RSS_TARGET_BYTES: u64 = 150 * MB;
/// How long one start may take before the run counts as failed.
const READY_LIMIT: Duration = Duration::from_secs(90);
/// How long the fleet may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// Lines of fleet output kept to explain a failed run.
const TAIL_LINES: usize = 200;
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

/// Runs the benchmark and prints its report.
pub fn fleet(args: &FleetBenchArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this program's own path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut runs = Vec::new();
    for i in 1..=args.runs {
        if !args.json {
            eprintln!("run {i}/{}: starting the fleet…", args.runs);
        }
        match one_run(&exe) {
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

/// SIGKILLs the launcher if a run ends early; its children follow on their
/// own when their stdin closes.
struct Launcher(Child);

impl Drop for Launcher {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A fleet a benchmark started: `bazaar up` on a data directory and a free
/// port, its output read line by line. Dropping it kills the launcher (and
/// so, through their standard input, its processes).
pub(crate) struct Fleet {
    launcher: Launcher,
    /// When the launcher was spawned.
    pub(crate) started: Instant,
    /// The gateway's public address.
    pub(crate) public: SocketAddr,
    tail: Arc<Mutex<VecDeque<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Fleet {
    /// Starts `command` (this binary, perhaps under `taskset`) with
    /// `up --data-dir DATA_DIR --port <free port>`.
    pub(crate) fn start(mut command: Command, data_dir: &Path) -> anyhow::Result<Self> {
        let public = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?;
        let started = Instant::now();
        let child = command
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--port")
            .arg(public.port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `bazaar up`")?;
        let mut launcher = Launcher(child);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines) = mpsc::channel();
        if let Some(stdout) = launcher.0.stdout.take() {
            keep_tail(stdout, Arc::clone(&tail), Some(lines_tx));
        }
        if let Some(stderr) = launcher.0.stderr.take() {
            keep_tail(stderr, Arc::clone(&tail), None);
        }
        Ok(Self {
            launcher,
            started,
            public,
            tail,
            lines,
        })
    }

    /// The launcher's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.launcher.0.id()
    }

    /// The last lines the fleet printed.
    pub(crate) fn output(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<String>>().join("\n")
    }

    /// Waits up to `limit` for a line of standard output that `wanted`
    /// accepts, and returns it; `what` names it in the error.
    pub(crate) fn wait_for_line(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(_) => {}
                Err(_) => {
                    let status = self.launcher.0.try_wait().ok().flatten();
                    bail!(
                        "no {what} within {}s (launcher: {}); its output:\n{}",
                        limit.as_secs(),
                        status.map_or("still running".to_owned(), |s| s.to_string()),
                        self.output()
                    );
                }
            }
        }
    }

    /// Waits for the `ready:` line.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.wait_for_line("`ready:` line", READY_LIMIT, |line| {
            line.starts_with("ready: ")
        })
        .map(drop)
    }

    /// Stops the fleet with SIGTERM and waits for the launcher; how long
    /// it took.
    pub(crate) fn stop(&mut self) -> anyhow::Result<Duration> {
        let stopping = Instant::now();
        kill(Pid::from_raw(i32::try_from(self.pid())?), Signal::SIGTERM)
            .context("cannot signal the launcher")?;
        let status = wait_for_exit(&mut self.launcher.0, STOP_LIMIT)?;
        let stop = stopping.elapsed();
        match status {
            Some(s) if s.success() => Ok(stop),
            Some(s) => bail!(
                "the launcher stopped with {s}; its output:\n{}",
                self.output()
            ),
            None => bail!(
                "the launcher did not stop within {}s of SIGTERM",
                STOP_LIMIT.as_secs()
            ),
        }
    }
}

fn one_run(exe: &Path) -> anyhow::Result<Run> {
    let data_dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let mut fleet = Fleet::start(Command::new(exe), data_dir.path())?;
    fleet.wait_ready()?;
    let ready = fleet.started.elapsed();
    let pid = fleet.pid();

    let mut processes = vec![ProcessRss {
        name: "bazaar (launcher)".to_owned(),
        pid,
        rss: procfs::rss_bytes(pid).context("cannot read the launcher's memory")?,
    }];
    for child in procfs::children_of(pid) {
        // A child that exits between listing and reading is simply skipped.
        let Ok(rss) = procfs::rss_bytes(child.pid) else {
            continue;
        };
        let name = procfs::env_var(child.pid, "BAZAAR_INSTANCE")
            .unwrap_or_else(|| format!("pid {}", child.pid));
        processes.push(ProcessRss {
            name,
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

/// Reads `from` line by line, keeping the last lines and passing each on to
/// `lines`.
fn keep_tail(
    from: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    lines: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some(lines) = &lines {
                let _ = lines.send(line.clone());
            }
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
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
