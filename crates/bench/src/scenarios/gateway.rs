//! `bazaar bench gateway`: the gateway against nginx and against no proxy at
//! all, the three in front of one upstream on this machine.
//!
//! Every part is its own process, so each can be pinned to a core: the
//! upstream (a minimal HTTP/1.1 server with one fixed JSON answer), the
//! gateway (`bazaar serve gateway`), nginx (`bench/nginx.conf`) and the load
//! generator. The upstream and the load generator are this binary again,
//! under the hidden `bazaar bench gateway-process …`. The load generator
//! first finds each path's maximum throughput (closed loop), then sends at
//! one fixed rate, half of the slowest proxy's maximum, in open loop: every
//! request has an intended send time and its latency counts from then, so a
//! server that stalls cannot hide the stall by delaying the requests that
//! would have measured it (coordinated omission).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{LazyLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::fleet::reap;
use crate::harness::histogram::Latency;
use crate::harness::load::{
    LoadArgs, LoadResult, LoadSpec, START_LIMIT, WARMUP, find, get, has_token, header,
    parse_decimal, run_load, trim_cr,
};
use crate::harness::proc::{self, ProcessId, load_average};
use crate::harness::process::{
    Cores, Proc, STOP_LIMIT, exit_when_stdin_closes, find_program, free_port,
};
use crate::harness::report::{finish, micros, thousands};

/// The long help of `bazaar bench gateway`.
pub const LONG_ABOUT: &str = "\
Compare the gateway with nginx proxying the same upstream on this machine, and
with the upstream called directly. The benchmark starts its own upstream (a
minimal HTTP/1.1 server answering GET /api/v1/products/1 with a small JSON
body), `bazaar serve gateway` and nginx (bench/nginx.conf: one worker, upstream
keepalive, no access log), and a load generator in its own process on its own
core (taskset); the servers share another core.

For each path it measures the maximum requests/s (closed loop), then latency
at one fixed rate, half of the slowest proxy's maximum, in open loop: latency
counts from each request's intended send time. A proxy's added latency is its
p50/p99 minus the direct path's.
Targets: throughput ≥ 1.0× nginx's; added p50 ≤ 50 µs, added p99 ≤ 250 µs.

nginx must be installed; bench/gateway-vs-nginx.sh installs Debian's package
and runs this benchmark.";

/// Options of `bazaar bench gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds measured in each of the six runs (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration: u64,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Measure without nginx: only the direct path and the gateway
    #[arg(long)]
    pub skip_nginx: bool,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Target: the gateway's maximum requests/s as a multiple of nginx's.
pub const THROUGHPUT_TARGET: f64 = 1.0;
/// Target: latency the gateway adds at the median, at half of max load.
pub const ADDED_P50_TARGET: Duration = Duration::from_micros(50);
/// Target: latency the gateway adds at the 99th percentile, at half of max load.
pub const ADDED_P99_TARGET: Duration = Duration::from_micros(250);
/// The request every path is measured with.
pub const PATH: &str = "/api/v1/products/1";
/// The upstream's answer to it.
pub const BODY: &str =
    r#"{"id":"1","name":"Benchmark lamp","price":{"amount":1999,"currency":"EUR"},"stock":7}"#;

/// nginx's configuration, with `{{DIR}}`, `{{LISTEN}}` and `{{UPSTREAM}}` to fill in.
const NGINX_CONF: &str = include_str!("../../../../bench/nginx.conf");

/// One way to the upstream and its two measurements.
#[derive(Debug, Clone)]
pub struct PathResult {
    /// `direct`, `nginx` or `gateway`.
    pub name: &'static str,
    /// Closed loop, as fast as the connections go.
    pub max: LoadResult,
    /// Open loop at the rate every path gets.
    pub fixed: LoadResult,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured time of every run.
    pub duration: Duration,
    /// Keep-alive connections of the load generator.
    pub connections: u16,
    /// Which process ran on which core.
    pub cores: String,
    /// `nginx/1.x.y`, when nginx was measured.
    pub nginx_version: Option<String>,
    /// The open-loop rate, requests/s: half of the slowest proxy's maximum.
    pub rate: f64,
    /// `direct`, then `nginx` if measured, then `gateway`.
    pub paths: Vec<PathResult>,
    /// Processes the benchmark started, nginx's own included.
    pub processes: usize,
    /// Of those, how many were still running after the end and were killed.
    pub left_running: usize,
    /// The machine's 1-minute load average when the benchmark started: other
    /// work on the same cores shows up in the numbers.
    pub load_average: Option<f64>,
}

