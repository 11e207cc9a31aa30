//! Starts the real fleet through the launcher (`bazaar up`) on a free port
//! and a temporary data directory, and stops it when dropped.
//!
//! Output of the fleet is captured and shown in panic messages; set
//! `TEST_LOG=1` to see it as it comes. With
//! `BAZAAR_SYSTEST_BACKENDS=external` the fleet uses the PostgreSQL, NATS and
//! Redis named by `BAZAAR_TEST_POSTGRES_URL`, `BAZAAR_TEST_NATS_URL` and
//! `BAZAAR_TEST_REDIS_URL`, with a database prefix of its own.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::procfs::{self, ProcessId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use tempfile::TempDir;

/// The binary under test.
pub const BAZAAR: &str = env!("CARGO_BIN_EXE_bazaar");
/// How long a fleet may take to print `ready:`; generous, CI is small.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a fleet may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound for conditions polled by tests.
pub const EVENTUALLY: Duration = Duration::from_secs(60);
/// Lines of output kept for panic messages.
const KEPT_LINES: usize = 400;

/// `/api/v1/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// Every service the gateway knows.
    pub services: Vec<ServiceStatus>,
}

/// One service in the status.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceStatus {
    /// Its name.
    pub name: String,
    /// Its instances.
    pub instances: Vec<InstanceStatus>,
}

/// One instance in the status.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceStatus {
    /// Its internal base URL.
    pub url: String,
    /// Whether it answered `/readyz` with 200.
    pub healthy: bool,
    /// Its instance name, when it answered.
    #[serde(default)]
    pub instance: Option<String>,
    /// Its pid, when it answered.
    #[serde(default)]
    pub pid: Option<u32>,
    /// How often the launcher restarted it, when it answered.
    #[serde(default)]
    pub restarts: Option<u32>,
}

impl Status {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every instance of every service.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &InstanceStatus)> {
        self.services
            .iter()
            .flat_map(|s| s.instances.iter().map(move |i| (s.name.as_str(), i)))
    }

    /// The instance called `name` (e.g. `gateway-1`).
    pub fn instance(&self, name: &str) -> Option<&InstanceStatus> {
        self.instances()
            .map(|(_, i)| i)
            .find(|i| i.instance.as_deref() == Some(name))
    }
}

/// A running fleet.
pub struct Fleet {
    launcher: Child,
    base_url: String,
    client: reqwest::Client,
    output: Arc<Mutex<VecDeque<String>>>,
    ready: Arc<OnceLock<String>>,
    /// Children seen so far; killed on drop if they outlive a failed test.
    seen_children: Mutex<Vec<ProcessId>>,
    _data_dir: TempDir,
}

