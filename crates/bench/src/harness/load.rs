//! The load generator the benchmarks share, and how a scenario runs it and
//! reads its result.
//!
//! The load generator is this program again (`bazaar-bench gateway-process
//! load`), one process on one core, one thread: over keep-alive HTTP/1.1
//! connections it sends requests either as fast as they go (closed loop) or
//! at a fixed rate (open loop). In open loop every request has an intended
//! send time and its latency counts from then, so a server that stalls
//! cannot hide the stall by delaying the requests that would have measured
//! it (coordinated omission). It prints its result as one JSON line.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::harness::histogram::{Histogram, Latency};
use crate::harness::proc::ProcessId;
use crate::harness::process::{Cores, Proc, exit_when_stdin_closes};

/// Not measured at the start of every load run: connections and caches settle.
pub const WARMUP: Duration = Duration::from_secs(1);
/// A request not answered within this is an error; its connection is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a server may take to give its first right answer.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// Largest response head or body the load generator takes.
pub const MAX_MESSAGE: usize = 1 << 20;

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
    pub fn to_json(&self) -> Value {
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

    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
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

/// One blocking `GET` on a new connection: status and body.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
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

/// One run of the load generator.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server, on loopback.
    pub target: SocketAddr,
    /// The paths asked for, in turn.
    pub paths: Vec<String>,
    /// Keep-alive connections.
    pub connections: u16,
    /// Not measured at the start.
    pub warmup: Duration,
    /// Measured.
    pub duration: Duration,
    /// Open loop at this many requests/s; `None`: closed loop.
    pub rate: Option<f64>,
}

/// Runs the load generator once, as its own process on the load
/// generator's core; the process is added to `started`.
pub fn run_load(
    exe: &Path,
    cores: &Cores,
    spec: &LoadSpec,
    started: &mut Vec<ProcessId>,
) -> anyhow::Result<LoadResult> {
    run_load_with_headers(exe, cores, spec, &[], started)
}

/// [`run_load`], every request also carrying `headers` (`Name: value`,
/// e.g. a `Cookie`). They go on the load generator's command line, so
/// other local users can read them: only for a benchmark's own accounts.
pub fn run_load_with_headers(
    exe: &Path,
    cores: &Cores,
    spec: &LoadSpec,
    headers: &[String],
    started: &mut Vec<ProcessId>,
) -> anyhow::Result<LoadResult> {
    let mut command = cores.command(cores.load, exe);
    command
        .args(["gateway-process", "load", "--target"])
        .arg(spec.target.to_string())
        .arg("--connections")
        .arg(spec.connections.to_string())
        .arg("--warmup-ms")
        .arg(spec.warmup.as_millis().to_string())
        .arg("--duration-ms")
        .arg(spec.duration.as_millis().to_string());
    for path in &spec.paths {
        command.arg("--path").arg(path);
    }
    for header in headers {
        command.arg("--header").arg(header);
    }
    if let Some(rate) = spec.rate {
        command.arg("--rate").arg(format!("{rate:.0}"));
    }
    let (tx, rx) = mpsc::channel();
    let mut proc = Proc::spawn("load generator", command, Some(tx))?;
    started.extend(ProcessId::of(proc.child.id()));
    let limit = spec.warmup + spec.duration + REQUEST_TIMEOUT * 2 + START_LIMIT;
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

/// Options of the load generator.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server: an address on loopback, nothing else
    #[arg(long, value_name = "ADDR", value_parser = parse_loopback)]
    pub target: SocketAddr,
    /// The path the requests ask for; repeated, the paths are asked for in turn
    #[arg(long = "path", value_name = "PATH", required = true, value_parser = parse_path)]
    pub paths: Vec<String>,
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
    /// A header every request carries, `Name: value` (e.g. a Cookie); repeatable
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<String>,
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

/// `Name: value`: a token for a name, no control characters (so no CR or
/// LF that would end the request's head), normalised to `Name: value`.
pub fn parse_header(value: &str) -> Result<String, String> {
    let (name, v) = value
        .split_once(':')
        .ok_or("expected NAME: VALUE, e.g. \"Cookie: a=b\"")?;
    let name = name.trim();
    let v = v.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a header value has no control characters".to_owned());
    }
    Ok(format!("{name}: {v}"))
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (1.0..=10_000_000.0).contains(&rate) => Ok(rate),
        _ => Err("expected requests per second from 1 to 10000000".to_owned()),
    }
}

/// One whole response at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Bytes it takes, body included.
    pub len: usize,
    /// Its status code.
    pub status: u16,
    /// The server will close the connection after it.
    pub close: bool,
}