/// Gateway divided by nginx; `None` where a side is missing or not positive.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ratios {
    /// Maximum requests/s.
    pub throughput: Option<f64>,
    /// Added median latency.
    pub added_p50: Option<f64>,
    /// Added 99th-percentile latency.
    pub added_p99: Option<f64>,
}

impl Report {
    /// The measurements of one path.
    pub fn path(&self, name: &str) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.name == name)
    }

    /// Latency a proxy adds to the direct path at the fixed rate, in µs:
    /// its p50 and p99 minus the direct path's.
    pub fn added(&self, name: &str) -> Option<(f64, f64)> {
        let direct = &self.path("direct")?.fixed.latency;
        let proxy = &self.path(name)?.fixed.latency;
        Some((
            micros(proxy.p50) - micros(direct.p50),
            micros(proxy.p99) - micros(direct.p99),
        ))
    }

    /// The gateway compared with nginx.
    pub fn ratios(&self) -> Ratios {
        let (Some(gateway), Some(nginx)) = (self.path("gateway"), self.path("nginx")) else {
            return Ratios::default();
        };
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        let (g50, g99) = self.added("gateway").unwrap_or_default();
        let (n50, n99) = self.added("nginx").unwrap_or_default();
        Ratios {
            throughput: ratio(gateway.max.rps(), nginx.max.rps()),
            added_p50: ratio(g50, n50),
            added_p99: ratio(g99, n99),
        }
    }

    /// Whether a proxy measured faster than the direct path at the fixed
    /// rate, which only a disturbed run shows.
    pub fn disturbed(&self) -> bool {
        ["nginx", "gateway"]
            .iter()
            .filter_map(|name| self.added(name))
            .any(|(p50, p99)| p50 < 0.0 || p99 < 0.0)
    }

    /// Whether each target is met: throughput (unknown without nginx), added
    /// p50, added p99.
    pub fn targets_met(&self) -> (Option<bool>, bool, bool) {
        let (p50, p99) = self.added("gateway").unwrap_or((f64::MAX, f64::MAX));
        (
            self.ratios().throughput.map(|r| r >= THROUGHPUT_TARGET),
            p50 <= micros_of(ADDED_P50_TARGET),
            p99 <= micros_of(ADDED_P99_TARGET),
        )
    }
}

/// Runs the benchmark with the `bazaar` binary (its gateway) and prints
/// its report.
pub fn main(args: &Args, bazaar: &Path) -> ExitCode {
    let nginx = if args.skip_nginx {
        None
    } else if let Some(nginx) = find_program("nginx") {
        Some(nginx)
    } else {
        eprintln!(
            "error: nginx is not installed. Run bench/gateway-vs-nginx.sh, which installs \
             Debian's nginx package and then runs this benchmark, or pass --skip-nginx to \
             measure only the direct path and the gateway."
        );
        return ExitCode::FAILURE;
    };
    finish(
        run(args, bazaar, nginx.as_deref()),
        args.json,
        report_json,
        report_table,
    )
}

