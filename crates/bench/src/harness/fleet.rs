//! The fleet a scenario measures, started the way a person (and the system
//! tests' harness) starts it: the `bazaar` binary's `bazaar up` on a data
//! directory and a free port, its output read line by line. One way to
//! start it, wait for it and stop it, for every scenario.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::proc::{self, ProcessId};
use super::process::{Cores, free_port, keep_tail};

/// How long the fleet may take to print `ready:`.
pub const READY_LIMIT: Duration = Duration::from_secs(120);
/// How long the demo seed may take once the fleet is ready.
pub const SEED_LIMIT: Duration = Duration::from_secs(120);
/// How long the fleet may take to stop after SIGTERM.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The `bazaar` binary the scenarios start: `--bazaar PATH` (or
/// `BAZAAR_BIN`) when given, else the `bazaar` next to this program (the
/// same target directory after `cargo build -p bazaar -p bazaar-bench`).
pub fn bazaar_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        if !path.is_file() {
            bail!("no bazaar binary at {} (--bazaar)", path.display());
        }
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("cannot find this program's own path")?;
    let beside = me.with_file_name("bazaar");
    if beside.is_file() {
        return Ok(beside);
    }
    bail!(
        "no bazaar binary beside {}: build it (cargo build --release -p bazaar), \
         or name it with --bazaar PATH or BAZAAR_BIN",
        me.display()
    )
}

/// How a scenario wants the fleet started.
#[derive(Debug, Default)]
pub struct Launch<'a> {
    /// Pin the launcher (and so every service process) to the servers' core.
    pub cores: Option<&'a Cores>,
    /// Keep the fleet apart from the caller's settings: none of its
    /// `BAZAAR_*` or `OTEL_*` variables (no backends, exporter or log
    /// settings), warn-level logs and the gateway's rate limit off.
    pub isolated: bool,
    /// More arguments of `bazaar up`, e.g. `--no-seed`.
    pub args: Vec<String>,
    /// More variables for every process of the fleet.
    pub env: &'a [(String, String)],
}

/// A fleet a scenario started. Dropping it kills the launcher (and so,
/// through their standard input, its processes).
pub struct Fleet {
    launcher: Child,
    /// When the launcher was spawned.
    pub started: Instant,
    /// The gateway's public address.
    pub public: SocketAddr,
    tail: Arc<Mutex<VecDeque<String>>>,
    lines: Option<mpsc::Receiver<String>>,
    processes: Vec<ProcessId>,
}

