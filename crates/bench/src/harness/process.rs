//! The processes a benchmark starts: pinned to cores, their output kept to
//! explain a failure, stopped by closing their standard input.

use std::collections::VecDeque;
use std::io::{self, BufRead as _, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a process may take to stop once its standard input closes.
pub const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Lines of a process's output kept to explain a failure.
pub const TAIL_LINES: usize = 200;

/// Which cores the processes run on: the load generator on one, everything
/// else on another, when `taskset` and two cores are there.
#[derive(Debug, Clone)]
pub struct Cores {
    taskset: Option<PathBuf>,
    /// The core of the servers.
    pub servers: Option<usize>,
    /// The core of the load generator.
    pub load: Option<usize>,
    /// What was pinned where, for the report.
    pub note: String,
}

impl Cores {
    /// Pins the load generator to the second allowed core and the servers
    /// (`servers` names them in the note) to the first.
    pub fn detect(servers_are: &str) -> Self {
        let allowed = super::proc::allowed_cpus();
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
                    "load generator alone on core {load}; {servers_are} share core {servers} (taskset)"
                ),
            },
            (Some(_), _) => unpinned("fewer than two cores"),
        }
    }

    /// `program`, under `taskset -c CORE` when pinning.
    pub fn command(&self, core: Option<usize>, program: &Path) -> Command {
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

/// `name` on `PATH` or in the sbin directories, which a user's `PATH` may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// standard input, which every one of them takes as the sign to exit, and
/// kills it if it lingers.
pub struct Proc {
    /// What it is, for messages.
    pub name: &'static str,
    /// The process.
    pub child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `command`; its standard output's lines also go to `lines`.
    pub fn spawn(
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
    pub fn output(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Fails, with its last output, if it has exited.
    pub fn check(&mut self) -> anyhow::Result<()> {
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
    pub fn stop(&mut self) {
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
pub fn keep_tail(
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

/// A free port on 127.0.0.1, at the time of asking.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("cannot find a free port")
}

/// The benchmark holds a pipe to every process's standard input; when it
/// closes (the benchmark is done, or was killed) the process ends.
pub fn exit_when_stdin_closes() {
    let _ = thread::Builder::new().name("stdin-watch".into()).spawn(|| {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        std::process::exit(0);
    });
}
