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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead as _, BufReader, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::cli::GatewayBenchArgs;
use crate::procfs::{self, ProcessId};

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

/// Not measured at the start of every load run: connections and caches settle.
const WARMUP: Duration = Duration::from_secs(1);
/// A request not answered within this is an error; its connection is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a server may take to give its first right answer.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a process may take to stop once its standard input closes.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Lines of a process's output kept to explain a failure.
const TAIL_LINES: usize = 100;
/// Largest response head or body the load generator takes.
const MAX_MESSAGE: usize = 1 << 20;
/// nginx's configuration, with `{{DIR}}`, `{{LISTEN}}` and `{{UPSTREAM}}` to fill in.
const NGINX_CONF: &str = include_str!("../../../bench/nginx.conf");

/// Latency percentiles of one load run, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
}

/// What the load generator measured in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadResult {
    /// Answers with a 2xx status in the measured window.
    pub ok: u64,
    /// Answers with another status.
    pub non_2xx: u64,
    /// Requests that got no answer: connection errors, malformed answers, timeouts.
    pub errors: u64,
    /// Length of the measured window in seconds.
    pub window_secs: f64,
    /// Latency of the answered requests; in open loop from their intended send time.
    pub latency: Latency,
    /// Open loop: how late requests were sent after their intended time
    /// (99th percentile, ns); large when the load generator fell behind.
    pub send_lag_p99: u64,
    /// Open loop: most requests waiting for a free connection at once.
    pub max_backlog: u64,
    /// CPU the load generator used over its run (1.0 = one core busy), if known.
    pub cpu: Option<f64>,
}