impl Fleet {
    /// Starts the default fleet and waits until it is ready.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the fleet with extra `bazaar up` arguments and waits until it
    /// is ready.
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[]).await
    }

    /// As [`Fleet::start_with`], with more variables for the launcher,
    /// which passes `BAZAAR_*` ones on to every process.
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let port = free_port();
        let mut command = Command::new(BAZAAR);
        command
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--port")
            .arg(port.to_string())
            .args(extra)
            .args(external_backends())
            .envs(env.iter().copied())
            // Fleets sharing one Redis must not share one rate budget.
            .env(
                "BAZAAR_GATEWAY_RATE_PREFIX",
                format!("systest-{port}-{}", std::process::id()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut launcher = command.spawn().expect("start `bazaar up`");
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let ready = Arc::new(OnceLock::new());
        capture(
            launcher.stdout.take().expect("stdout"),
            "",
            &output,
            Some(&ready),
        );
        capture(
            launcher.stderr.take().expect("stderr"),
            "stderr: ",
            &output,
            None,
        );
        let mut fleet = Self {
            launcher,
            base_url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            output,
            ready,
            seen_children: Mutex::new(Vec::new()),
            _data_dir: data_dir,
        };
        fleet.wait_ready().await;
        fleet
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(url) = self.ready.get() {
                assert_eq!(url, &self.base_url, "the ready line names another URL");
                return;
            }
            if let Ok(Some(status)) = self.launcher.try_wait() {
                panic!(
                    "`bazaar up` exited with {status} before it was ready; its output:\n{}",
                    self.output()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "`bazaar up` printed no ready line within {}s; its output:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The fleet's data directory (`bazaar up --data-dir`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// The gateway's public URL, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// An HTTP client with a 10 s timeout.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The launcher's pid.
    pub fn pid(&self) -> u32 {
        self.launcher.id()
    }

    /// What the fleet printed so far (the last lines).
    pub fn output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// `GET /api/v1/status` through the gateway.
    pub async fn status(&self) -> Result<Status, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/status", self.base_url))
            .send()
            .await
            .map_err(|e| format!("GET /api/v1/status: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET /api/v1/status answered {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| format!("GET /api/v1/status: bad body: {e}"))
    }

    /// Polls the status until `condition` holds; panics with the last
    /// status and the fleet's output after [`EVENTUALLY`].
    pub async fn wait_for_status(&self, what: &str, condition: impl Fn(&Status) -> bool) -> Status {
        let started = Instant::now();
        loop {
            let last = match self.status().await {
                Ok(status) if condition(&status) => return status,
                Ok(status) => format!("{status:#?}"),
                Err(e) => e,
            };
            if started.elapsed() > EVENTUALLY {
                panic!(
                    "{what}: not within {}s; last status: {last}\nfleet output:\n{}",
                    EVENTUALLY.as_secs(),
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The launcher's living child processes.
    pub fn children(&self) -> Vec<ProcessId> {
        let children: Vec<ProcessId> = procfs::children_of(self.pid())
            .into_iter()
            .map(ProcessId::from)
            .collect();
        let mut seen = self.seen_children.lock().unwrap_or_else(|e| e.into_inner());
        for c in &children {
            if !seen.contains(c) {
                seen.push(*c);
            }
        }
        children
    }

    /// Sends `signal` to the process of `instance` (e.g. `catalog-1`) once
    /// the launcher has one running (within 20 s); its pid, or `None`.
    pub async fn signal_instance(&self, instance: &str, signal: Signal) -> Option<u32> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let victim = self.children().into_iter().find(|child| {
                procfs::env_var(child.pid, "BAZAAR_INSTANCE").as_deref() == Some(instance)
            });
            if let Some(victim) = victim {
                kill(Pid::from_raw(victim.pid as i32), signal).ok()?;
                return Some(victim.pid);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Sends `signal` to the launcher.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signal the launcher");
    }

    /// Waits for the launcher to exit; panics with its output if it does not
    /// within `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.launcher.try_wait().expect("wait for the launcher") {
                return status;
            }
            if started.elapsed() > limit {
                panic!(
                    "the launcher did not exit within {}s; its output:\n{}",
                    limit.as_secs(),
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.launcher.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.launcher.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
        // A failed test may leave children behind; never leak them.
        let seen = self.seen_children.lock().unwrap_or_else(|e| e.into_inner());
        for child in seen.iter().filter(|c| c.is_running()) {
            let _ = kill(Pid::from_raw(child.pid as i32), Signal::SIGKILL);
        }
    }
}

/// A port nobody listens on right now, for a fleet's public port.
///
/// Taken below the kernel's ephemeral range (Linux: 32768 and up), where
/// every fleet's launcher finds its services' ports by binding port 0: a
/// port handed out there and released until `bazaar up` binds it could be
/// taken by another test's fleet in the meantime. Each test process walks
/// its own stretch of the range, so parallel runs rarely meet, and a port
/// somebody holds is skipped.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    for _ in 0..COUNT {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        let port = u16::try_from(FIRST + offset).expect("a port number");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT);
}

/// Polls `check` every 100 ms until it returns something or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `bazaar ARGS` that is expected to exit by itself, with a bound.
pub fn run_bazaar(args: &[&str], env: &[(&str, &str)]) -> Output {
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let mut child = Command::new(BAZAAR)
        .args(args)
        .envs(env.iter().copied())
        // Whatever it writes, keep it out of the working directory.
        .env("BAZAAR_DATA_DIR", data_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bazaar");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`bazaar {}` did not exit within 30s", args.join(" "));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

/// Copies the lines of `from` into `into` (and to stderr with `TEST_LOG=1`),
/// noting the `ready:` URL.
fn capture(
    from: impl Read + Send + 'static,
    prefix: &'static str,
    into: &Arc<Mutex<VecDeque<String>>>,
    ready: Option<&Arc<OnceLock<String>>>,
) {
    let into = Arc::clone(into);
    let ready = ready.cloned();
    let echo = std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let (Some(ready), Some(url)) = (&ready, line.strip_prefix("ready: ")) {
                let _ = ready.set(url.trim().to_owned());
            }
            if echo {
                eprintln!("{prefix}{line}");
            }
            let mut lines = into.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back(format!("{prefix}{line}"));
        }
    });
}

/// The `up` arguments for external backends, when asked for.
fn external_backends() -> Vec<String> {
    if std::env::var("BAZAAR_SYSTEST_BACKENDS").as_deref() != Ok("external") {
        return Vec::new();
    }
    let required = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("BAZAAR_SYSTEST_BACKENDS=external needs {name}"))
    };
    let mut postgres = url::Url::parse(&required("BAZAAR_TEST_POSTGRES_URL"))
        .unwrap_or_else(|e| panic!("BAZAAR_TEST_POSTGRES_URL is not a URL: {e}"));
    // Each fleet its own databases, so fleets and reruns never share state.
    static FLEETS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "systest_{}_{}_{nanos:x}",
        std::process::id(),
        FLEETS.fetch_add(1, Ordering::Relaxed)
    );
    postgres.set_path(&format!("/{name}"));
    // And its own JetStream stream (the URL's path names it).
    let mut nats = url::Url::parse(&required("BAZAAR_TEST_NATS_URL"))
        .unwrap_or_else(|e| panic!("BAZAAR_TEST_NATS_URL is not a URL: {e}"));
    nats.set_path(&format!("/{}", name.to_uppercase()));
    vec![
        "--postgres".to_owned(),
        postgres.to_string(),
        "--nats".to_owned(),
        nats.to_string(),
        "--redis".to_owned(),
        required("BAZAAR_TEST_REDIS_URL"),
    ]
}