fn run(args: &Args, bazaar: &Path, nginx: Option<&Path>) -> anyhow::Result<Report> {
    let say = |line: &str| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    if cfg!(debug_assertions) {
        say("note: this is a debug build; its numbers say little (use --release)");
    }
    let load_average = load_average();
    let cores = Cores::detect("upstream, nginx and gateway");
    let dir = tempfile::Builder::new()
        .prefix("bazaar-bench-gateway-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut started = Vec::new();

    say("starting the upstream, the gateway and nginx…");
    let (mut upstream, upstream_addr) = start_upstream(&exe, &cores)?;
    started.extend(ProcessId::of(upstream.child.id()));
    let (mut gateway, gateway_addr) =
        start_gateway(bazaar, &cores, upstream_addr, &dir.path().join("gateway"))?;
    started.extend(ProcessId::of(gateway.child.id()));
    let mut nginx = match nginx {
        Some(program) => {
            let (proc, addr) = start_nginx(&exe, &cores, program, upstream_addr, dir.path())?;
            // The watcher, nginx's master and its worker.
            let watcher = proc.child.id();
            started.extend(ProcessId::of(watcher));
            for master in proc::children_of(watcher) {
                started.push(master);
                started.extend(proc::children_of(master.pid));
            }
            Some((proc, addr, nginx_version(program)))
        }
        None => None,
    };

    let mut targets = vec![("direct", upstream_addr)];
    if let Some((_, addr, _)) = &nginx {
        targets.push(("nginx", *addr));
    }
    targets.push(("gateway", gateway_addr));

    let mut check_servers = |upstream: &mut Proc, gateway: &mut Proc| -> anyhow::Result<()> {
        upstream.check()?;
        gateway.check()?;
        if let Some((proc, _, _)) = &mut nginx {
            proc.check()?;
        }
        Ok(())
    };
    let mut max = Vec::new();
    for (name, addr) in &targets {
        say(&format!(
            "{name}: max throughput, {} s…",
            args.duration + WARMUP.as_secs()
        ));
        let result = run_load(&exe, &cores, &load_spec(args, *addr, None), &mut started)
            .with_context(|| format!("max throughput of {name}"))?;
        check_servers(&mut upstream, &mut gateway)?;
        if result.ok == 0 {
            bail!("{name} answered no request successfully ({result:?})");
        }
        max.push(result);
    }
    let slowest = targets
        .iter()
        .zip(&max)
        .filter(|((name, _), _)| *name != "direct")
        .map(|(_, r)| r.rps())
        .fold(f64::INFINITY, f64::min);
    let rate = (slowest / 2.0).max(1.0).round();
    let mut fixed = Vec::new();
    for (name, addr) in &targets {
        say(&format!(
            "{name}: {} req/s open loop, {} s…",
            thousands(rate),
            args.duration + WARMUP.as_secs()
        ));
        let result = run_load(
            &exe,
            &cores,
            &load_spec(args, *addr, Some(rate)),
            &mut started,
        )
        .with_context(|| format!("latency of {name} at {rate} req/s"))?;
        check_servers(&mut upstream, &mut gateway)?;
        fixed.push(result);
    }

    // The gateway and nginx first, the upstream they call last.
    gateway.stop();
    let nginx_version = nginx.as_mut().and_then(|(proc, _, version)| {
        proc.stop();
        version.take()
    });
    upstream.stop();
    let left_running = reap(&started);

    let paths = targets
        .iter()
        .zip(max.into_iter().zip(fixed))
        .map(|((name, _), (max, fixed))| PathResult { name, max, fixed })
        .collect();
    Ok(Report {
        duration: Duration::from_secs(args.duration),
        connections: args.connections,
        cores: cores.note,
        nginx_version,
        rate,
        paths,
        processes: started.len(),
        left_running,
        load_average,
    })
}

fn start_upstream(exe: &Path, cores: &Cores) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut command = cores.command(cores.servers, exe);
    command.args(["gateway-process", "upstream"]);
    let (tx, rx) = mpsc::channel();
    let mut proc = Proc::spawn("upstream", command, Some(tx))?;
    let deadline = Instant::now() + START_LIMIT;
    let addr = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    break addr.parse().context("the upstream's address")?;
                }
            }
            Err(_) => {
                proc.check()?;
                bail!(
                    "the upstream did not say where it listens; its output:\n{}",
                    proc.output()
                );
            }
        }
    };
    wait_ready(&mut proc, addr)?;
    Ok((proc, addr))
}

fn start_gateway(
    bazaar: &Path,
    cores: &Cores,
    upstream: SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let addr = free_port()?;
    let mut command = cores.command(cores.servers, bazaar);
    command.args(["serve", "gateway"]);
    // Only what is set here: no fleet, exporter or log settings of the caller.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("BAZAAR_") || name.starts_with("OTEL_") {
            command.env_remove(&key);
        }
    }
    command
        .env("BAZAAR_LISTEN", addr.to_string())
        .env("BAZAAR_UPSTREAM_CATALOG", format!("http://{upstream}"))
        .env("BAZAAR_LOG", "warn")
        .env("BAZAAR_GATEWAY_RATE_LIMIT", "0")
        .env("BAZAAR_DATA_DIR", data_dir)
        .env("BAZAAR_EXIT_ON_STDIN_CLOSE", "1");
    let mut proc = Proc::spawn("gateway", command, None)?;
    wait_ready(&mut proc, addr)?;
    Ok((proc, addr))
}