impl LoadResult {
    /// Successful answers per second.
    pub fn rps(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.ok as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// Requests that failed or got a non-2xx answer.
    pub fn failed(&self) -> u64 {
        self.errors + self.non_2xx
    }

    /// The form the load generator prints and the benchmark reads.
    fn to_json(&self) -> Value {
        let l = &self.latency;
        json!({
            "ok": self.ok, "non_2xx": self.non_2xx, "errors": self.errors,
            "window_secs": self.window_secs,
            "latency_ns": {
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999,
                "max": l.max, "mean": l.mean,
            },
            "send_lag_p99_ns": self.send_lag_p99,
            "max_backlog": self.max_backlog,
            "cpu": self.cpu,
        })
    }

    fn from_json(value: &Value) -> anyhow::Result<Self> {
        let int = |v: &Value| v.as_u64().context("expected a whole number");
        let l = &value["latency_ns"];
        Ok(Self {
            ok: int(&value["ok"])?,
            non_2xx: int(&value["non_2xx"])?,
            errors: int(&value["errors"])?,
            window_secs: value["window_secs"].as_f64().context("no window")?,
            latency: Latency {
                p50: int(&l["p50"])?,
                p90: int(&l["p90"])?,
                p99: int(&l["p99"])?,
                p999: int(&l["p999"])?,
                max: int(&l["max"])?,
                mean: int(&l["mean"])?,
            },
            send_lag_p99: int(&value["send_lag_p99_ns"])?,
            max_backlog: int(&value["max_backlog"])?,
            cpu: value["cpu"].as_f64(),
        })
    }
}

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

/// Runs the benchmark and prints its report.
pub fn gateway(args: &GatewayBenchArgs) -> ExitCode {
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
    match run(args, nginx.as_deref()) {
        Ok(report) => {
            if args.json {
                println!("{}", report_json(&report));
            } else {
                print!("{}", report_table(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &GatewayBenchArgs, nginx: Option<&Path>) -> anyhow::Result<Report> {
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
    let cores = Cores::detect();
    let dir = tempfile::Builder::new()
        .prefix("bazaar-bench-gateway-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut started = Vec::new();

    say("starting the upstream, the gateway and nginx…");
    let (mut upstream, upstream_addr) = start_upstream(&exe, &cores)?;
    started.extend(ProcessId::of(upstream.child.id()));
    let (mut gateway, gateway_addr) =
        start_gateway(&exe, &cores, upstream_addr, &dir.path().join("gateway"))?;
    started.extend(ProcessId::of(gateway.child.id()));
    let mut nginx = match nginx {
        Some(program) => {
            let (proc, addr) = start_nginx(&exe, &cores, program, upstream_addr, dir.path())?;
            // The watcher, nginx's master and its worker.
            let watcher = proc.child.id();
            started.extend(ProcessId::of(watcher));
            for master in procfs::children_of(watcher) {
                started.push(master.into());
                started.extend(
                    procfs::children_of(master.pid)
                        .into_iter()
                        .map(ProcessId::from),
                );
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
        let result = run_load(&exe, &cores, args, *addr, None, &mut started)
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
        let result = run_load(&exe, &cores, args, *addr, Some(rate), &mut started)
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
    let left: Vec<ProcessId> = started.iter().filter(|p| p.is_running()).copied().collect();
    for process in &left {
        if let Ok(pid) = i32::try_from(process.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

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
        left_running: left.len(),
        load_average,
    })
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Which cores the processes run on: the load generator on one, everything
/// else on another, when `taskset` and two cores are there.
#[derive(Debug, Clone)]
struct Cores {
    taskset: Option<PathBuf>,
    servers: Option<usize>,
    load: Option<usize>,
    note: String,
}

impl Cores {
    fn detect() -> Self {
        let allowed = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .and_then(|v| parse_cpu_list(v.trim()))
            })
            .unwrap_or_default();
        let unpinned = |why: &str| Self {
            taskset: None,
            servers: None,
            load: None,
            note: format!("nothing pinned ({why}): the load generator competes with the servers"),
        };
        match (find_program("taskset"), allowed.as_slice()) {
            (None, _) => unpinned("taskset not found"),
            (Some(taskset), [servers, load, ..]) => Self {
                taskset: Some(taskset),
                servers: Some(*servers),
                load: Some(*load),
                note: format!(
                    "load generator alone on core {load}; upstream, nginx and gateway share core {servers} (taskset)"
                ),
            },
            (Some(_), _) => unpinned("fewer than two cores"),
        }
    }

    /// `program`, under `taskset -c CORE` when pinning.
    fn command(&self, core: Option<usize>, program: &Path) -> Command {
        match (&self.taskset, core) {
            (Some(taskset), Some(core)) => {
                let mut command = Command::new(taskset);
                command.arg("-c").arg(core.to_string()).arg(program);
                command
            }
            _ => Command::new(program),
        }
    }
}

/// `0-1,4` → `[0, 1, 4]`, as in `/proc/*/status`'s `Cpus_allowed_list`.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// `name` on `PATH` or in the sbin directories, which a user's `PATH` may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A process the benchmark started. Stopping it (or dropping it) closes its
/// standard input, which every one of them takes as the sign to exit, and
/// kills it if it lingers.
struct Proc {
    name: &'static str,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `command`; its standard output's lines also go to `lines`.
    fn spawn(
        name: &'static str,
        mut command: Command,
        lines: Option<mpsc::Sender<String>>,
    ) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {name}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            keep_tail(stdout, Arc::clone(&tail), lines);
        }
        if let Some(stderr) = child.stderr.take() {
            keep_tail(stderr, Arc::clone(&tail), None);
        }
        Ok(Self { name, child, tail })
    }

    /// The last lines it printed.
    fn output(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Fails, with its last output, if it has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            // Let the output threads catch the last lines.
            thread::sleep(Duration::from_millis(50));
            bail!(
                "the {} exited ({status}); its output:\n{}",
                self.name,
                self.output()
            );
        }
        Ok(())
    }

    /// Closes its standard input and waits; kills it after `STOP_LIMIT`.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        eprintln!(
            "warning: the {} did not stop within {}s; killing it",
            self.name,
            STOP_LIMIT.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
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

fn free_port() -> anyhow::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("cannot find a free port")
}

fn start_upstream(exe: &Path, cores: &Cores) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut command = cores.command(cores.servers, exe);
    command.args(["bench", "gateway-process", "upstream"]);
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
    exe: &Path,
    cores: &Cores,
    upstream: SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let addr = free_port()?;
    let mut command = cores.command(cores.servers, exe);
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
        .args(["bench", "gateway-process", "watch", "--"])
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

/// One blocking `GET` on a new connection: status and body.
fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut body = Vec::new();
    loop {
        body.clear();
        let parsed = parse_response(&buf, Some(&mut body))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if let Some(response) = parsed {
            return Ok((response.status, body));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a whole answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the load generator once against `target`: in closed loop, or in open
/// loop at `rate`.
fn run_load(
    exe: &Path,
    cores: &Cores,
    args: &GatewayBenchArgs,
    target: SocketAddr,
    rate: Option<f64>,
    started: &mut Vec<ProcessId>,
) -> anyhow::Result<LoadResult> {
    let mut command = cores.command(cores.load, exe);
    command
        .args(["bench", "gateway-process", "load", "--target"])
        .arg(target.to_string())
        .arg("--connections")
        .arg(args.connections.to_string())
        .arg("--warmup-ms")
        .arg(WARMUP.as_millis().to_string())
        .arg("--duration-ms")
        .arg((args.duration * 1000).to_string());
    if let Some(rate) = rate {
        command.arg("--rate").arg(format!("{rate:.0}"));
    }
    let (tx, rx) = mpsc::channel();
    let mut proc = Proc::spawn("load generator", command, Some(tx))?;
    started.extend(ProcessId::of(proc.child.id()));
    let limit = WARMUP + Duration::from_secs(args.duration) + REQUEST_TIMEOUT * 2 + START_LIMIT;
    let deadline = Instant::now() + limit;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with('{') => {
                let value: Value =
                    serde_json::from_str(&line).context("the load generator's result")?;
                proc.stop();
                return LoadResult::from_json(&value).context("the load generator's result");
            }
            Ok(_) => {}
            Err(_) => {
                proc.check()?;
                bail!(
                    "the load generator gave no result within {}s; its output:\n{}",
                    limit.as_secs(),
                    proc.output()
                );
            }
        }
    }
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
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

/// `12345.6` → `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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
#[derive(Debug, Subcommand)]
pub enum Process {
    /// The upstream: answers GET /api/v1/products/1 with a fixed JSON body on 127.0.0.1, prints `listening on ADDR`
    Upstream,
    /// The load generator: one run against one server on loopback, then one JSON line
    Load(LoadArgs),
    /// Runs a program until standard input closes, then stops it with SIGTERM
    Watch(WatchArgs),
}

/// Options of the load generator.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server: an address on loopback, nothing else
    #[arg(long, value_name = "ADDR", value_parser = parse_loopback)]
    pub target: SocketAddr,
    /// The path every request asks for
    #[arg(long, default_value = PATH, value_parser = parse_path)]
    pub path: String,
    /// Keep-alive connections
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: u16,
    /// Time at the start not measured
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub warmup_ms: u64,
    /// Time measured
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub duration_ms: u64,
    /// Requests per second in open loop; without it, closed loop, as fast as the connections go
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub rate: Option<f64>,
}

/// Options of the watcher.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The program and its arguments
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

fn parse_loopback(value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| format!("{value:?} is not HOST:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err("the load generator only sends to loopback addresses".to_owned());
    }
    Ok(addr)
}

fn parse_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') || value.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
        return Err("a path starts with / and has no spaces or control characters".to_owned());
    }
    Ok(value.to_owned())
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (1.0..=10_000_000.0).contains(&rate) => Ok(rate),
        _ => Err("expected requests per second from 1 to 10000000".to_owned()),
    }
}

/// Runs one of the benchmark's own processes.
pub fn process(command: Process) -> ExitCode {
    let result = match command {
        Process::Upstream => upstream(),
        Process::Load(args) => load(&args),
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

/// The benchmark holds a pipe to every process's standard input; when it
/// closes (the benchmark is done, or was killed) the process ends.
fn exit_when_stdin_closes() {
    let _ = thread::Builder::new().name("stdin-watch".into()).spawn(|| {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        std::process::exit(0);
    });
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

/// One whole response at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Response {
    /// Bytes it takes, body included.
    len: usize,
    status: u16,
    /// The server will close the connection after it.
    close: bool,
}

/// Parses the response at the start of `buf`: `Ok(None)` while it is
/// incomplete. With `body`, its decoded body is appended there (meaningful
/// only when a whole response is found).
fn parse_response(
    buf: &[u8],
    body: Option<&mut Vec<u8>>,
) -> Result<Option<Response>, &'static str> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE {
            Err("response head too large")
        } else {
            Ok(None)
        };
    };
    let mut lines = buf[..head_end].split(|&b| b == b'\n').map(trim_cr);
    let mut words = lines
        .next()
        .ok_or("no status line")?
        .splitn(3, |&b| b == b' ');
    let version = words.next().ok_or("no status line")?;
    if !version.starts_with(b"HTTP/1.") {
        return Err("not an HTTP/1 response");
    }
    let status = words
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or("bad status line")?;
    let mut close = version == b"HTTP/1.0";
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = header(line).ok_or("bad header line")?;
        if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(parse_decimal(value).ok_or("bad content-length")?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = has_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = has_token(value, b"close") || (close && !has_token(value, b"keep-alive"));
        }
    }
    let head_len = head_end + 4;
    let rest = &buf[head_len..];
    let body_len = if chunked {
        match parse_chunked(rest, body)? {
            Some(n) => n,
            None => return Ok(None),
        }
    } else {
        let length = match length {
            Some(n) if n > MAX_MESSAGE => return Err("response body too large"),
            Some(n) => n,
            None if status < 200 || status == 204 || status == 304 => 0,
            None => return Err("response without a length (body until close is not supported)"),
        };
        if rest.len() < length {
            return Ok(None);
        }
        if let Some(body) = body {
            body.extend_from_slice(&rest[..length]);
        }
        length
    };
    Ok(Some(Response {
        len: head_len + body_len,
        status,
        close,
    }))
}

/// Parses a chunked body at the start of `buf`: the bytes it takes, `None`
/// while incomplete.
fn parse_chunked(
    buf: &[u8],
    mut body: Option<&mut Vec<u8>>,
) -> Result<Option<usize>, &'static str> {
    let mut at = 0;
    loop {
        let Some(line_end) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[at..at + line_end];
        let digits = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(line)
            .trim_ascii();
        let size = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .filter(|&n| n <= MAX_MESSAGE)
            .ok_or("bad chunk size")?;
        at += line_end + 2;
        if size == 0 {
            // Trailer fields, if any, then an empty line.
            loop {
                let Some(end) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk without its CRLF");
        }
        if let Some(body) = body.as_deref_mut() {
            body.extend_from_slice(&buf[at..at + size]);
        }
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], line[colon + 1..].trim_ascii()))
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn parse_decimal(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// One keep-alive connection of the load generator.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// The server has not said it closes the connection.
    reusable: bool,
}