impl Fleet {
    /// Spawns `bazaar up --data-dir DATA_DIR --port <free port>` as
    /// `launch` says; [`Fleet::wait_ready`] waits for it.
    pub fn start(bazaar: &Path, data_dir: &Path, launch: Launch<'_>) -> anyhow::Result<Self> {
        let public = free_port()?;
        let mut command = match launch.cores {
            Some(cores) => cores.command(cores.servers, bazaar),
            None => Command::new(bazaar),
        };
        if launch.isolated {
            for (key, _) in std::env::vars_os() {
                let name = key.to_string_lossy();
                if name.starts_with("BAZAAR_") || name.starts_with("OTEL_") {
                    command.env_remove(&key);
                }
            }
            command
                .env("BAZAAR_LOG", "warn")
                .env("BAZAAR_GATEWAY_RATE_LIMIT", "0");
        }
        let started = Instant::now();
        let mut launcher = command
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--port")
            .arg(public.port().to_string())
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{} up`", bazaar.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines) = mpsc::channel();
        if let Some(stdout) = launcher.stdout.take() {
            keep_tail(stdout, Arc::clone(&tail), Some(lines_tx));
        }
        if let Some(stderr) = launcher.stderr.take() {
            keep_tail(stderr, Arc::clone(&tail), None);
        }
        Ok(Self {
            launcher,
            started,
            public,
            tail,
            lines: Some(lines),
            processes: Vec::new(),
        })
    }

    /// Starts `bazaar up` with the demo catalog, pinned to the servers'
    /// core and isolated from the caller's settings; returns once it is
    /// ready and seeded.
    pub fn start_seeded(bazaar: &Path, cores: &Cores, data_dir: &Path) -> anyhow::Result<Self> {
        let launch = Launch {
            cores: Some(cores),
            isolated: true,
            ..Launch::default()
        };
        let mut fleet = Self::start(bazaar, data_dir, launch)?;
        fleet.wait_ready()?;
        fleet.wait_seeded()?;
        Ok(fleet)
    }

    /// The launcher's process id.
    pub fn pid(&self) -> u32 {
        self.launcher.id()
    }

    /// The launcher and the processes it had started when it was ready.
    pub fn processes(&self) -> &[ProcessId] {
        &self.processes
    }

    /// The last lines the fleet printed.
    pub fn output(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<String>>().join("\n")
    }

    /// Waits up to `limit` for a line of standard output that `wanted`
    /// accepts, and returns it; `what` names it in the error.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let lines = self
            .lines
            .as_ref()
            .context("the fleet's output is read elsewhere")?;
        let deadline = Instant::now() + limit;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(_) => {}
                Err(_) => {
                    let status = self.launcher.try_wait().ok().flatten();
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

    /// Waits for the `ready:` line, then notes the launcher and its
    /// processes (see [`Fleet::processes`]).
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.wait_for_line("`ready:` line", READY_LIMIT, |line| {
            line.starts_with("ready: ")
        })?;
        let pid = self.pid();
        self.processes = ProcessId::of(pid).into_iter().collect();
        self.processes.extend(proc::children_of(pid));
        Ok(())
    }

    /// Waits for the end of the demo seed (`bazaar up` without
    /// `--no-seed`); fails if it failed.
    pub fn wait_seeded(&mut self) -> anyhow::Result<()> {
        let seeded = self.wait_for_line("end of the demo seed", SEED_LIMIT, |line| {
            line.contains("demo catalog seeded") || line.contains("cannot seed the demo catalog")
        })?;
        if !seeded.contains("demo catalog seeded") {
            bail!("the demo seed failed: {seeded}");
        }
        Ok(())
    }

    /// Hands the rest of the fleet's standard output to the caller (e.g. to
    /// tally its log); [`Fleet::wait_for_line`] fails afterwards.
    pub fn take_lines(&mut self) -> Option<mpsc::Receiver<String>> {
        self.lines.take()
    }

    /// CPU ticks so far of the launcher (`launcher`) and of each of its
    /// processes, by instance name.
    pub fn cpu_ticks(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let pid = self.pid();
        if let Some(t) = proc::process_ticks(pid) {
            out.insert("launcher".to_owned(), t);
        }
        for child in proc::children_of(pid) {
            if let Some(t) = proc::process_ticks(child.pid) {
                *out.entry(proc::instance_name(child.pid)).or_default() += t;
            }
        }
        out
    }

    /// Stops the fleet with SIGTERM and waits for the launcher; how long
    /// it took.
    pub fn stop(&mut self) -> anyhow::Result<Duration> {
        let stopping = Instant::now();
        kill(Pid::from_raw(i32::try_from(self.pid())?), Signal::SIGTERM)
            .context("cannot signal the launcher")?;
        let status = wait_for_exit(&mut self.launcher, STOP_LIMIT)?;
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

    /// Stops the fleet, then SIGKILLs whatever of its processes and of
    /// `also` (e.g. load generators) still runs: the stop's outcome, and
    /// how many were left running.
    pub fn stop_and_reap(mut self, also: &[ProcessId]) -> (anyhow::Result<Duration>, usize) {
        let stopped = self.stop();
        let mut everything = self.processes.clone();
        everything.extend(also.iter().filter(|p| !self.processes.contains(p)));
        (stopped, reap(&everything))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
    }
}

/// SIGKILLs those of `processes` still running; how many there were.
pub fn reap(processes: &[ProcessId]) -> usize {
    let left: Vec<&ProcessId> = processes.iter().filter(|p| p.is_running()).collect();
    for process in &left {
        if let Ok(pid) = i32::try_from(process.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    left.len()
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