fn start_nginx(
    exe: &Path,
    cores: &Cores,
    nginx: &Path,
    upstream: SocketAddr,
    dir: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let dir = dir.join("nginx");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let addr = free_port()?;
    let conf = dir.join("nginx.conf");
    fs::write(&conf, nginx_conf(&dir, addr, upstream))
        .with_context(|| format!("cannot write {}", conf.display()))?;
    let error_log = dir.join("error.log");
    let mut command = cores.command(cores.servers, exe);
    command
        .args(["gateway-process", "watch", "--"])
        .arg(nginx)
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-e")
        .arg(&error_log)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    let mut proc = Proc::spawn("nginx", command, None)?;
    wait_ready(&mut proc, addr).with_context(|| {
        format!(
            "nginx's error log:\n{}",
            fs::read_to_string(&error_log).unwrap_or_default()
        )
    })?;
    Ok((proc, addr))
}

/// `bench/nginx.conf` for this run.
fn nginx_conf(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    NGINX_CONF
        .replace("{{DIR}}", &dir.display().to_string())
        .replace("{{LISTEN}}", &listen.to_string())
        .replace("{{UPSTREAM}}", &upstream.to_string())
}

/// `nginx/1.22.1`, from `nginx -v`.
fn nginx_version(nginx: &Path) -> Option<String> {
    let output = Command::new(nginx).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let version = text.trim().strip_prefix("nginx version: ")?;
    Some(version.to_owned())
}

/// Waits until `addr` answers `GET PATH` with the upstream's body.
fn wait_ready(proc: &mut Proc, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        proc.check()?;
        let last = match get(addr, PATH) {
            Ok((200, body)) if body == BODY.as_bytes() => return Ok(()),
            Ok((status, body)) => {
                format!("status {status}, body {:?}", String::from_utf8_lossy(&body))
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!(
                "the {} at {addr} did not answer GET {PATH} with the upstream's body within {}s \
                 (last: {last}); its output:\n{}",
                proc.name,
                START_LIMIT.as_secs(),
                proc.output()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One run of the load generator against `target`: in closed loop, or in
/// open loop at `rate`.
fn load_spec(args: &Args, target: SocketAddr, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        target,
        paths: vec![PATH.to_owned()],
        connections: args.connections,
        warmup: WARMUP,
        duration: Duration::from_secs(args.duration),
        rate,
    }
}

fn micros_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", micros(ns))
}

fn signed_us(us: f64) -> String {
    format!("{us:+.1} µs")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// The report as a table.
pub fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bazaar bench gateway: GET {PATH} ({}-byte JSON), one upstream reached directly and through each proxy",
        BODY.len()
    );
    let _ = writeln!(
        out,
        "{} keep-alive connections; every run {} s warm-up + {} s measured",
        r.connections,
        WARMUP.as_secs(),
        r.duration.as_secs()
    );
    let _ = writeln!(out, "cores: {}", r.cores);
    if let Some(load) = r.load_average {
        let _ = writeln!(
            out,
            "load average at start: {load:.2}{}",
            if load > 0.5 {
                " (the machine was busy: other work on these cores disturbs the numbers)"
            } else {
                ""
            }
        );
    }
    if let Some(version) = &r.nginx_version {
        let _ = writeln!(
            out,
            "nginx: {version}, 1 worker, upstream keepalive 64, access log off"
        );
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:>9}   open loop at {} req/s (half of the slowest proxy's max), latency from intended send time",
        "",
        "max load",
        thousands(r.rate)
    );
    let _ = writeln!(
        out,
        "{:<8} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8}",
        "path", "req/s", "p50", "p99", "p99.9", "added p50", "added p99", "failed"
    );
    for path in &r.paths {
        let l = &path.fixed.latency;
        let (added50, added99) = match (path.name, r.added(path.name)) {
            ("direct", _) | (_, None) => ("–".to_owned(), "–".to_owned()),
            (_, Some((a, b))) => (signed_us(a), signed_us(b)),
        };
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8}",
            path.name,
            thousands(path.max.rps()),
            us(l.p50),
            us(l.p99),
            us(l.p999),
            added50,
            added99,
            path.max.failed() + path.fixed.failed()
        );
    }
    let cpu: Vec<String> = r
        .paths
        .iter()
        .map(|p| {
            let share = p
                .max
                .cpu
                .map_or("?".to_owned(), |c| format!("{:.0}%", c * 100.0));
            format!("{} {share}", p.name)
        })
        .collect();
    let _ = writeln!(
        out,
        "load generator CPU at max load: {} (near 100%: it, not the path, was the limit)",
        cpu.join(", ")
    );

    let ratios = r.ratios();
    let (throughput_ok, p50_ok, p99_ok) = r.targets_met();
    let (g50, g99) = r.added("gateway").unwrap_or_default();
    let (n50, n99) = r.added("nginx").unwrap_or_default();
    let _ = writeln!(
        out,
        "\ngateway vs nginx                                          target"
    );
    match ratios.throughput {
        Some(ratio) => {
            let _ = writeln!(
                out,
                "  throughput     {:<42} ≥ {THROUGHPUT_TARGET:.2}×     {}",
                format!("{ratio:.2}× nginx's"),
                verdict(throughput_ok == Some(true))
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  throughput     {:<42} ≥ {THROUGHPUT_TARGET:.2}×     –",
                "not compared (nginx not measured)"
            );
        }
    }
    for (label, gateway, nginx, ratio, target, ok) in [
        (
            "added p50",
            g50,
            n50,
            ratios.added_p50,
            ADDED_P50_TARGET,
            p50_ok,
        ),
        (
            "added p99",
            g99,
            n99,
            ratios.added_p99,
            ADDED_P99_TARGET,
            p99_ok,
        ),
    ] {
        let detail = match (r.path("nginx"), ratio) {
            (None, _) => signed_us(gateway),
            (Some(_), Some(ratio)) => format!(
                "{}, {ratio:.2}× nginx's {}",
                signed_us(gateway),
                signed_us(nginx)
            ),
            (Some(_), None) => format!(
                "{} (nginx's {}: no ratio)",
                signed_us(gateway),
                signed_us(nginx)
            ),
        };
        let _ = writeln!(
            out,
            "  {label:<13}  {detail:<42} ≤ {:<8} {}",
            format!("{:.0} µs", micros_of(target)),
            verdict(ok)
        );
    }
    if r.disturbed() {
        let _ = writeln!(
            out,
            "  note: a proxy measured faster than the direct path, so a run was disturbed \
             (other work on the cores?); run again on an idle machine"
        );
    }
    let _ = writeln!(
        out,
        "\nprocesses: {} started, {}",
        r.processes,
        if r.left_running == 0 {
            "all stopped".to_owned()
        } else {
            format!("{} still running at the end (killed)", r.left_running)
        }
    );
    out
}