impl Conn {
    async fn open(target: SocketAddr) -> io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(target).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 16 * 1024],
            filled: 0,
            reusable: true,
        })
    }

    /// Sends `request` and reads the whole answer; its status.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        loop {
            let parsed = parse_response(&self.buf[..self.filled], None)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if let Some(response) = parsed {
                self.buf.copy_within(response.len..self.filled, 0);
                self.filled -= response.len;
                self.reusable = !response.close;
                return Ok(response.status);
            }
            if self.filled == self.buf.len() {
                if self.buf.len() >= 2 * MAX_MESSAGE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "response too large",
                    ));
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.filled += n;
        }
    }
}

/// Sends one request on `slot`'s connection, opening one first if there is
/// none; the answer's status. A failed or closing connection is dropped.
async fn send(slot: &mut Option<Conn>, target: SocketAddr, request: &[u8]) -> io::Result<u16> {
    let attempt = async {
        let conn = match slot.take() {
            Some(conn) => conn,
            None => Conn::open(target).await?,
        };
        slot.insert(conn).exchange(request).await
    };
    let result = match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
    };
    if result.is_err() || slot.as_ref().is_some_and(|c| !c.reusable) {
        *slot = None;
    }
    result
}

/// What the load generator counts.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    latency: Histogram,
    send_lag: Histogram,
}

