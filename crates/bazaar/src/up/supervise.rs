//! Keeps one instance running: starts it, copies its output, restarts it
//! with backoff when it exits on its own, and stops it when the fleet stops.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::output::Output;
use super::plan::{Instance, launcher_owned};

/// What the launcher wants from its processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Keep them running.
    Run,
    /// SIGTERM them and wait.
    Stop,
    /// SIGKILL whatever still runs.
    Kill,
}

/// Restart delays: 100 ms doubling to 10 s, back to 100 ms once a process
/// has stayed up 30 s. A crash loop costs little; a rare crash restarts fast.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first delay.
    pub const INITIAL: Duration = Duration::from_millis(100);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(10);
    /// Uptime after which a process counts as healthy again.
    pub const RESET_AFTER: Duration = Duration::from_secs(30);

    /// Starts at [`Self::INITIAL`].
    pub fn new() -> Self {
        Self {
            next: Self::INITIAL,
        }
    }

    /// The delay before restarting a process that ran for `uptime`.
    pub fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= Self::RESET_AFTER {
            self.next = Self::INITIAL;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `instance` until the phase leaves [`Phase::Run`], then stops it.
pub async fn supervise(
    exe: Arc<Path>,
    instance: Instance,
    output: Arc<Output>,
    mut phase: watch::Receiver<Phase>,
) {
    let color = Output::service_color(instance.service_index);
    let mut backoff = Backoff::new();
    // Processes of this instance started before the next one: its
    // `BAZAAR_RESTARTS`.
    let mut restarts: u32 = 0;
    loop {
        if *phase.borrow() != Phase::Run {
            return;
        }
        let started = Instant::now();
        let delay = match command(&exe, &instance, restarts).spawn() {
            Err(e) => {
                let delay = backoff.after_exit(Duration::ZERO);
                output.launcher(&format!(
                    "{}: cannot start: {e}; retrying in {delay:?}",
                    instance.name
                ));
                delay
            }
            Ok(mut child) => {
                let pid = child.id().unwrap_or_default();
                let nth = match restarts {
                    0 => String::new(),
                    n => format!(", restart {n}"),
                };
                restarts = restarts.saturating_add(1);
                // Held, never written: when the launcher dies, even by
                // SIGKILL, the kernel closes it and the child shuts down.
                let stdin = child.stdin.take();
                let pumps = pump_output(&mut child, &output, &instance.name, color);
                output.launcher(&format!(
                    "started {} (pid {pid}{nth}) on http://{}",
                    instance.name, instance.addr
                ));
                let exited = tokio::select! {
                    status = child.wait() => Some(status),
                    _ = phase.wait_for(|p| *p != Phase::Run) => None,
                };
                let status = match exited {
                    Some(status) => status,
                    None => stop(&mut child, pid, &mut phase).await,
                };
                drop(stdin);
                // Let the last lines out before saying it is gone.
                let _ = timeout(Duration::from_secs(2), pumps).await;
                let status = status.map_or_else(|e| format!("unknown status: {e}"), describe);
                if *phase.borrow() != Phase::Run {
                    output.launcher(&format!("{} stopped ({status})", instance.name));
                    return;
                }
                let delay = backoff.after_exit(started.elapsed());
                output.launcher(&format!(
                    "{} (pid {pid}) exited unexpectedly ({status}); restarting in {delay:?}",
                    instance.name
                ));
                delay
            }
        };
        tokio::select! {
            () = sleep(delay) => {}
            _ = phase.wait_for(|p| *p != Phase::Run) => return,
        }
    }
}

/// The command that starts `instance`, which ran `restarts` times before.
fn command(exe: &Path, instance: &Instance, restarts: u32) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg(instance.service.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C in a terminal reaches the launcher
        // only, which then stops everyone in order instead of racing its
        // children's own exits against restarts.
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(launcher_owned) {
            command.env_remove(&key);
        }
    }
    command.envs(
        instance
            .env
            .iter()
            .map(|(k, v)| (OsStr::new(k), OsStr::new(v))),
    );
    command.env(RESTARTS, restarts.to_string());
    command
}

/// How many times the instance was restarted before, for
/// `bazaar.platform.v1.Instance/Describe` (see `bazaar_platform::config::VARS`).
const RESTARTS: &str = "BAZAAR_RESTARTS";

fn pump_output(
    child: &mut Child,
    output: &Arc<Output>,
    name: &str,
    color: &'static str,
) -> impl Future<Output = ()> + use<> {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        let (output, name) = (Arc::clone(output), name.to_owned());
        tasks.spawn(async move { output.pump(stdout, &name, color).await });
    }
    if let Some(stderr) = child.stderr.take() {
        let (output, name) = (Arc::clone(output), name.to_owned());
        tasks.spawn(async move { output.pump(stderr, &name, color).await });
    }
    async move { while tasks.join_next().await.is_some() {} }
}

/// SIGTERM, then wait until it exits or the launcher escalates to SIGKILL.
async fn stop(
    child: &mut Child,
    pid: u32,
    phase: &mut watch::Receiver<Phase>,
) -> std::io::Result<ExitStatus> {
    if *phase.borrow() == Phase::Stop {
        if let Ok(pid) = i32::try_from(pid) {
            // It may have exited a moment ago; wait() below tells.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        tokio::select! {
            status = child.wait() => return status,
            _ = phase.wait_for(|p| *p == Phase::Kill) => {}
        }
    }
    child.start_kill()?;
    child.wait().await
}

/// `exit code 1`, `signal 9 (SIGKILL)`…
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_good_run() {
        let mut b = Backoff::new();
        let short = Duration::from_millis(50);
        let delays: Vec<_> = (0..10).map(|_| b.after_exit(short)).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[6], Duration::from_millis(6400));
        assert_eq!(delays[7], Backoff::MAX);
        assert_eq!(delays[9], Backoff::MAX);
        assert_eq!(b.after_exit(Duration::from_secs(31)), Backoff::INITIAL);
        assert_eq!(b.after_exit(short), Duration::from_millis(200));
    }

    #[test]
    fn every_start_says_how_many_came_before() {
        let plan = crate::up::plan::Plan::new(
            crate::registry::SERVICES,
            &crate::up::plan::Options {
                data_dir: "/srv/bazaar".into(),
                public_port: 8080,
                replicas: std::collections::BTreeMap::new(),
                postgres: None,
                nats: None,
                redis: None,
                log_format: "json".into(),
                admin_password_file: None,
            },
            || Ok(40000),
        )
        .unwrap();
        let instance = &plan.instances[0];
        for n in [0, 1, 7] {
            let command = command(Path::new("/bin/true"), instance, n);
            let envs: Vec<_> = command.as_std().get_envs().collect();
            assert!(
                envs.contains(&(OsStr::new(RESTARTS), Some(OsStr::new(&n.to_string())))),
                "{envs:?}"
            );
            assert!(
                envs.contains(&(
                    OsStr::new("BAZAAR_INSTANCE"),
                    Some(OsStr::new(&instance.name))
                )),
                "{envs:?}"
            );
        }
    }

    #[test]
    fn exit_statuses_read_well() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9 (SIGKILL)");
    }
}