/// The report as one JSON object; latencies in µs.
pub fn report_json(r: &Report) -> Value {
    let ratios = r.ratios();
    let (throughput_ok, p50_ok, p99_ok) = r.targets_met();
    let (g50, g99) = r.added("gateway").unwrap_or_default();
    let latency = |l: &Latency| {
        json!({
            "p50_us": micros(l.p50), "p90_us": micros(l.p90), "p99_us": micros(l.p99),
            "p999_us": micros(l.p999), "max_us": micros(l.max), "mean_us": micros(l.mean),
        })
    };
    let paths: serde_json::Map<String, Value> = r
        .paths
        .iter()
        .map(|p| {
            let added = (p.name != "direct").then(|| r.added(p.name)).flatten();
            let value = json!({
                "max": {
                    "rps": p.max.rps(), "failed": p.max.failed(),
                    "latency": latency(&p.max.latency),
                    "load_generator_cpu": p.max.cpu,
                },
                "fixed": {
                    "rps": p.fixed.rps(), "failed": p.fixed.failed(),
                    "latency": latency(&p.fixed.latency),
                    "send_lag_p99_us": micros(p.fixed.send_lag_p99),
                    "max_backlog": p.fixed.max_backlog,
                },
                "added_p50_us": added.map(|a| a.0),
                "added_p99_us": added.map(|a| a.1),
            });
            (p.name.to_owned(), value)
        })
        .collect();
    json!({
        "benchmark": "gateway",
        "request": format!("GET {PATH}"),
        "duration_s": r.duration.as_secs(),
        "warmup_s": WARMUP.as_secs(),
        "connections": r.connections,
        "cores": r.cores,
        "nginx": r.nginx_version,
        "fixed_rate_rps": r.rate,
        "paths": paths,
        "gateway_vs_nginx": {
            "throughput_ratio": ratios.throughput,
            "added_p50_ratio": ratios.added_p50,
            "added_p99_ratio": ratios.added_p99,
        },
        "targets": {
            "throughput_ratio": {
                "value": ratios.throughput, "min": THROUGHPUT_TARGET, "met": throughput_ok,
            },
            "gateway_added_p50_us": {
                "value": g50, "max": micros_of(ADDED_P50_TARGET), "met": p50_ok,
            },
            "gateway_added_p99_us": {
                "value": g99, "max": micros_of(ADDED_P99_TARGET), "met": p99_ok,
            },
        },
        "processes": { "started": r.processes, "left_running": r.left_running },
        "load_average_at_start": r.load_average,
        "disturbed": r.disturbed(),
    })
}