impl Tally {
    fn record(&mut self, result: &io::Result<u16>, latency: Duration) {
        match result {
            Ok(status) if (200..300).contains(status) => {
                self.ok += 1;
                self.latency.record(latency);
            }
            Ok(_) => self.non_2xx += 1,
            Err(_) => self.errors += 1,
        }
    }
}

/// The load generator: one run, then its result as one JSON line.
fn load(args: &LoadArgs) -> anyhow::Result<()> {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = tokio::task::LocalSet::new().block_on(&runtime, generate(args))?;
    println!("{}", result.to_json());
    Ok(())
}

/// The intended send time of the `k`-th request of an open-loop run.
fn intended(start: Instant, k: u64, rate: f64) -> Instant {
    start + Duration::from_secs_f64(k as f64 / rate)
}

/// CPU time this thread has used (the load generator runs on one thread).
fn thread_cpu_time() -> Option<Duration> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        text.split_whitespace().next()?.parse().ok()?,
    ))
}

async fn generate(args: &LoadArgs) -> anyhow::Result<LoadResult> {
    let request: Rc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bazaar-bench\r\n\r\n",
        args.path, args.target
    )
    .into_bytes()
    .into();
    // Every connection is open before the clock starts.
    let mut conns = Vec::new();
    for _ in 0..args.connections {
        let conn = Conn::open(args.target)
            .await
            .with_context(|| format!("cannot connect to {}", args.target))?;
        conns.push(Some(conn));
    }
    let tally = Rc::new(RefCell::new(Tally::default()));
    let cpu_before = thread_cpu_time();
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(args.warmup_ms);
    let end = measure_from + Duration::from_millis(args.duration_ms);
    let target = args.target;
    let mut max_backlog = 0;

    match args.rate {
        None => {
            let workers: Vec<_> = conns
                .into_iter()
                .map(|mut slot| {
                    let (request, tally) = (Rc::clone(&request), Rc::clone(&tally));
                    tokio::task::spawn_local(async move {
                        loop {
                            let sent = Instant::now();
                            if sent >= end {
                                break;
                            }
                            let result = send(&mut slot, target, &request).await;
                            let done = Instant::now();
                            if done >= measure_from && done <= end {
                                tally.borrow_mut().record(&result, done - sent);
                            }
                            if result.is_err() {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await?;
            }
        }
        Some(rate) => {
            let queue: Rc<RefCell<VecDeque<Instant>>> = Rc::default();
            let notify = Rc::new(Notify::new());
            let finished = Rc::new(Cell::new(false));
            let workers: Vec<_> = conns
                .into_iter()
                .map(|mut slot| {
                    let (request, tally) = (Rc::clone(&request), Rc::clone(&tally));
                    let (queue, notify) = (Rc::clone(&queue), Rc::clone(&notify));
                    let finished = Rc::clone(&finished);
                    tokio::task::spawn_local(async move {
                        loop {
                            let next = queue.borrow_mut().pop_front();
                            let Some(due) = next else {
                                if finished.get() {
                                    break;
                                }
                                notify.notified().await;
                                continue;
                            };
                            let sent = Instant::now();
                            let result = send(&mut slot, target, &request).await;
                            let done = Instant::now();
                            if due >= measure_from {
                                let mut tally = tally.borrow_mut();
                                tally.send_lag.record(sent - due);
                                tally.record(&result, done - due);
                            }
                        }
                    })
                })
                .collect();
            // The schedule: request k is due at start + k/rate, whatever
            // happened to the ones before. Timers tick in milliseconds, so
            // wait by yielding (which also polls the sockets); this process
            // has its own core.
            for k in 0.. {
                let due = intended(start, k, rate);
                if due >= end {
                    break;
                }
                while Instant::now() < due {
                    tokio::task::yield_now().await;
                }
                let backlog = {
                    let mut queue = queue.borrow_mut();
                    queue.push_back(due);
                    queue.len()
                };
                max_backlog = max_backlog.max(backlog as u64);
                notify.notify_one();
            }
            finished.set(true);
            notify.notify_waiters();
            for worker in workers {
                worker.await?;
            }
        }
    }

    let elapsed = start.elapsed();
    let cpu = cpu_before.zip(thread_cpu_time()).map(|(before, after)| {
        (after.saturating_sub(before)).as_secs_f64() / elapsed.as_secs_f64()
    });
    let tally = tally.borrow();
    Ok(LoadResult {
        ok: tally.ok,
        non_2xx: tally.non_2xx,
        errors: tally.errors,
        window_secs: Duration::from_millis(args.duration_ms).as_secs_f64(),
        latency: tally.latency.summary(),
        send_lag_p99: tally.send_lag.quantile(0.99),
        max_backlog,
        cpu,
    })
}

// ---------------------------------------------------------------------------
// Percentiles.

/// Sub-buckets per power of two: 2^8, so a bucket is at most 1/256 of its
/// values wide.
const SUB_BITS: u32 = 8;
const SUB: u64 = 1 << SUB_BITS;
/// Larger values (over 18 minutes in ns) are recorded as this.
const HIST_MAX: u64 = (1 << 40) - 1;

/// A latency histogram in nanoseconds, log-linear like HdrHistogram: exact
/// below 512 ns, and above that no bucket is wider than 1/256 of its values,
/// so a percentile is off by at most 0.4 %. Its size (66 KiB) does not grow
/// with the number of samples.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; bucket_of(HIST_MAX) + 1],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// The bucket `ns` falls in. Below 2·SUB one bucket per value; above, the
/// top SUB_BITS + 1 bits of the value pick it.
fn bucket_of(ns: u64) -> usize {
    let v = ns.min(HIST_MAX);
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    ((u64::from(shift) + 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The smallest and largest value of bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let shift = i / SUB - 1;
    let low = (SUB + i % SUB) << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        self.record_ns(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds one sample in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    /// How many samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.5 for the median): the largest value of
    /// the bucket that holds the ⌈q·n⌉-th smallest sample, at most the
    /// largest sample; 0 without samples.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_bounds(index).1.min(self.max);
            }
        }
        self.max
    }

    /// The mean; 0 without samples.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.total)).unwrap_or(u64::MAX)
        }
    }

    /// The percentiles the report shows.
    pub fn summary(&self) -> Latency {
        Latency {
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: self.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lies_in_its_bucket_and_buckets_are_narrow() {
        let mut values: Vec<u64> = (0..5000).collect();
        let mut v = 5000u64;
        while v < HIST_MAX {
            values.extend([v - 1, v, v + 1, v + v / 3]);
            v = v * 17 / 10;
        }
        for v in values.into_iter().filter(|&v| v <= HIST_MAX) {
            let (low, high) = bucket_bounds(bucket_of(v));
            assert!(low <= v && v <= high, "{v} not in [{low}, {high}]");
            assert!(
                (high - low) as f64 <= low as f64 / SUB as f64,
                "bucket of {v} too wide"
            );
        }
        // Buckets follow each other without gaps.
        for index in 1..=bucket_of(HIST_MAX) {
            assert_eq!(bucket_bounds(index - 1).1 + 1, bucket_bounds(index).0);
        }
        assert_eq!(bucket_of(u64::MAX), bucket_of(HIST_MAX));
    }

    #[test]
    fn quantiles_of_small_values_are_exact() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.mean(), 0);
        for v in (1..=100).rev() {
            h.record_ns(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(0.999), 100);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(h.mean(), 50);
    }

    #[test]
    fn quantiles_of_large_values_are_within_a_bucket() {
        let mut h = Histogram::default();
        // 990 answers at ~40 µs, 9 at ~2 ms, one stall of 1 s.
        for i in 0..990 {
            h.record(Duration::from_nanos(40_000 + i));
        }
        for _ in 0..9 {
            h.record(Duration::from_millis(2));
        }
        h.record(Duration::from_secs(1));
        let s = h.summary();
        let close = |got: u64, want: u64| {
            assert!(
                got >= want && (got - want) as f64 <= want as f64 / 256.0,
                "{got} vs {want}"
            );
        };
        close(s.p50, 40_499);
        close(s.p90, 40_899);
        close(s.p99, 40_989); // the 990th of 1000
        close(s.p999, 2_000_000);
        assert_eq!(s.max, 1_000_000_000);
        assert_eq!(
            s.mean,
            (990 * 40_000 + 989 * 990 / 2 + 18_000_000 + 1_000_000_000) / 1000
        );
    }

    #[test]
    fn open_loop_schedule_does_not_drift() {
        let start = Instant::now();
        assert_eq!(intended(start, 0, 20_000.0), start);
        assert_eq!(
            intended(start, 20_000, 20_000.0),
            start + Duration::from_secs(1)
        );
        assert_eq!(intended(start, 3, 1000.0), start + Duration::from_millis(3));
    }

    #[test]
    fn responses_with_length_chunks_and_pipelining() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut body = Vec::new();
        assert_eq!(
            parse_response(one, Some(&mut body)),
            Ok(Some(Response {
                len: one.len(),
                status: 200,
                close: false
            }))
        );
        assert_eq!(body, b"hello");
        assert_eq!(parse_response(&one[..one.len() - 1], None), Ok(None));
        assert_eq!(parse_response(&one[..10], None), Ok(None));

        let two = [
            &one[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        ]
        .concat();
        assert_eq!(parse_response(&two, None).unwrap().unwrap().len, one.len());

        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut body = Vec::new();
        let r = parse_response(chunked, Some(&mut body)).unwrap().unwrap();
        assert_eq!((r.len, r.status, r.close), (chunked.len(), 200, true));
        assert_eq!(body, b"abcde");
        for cut in 1..chunked.len() {
            assert_eq!(parse_response(&chunked[..cut], None), Ok(None), "cut {cut}");
        }

        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n", None).is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n", None).is_err());
        let old = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n", None).unwrap();
        assert!(old.unwrap().close);
    }

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
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list("x"), None);
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

    #[test]
    fn the_load_generators_result_survives_its_trip() {
        let result = LoadResult {
            ok: 10,
            non_2xx: 1,
            errors: 2,
            window_secs: 5.0,
            latency: Latency {
                p50: 1,
                p90: 2,
                p99: 3,
                p999: 4,
                max: 5,
                mean: 2,
            },
            send_lag_p99: 7,
            max_backlog: 3,
            cpu: Some(0.5),
        };
        assert_eq!(LoadResult::from_json(&result.to_json()).unwrap(), result);
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

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