/// Parses the response at the start of `buf`: `Ok(None)` while it is
/// incomplete. With `body`, its decoded body is appended there (meaningful
/// only when a whole response is found).
pub fn parse_response(
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

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A line without its trailing CR.
pub fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `Name: value` → name and trimmed value.
pub fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], line[colon + 1..].trim_ascii()))
}

/// Whether a comma-separated header value holds `token` (any case).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A decimal number of bytes.
pub fn parse_decimal(value: &[u8]) -> Option<usize> {
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
pub fn load(args: &LoadArgs) -> anyhow::Result<()> {
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

/// The requests of one run, handed out in turn.
struct Requests {
    all: Vec<Vec<u8>>,
    next: Cell<usize>,
}

impl Requests {
    fn new(paths: &[String], target: SocketAddr, headers: &[String]) -> Self {
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let all = paths
            .iter()
            .map(|path| {
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: bazaar-bench\r\n{extra}\r\n"
                )
                .into_bytes()
            })
            .collect();
        Self {
            all,
            next: Cell::new(0),
        }
    }

    /// The next request; the first again after the last.
    fn next(&self) -> &[u8] {
        let i = self.next.get();
        self.next.set((i + 1) % self.all.len());
        &self.all[i]
    }
}

async fn generate(args: &LoadArgs) -> anyhow::Result<LoadResult> {
    if args.paths.is_empty() {
        bail!("no path to ask for");
    }
    let requests: Rc<Requests> = Rc::new(Requests::new(&args.paths, args.target, &args.headers));
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
                    let (requests, tally) = (Rc::clone(&requests), Rc::clone(&tally));
                    tokio::task::spawn_local(async move {
                        loop {
                            let sent = Instant::now();
                            if sent >= end {
                                break;
                            }
                            let result = send(&mut slot, target, requests.next()).await;
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
                    let (requests, tally) = (Rc::clone(&requests), Rc::clone(&tally));
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
                            let result = send(&mut slot, target, requests.next()).await;
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
// Judging a run.

/// Below this share of its core, the load generator (pinned alone to it and
/// busy-waiting for its next send) was not alone there: the run was
/// disturbed by other work on the machine.
pub const MIN_GENERATOR_CPU: f64 = 0.9;
/// Above this share of the fleet's core used by processes outside the fleet,
/// a run was disturbed by other work on the machine.
pub const MAX_OTHER_WORK: f64 = 0.05;
/// How many times a disturbed run is repeated: a bad step, or a run at half
/// rate.
pub const RETRIES: usize = 2;

/// Whether a run was disturbed: the pinned load generator had less than
/// [`MIN_GENERATOR_CPU`] of its core, or processes outside the fleet used
/// more than [`MAX_OTHER_WORK`] of the fleet's. Unknown (false) when not
/// pinned.
pub fn disturbed(result: &LoadResult, pinned: bool, other_work: Option<f64>) -> bool {
    pinned
        && (result.cpu.is_some_and(|cpu| cpu < MIN_GENERATOR_CPU)
            || other_work.is_some_and(|share| share > MAX_OTHER_WORK))
}

/// `GET path` on `addr`, which must answer 200 with JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let (status, body) = get(addr, path).with_context(|| format!("GET {path}"))?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn requests_take_turns() {
        let paths = ["/a".to_owned(), "/b".to_owned()];
        let requests = Requests::new(&paths, "127.0.0.1:80".parse().unwrap(), &[]);
        let firsts: Vec<String> = (0..5)
            .map(|_| {
                let request = String::from_utf8_lossy(requests.next()).into_owned();
                request.lines().next().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(
            firsts,
            [
                "GET /a HTTP/1.1",
                "GET /b HTTP/1.1",
                "GET /a HTTP/1.1",
                "GET /b HTTP/1.1",
                "GET /a HTTP/1.1"
            ]
        );
        assert!(String::from_utf8_lossy(requests.next()).contains("Host: 127.0.0.1:80\r\n"));
        let cookie = parse_header(" Cookie :  a=b; c=d ").unwrap();
        assert_eq!(cookie, "Cookie: a=b; c=d");
        let requests = Requests::new(&paths[..1], "127.0.0.1:80".parse().unwrap(), &[cookie]);
        let request = String::from_utf8_lossy(requests.next()).into_owned();
        assert!(
            request.ends_with("User-Agent: bazaar-bench\r\nCookie: a=b; c=d\r\n\r\n"),
            "{request:?}"
        );
        assert!(parse_header("Cookie: a\r\nX: y").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("no colon").is_err());
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
}