// ---------------------------------------------------------------------------
// The benchmark's own processes.

/// The processes `bazaar bench gateway` starts: this binary again. Each one
/// exits when its standard input closes, so none outlives the benchmark.
/// `bazaar bench catalog` starts the same load generator.
#[derive(Debug, Subcommand)]
pub enum Process {
    /// The upstream: answers GET /api/v1/products/1 with a fixed JSON body on 127.0.0.1, prints `listening on ADDR`
    Upstream,
    /// The load generator: one run against one server on loopback, then one JSON line
    Load(LoadArgs),
    /// Runs a program until standard input closes, then stops it with SIGTERM
    Watch(WatchArgs),
}

/// Options of the watcher.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The program and its arguments
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Runs one of the benchmark's own processes.
pub fn process(command: Process) -> ExitCode {
    let result = match command {
        Process::Upstream => upstream(),
        Process::Load(args) => crate::harness::load::load(&args),
        Process::Watch(args) => return watch(&args.command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` until this process's standard input closes, then stops it
/// with SIGTERM (SIGKILL if it takes longer than `STOP_LIMIT`). For nginx,
/// which does not watch its standard input itself.
fn watch(command: &[OsString]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        return ExitCode::FAILURE;
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot start {}: {e}", program.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else {
        return ExitCode::FAILURE;
    };
    let _ = thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            let _ = kill(pid, Signal::SIGTERM);
            // The main thread exits as soon as the child does, ending this
            // thread before it could signal a reused pid.
            thread::sleep(STOP_LIMIT);
            let _ = kill(pid, Signal::SIGKILL);
        });
    match child.wait() {
        Ok(status) => ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1))),
        Err(_) => ExitCode::FAILURE,
    }
}

/// The upstream's one answer.
static OK_RESPONSE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
});
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// The upstream: as little work per request as an HTTP/1.1 server can do, on
/// one thread, so what the proxies add stands out.
fn upstream() -> anyhow::Result<()> {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen")?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream));
                }
                Err(e) => {
                    eprintln!("warning: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

/// Answers the requests of one connection, pipelined ones together.
async fn serve_connection(mut stream: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut start = 0;
        let mut close = false;
        loop {
            match parse_request(&buf[start..filled]) {
                Ok(None) => break,
                Ok(Some(request)) => {
                    let hit = request.method == b"GET" && request.path == PATH.as_bytes();
                    out.extend_from_slice(if hit { &OK_RESPONSE } else { NOT_FOUND });
                    start += request.len;
                    if request.close {
                        close = true;
                        break;
                    }
                }
                Err(()) => {
                    out.extend_from_slice(BAD_REQUEST);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            let _ = stream.write_all(BAD_REQUEST).await;
            return;
        }
    }
}

/// One whole request at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    /// Bytes it takes, body included.
    len: usize,
    method: &'a [u8],
    path: &'a [u8],
    /// The client asked to close the connection after the answer.
    close: bool,
}

/// Parses the request at the start of `buf`: `Ok(None)` while it is incomplete.
fn parse_request(buf: &[u8]) -> Result<Option<Request<'_>>, ()> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let mut lines = buf[..head_end].split(|&b| b == b'\n').map(trim_cr);
    let mut words = lines.next().ok_or(())?.split(|&b| b == b' ');
    let (Some(method), Some(path), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(());
    };
    let mut close = version == b"HTTP/1.0";
    let mut body = 0usize;
    for line in lines {
        let (name, value) = header(line).ok_or(())?;
        if name.eq_ignore_ascii_case(b"content-length") {
            body = parse_decimal(value).ok_or(())?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(());
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = has_token(value, b"close") || (close && !has_token(value, b"keep-alive"));
        }
    }
    let len = head_end + 4 + body;
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Request {
        len,
        method,
        path,
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pipelined_and_closing() {
        let get = b"GET /api/v1/products/1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let both = [
            &get[..],
            b"POST /x HTTP/1.1\r\ncontent-length: 2\r\nConnection: close\r\n\r\nhi",
        ]
        .concat();
        let first = parse_request(&both).unwrap().unwrap();
        assert_eq!(
            first,
            Request {
                len: get.len(),
                method: b"GET",
                path: b"/api/v1/products/1",
                close: false
            }
        );
        let second = parse_request(&both[first.len..]).unwrap().unwrap();
        assert_eq!((second.method, second.close), (&b"POST"[..], true));
        assert_eq!(first.len + second.len, both.len());
        assert_eq!(parse_request(&both[first.len..both.len() - 1]), Ok(None));
        assert!(parse_request(b"GARBAGE\r\n\r\n").is_err());
    }

    #[test]
    fn the_nginx_config_is_filled_in() {
        let conf = nginx_conf(
            Path::new("/tmp/b"),
            "127.0.0.1:81".parse().unwrap(),
            "127.0.0.1:82".parse().unwrap(),
        );
        assert!(!conf.contains("{{"), "{conf}");
        assert!(conf.contains("server 127.0.0.1:82;"));
        assert!(conf.contains("listen 127.0.0.1:81;"));
        assert!(conf.contains("worker_processes 1;"));
        assert!(conf.contains("keepalive 64;"));
        assert!(conf.contains("access_log off;"));
        assert!(conf.contains(r#"proxy_set_header Connection "";"#));
    }

    fn path(name: &'static str, max_rps: u64, p50_us: u64, p99_us: u64) -> PathResult {
        let result = |ok, p50, p99| LoadResult {
            ok,
            window_secs: 1.0,
            latency: Latency {
                p50: p50 * 1000,
                p99: p99 * 1000,
                ..Latency::default()
            },
            cpu: Some(0.9),
            ..LoadResult::default()
        };
        PathResult {
            name,
            max: result(max_rps, 0, 0),
            fixed: result(1000, p50_us, p99_us),
        }
    }

    #[test]
    fn the_report_states_ratios_and_targets() {
        let report = Report {
            duration: Duration::from_secs(5),
            connections: 32,
            cores: "test".to_owned(),
            nginx_version: Some("nginx/1.22.1".to_owned()),
            rate: 10_000.0,
            paths: vec![
                path("direct", 90_000, 20, 60),
                path("nginx", 40_000, 40, 100),
                path("gateway", 30_000, 80, 360),
            ],
            processes: 10,
            left_running: 0,
            load_average: Some(2.5),
        };
        assert_eq!(report.added("gateway"), Some((60.0, 300.0)));
        let ratios = report.ratios();
        assert_eq!(ratios.throughput, Some(0.75));
        assert_eq!(ratios.added_p50, Some(3.0));
        assert_eq!(ratios.added_p99, Some(7.5));
        assert_eq!(report.targets_met(), (Some(false), false, false));

        let table = report_table(&report);
        assert!(table.contains("0.75× nginx's"), "{table}");
        assert!(
            table.contains("+60.0 µs, 3.00× nginx's +20.0 µs"),
            "{table}"
        );
        assert!(table.contains("≤ 250 µs"), "{table}");
        assert!(table.contains("90,000"), "{table}");
        assert!(table.contains("10 started, all stopped"), "{table}");
        assert!(table.contains("2.50 (the machine was busy"), "{table}");
        let json = report_json(&report);
        assert_eq!(json["gateway_vs_nginx"]["throughput_ratio"], 0.75);
        assert_eq!(json["targets"]["gateway_added_p99_us"]["met"], false);
        assert_eq!(json["paths"]["gateway"]["added_p50_us"], 60.0);
        assert_eq!(json["paths"]["direct"]["added_p50_us"], Value::Null);
        assert!(!report.disturbed() && !table.contains("disturbed"));

        // A direct run with a worse tail than a proxy's was disturbed.
        let mut noisy = report.clone();
        noisy.paths[0] = path("direct", 90_000, 20, 1000);
        assert!(noisy.disturbed());
        assert_eq!(noisy.ratios().added_p99, None);
        let table = report_table(&noisy);
        assert!(
            table.contains("-640.0 µs (nginx's -900.0 µs: no ratio)"),
            "{table}"
        );
        assert!(table.contains("was disturbed"), "{table}");
    }
}
