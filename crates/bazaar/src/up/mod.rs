//! `bazaar up`: the whole fleet on one machine, each service instance its own
//! OS process (this binary re-executed as `bazaar serve NAME`), supervised
//! until SIGTERM or Ctrl-C.
//!
//! The launcher holds the write end of every child's stdin and never writes
//! to it: the children run with `BAZAAR_EXIT_ON_STDIN_CLOSE=1`, so however
//! the launcher ends, its children end too.

pub mod admin;
pub mod output;
pub mod plan;
pub mod supervise;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use crate::cli::UpArgs;
use crate::registry::SERVICES;
use bazaar_platform::probe;
use output::Output;
use plan::{LOOPBACK, Options, Plan};
use supervise::{Phase, supervise};

/// How long the fleet may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the processes may take to stop after SIGTERM before SIGKILL.
/// Longer than a service's own drain time (`BAZAAR_SHUTDOWN_TIMEOUT`, 10 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// A second stop signal within this time of the first is taken for the same
/// request; after it, for "kill them now".
const DUPLICATE_SIGNAL_WINDOW: Duration = Duration::from_secs(1);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the fleet until a signal stops it; the exit code says how it went.
pub fn main(args: UpArgs) -> ExitCode {
    // One thread is plenty to copy logs and wait on children, and keeps the
    // launcher's own footprint small.
    let Some(runtime) = crate::small_runtime() else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(async {
        match run(args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let exe: Arc<Path> = std::env::current_exe()
        .context("cannot find this program's own path to start the services")?
        .into();
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    // Absolute, so the children do not depend on the working directory.
    let data_dir = args.data_dir.canonicalize().with_context(|| {
        format!(
            "cannot resolve the data directory {}",
            args.data_dir.display()
        )
    })?;

    let admin_password = admin::ensure(&data_dir)?;
    let admin_email = admin::email(std::env::vars());

    let stdout_is_terminal = std::io::stdout().is_terminal();
    let log_format = std::env::var("BAZAAR_LOG_FORMAT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| if stdout_is_terminal { "pretty" } else { "json" }.to_owned());
    let options = Options {
        data_dir,
        public_port: args.port,
        replicas: args
            .replicas
            .iter()
            .map(|r| (r.service, r.count))
            .collect::<BTreeMap<_, _>>(),
        postgres: args.postgres,
        nats: args.nats,
        redis: args.redis,
        log_format,
        admin_password_file: Some(admin_password.path.clone()),
    };
    let Reserved { plan, data_dir } = reserve_ports(options)?;
    for service in SERVICES {
        let dir = data_dir.join(service.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }

    // Before any child exists, so an early Ctrl-C still stops them in order.
    let mut signals = Signals::new().context("cannot install signal handlers")?;

    let width = plan
        .instances
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or_default();
    let color = stdout_is_terminal && std::env::var_os("NO_COLOR").is_none();
    let output = Arc::new(Output::new(width, color));
    output.launcher(&format!(
        "starting {} of {}; gateway on http://{}; data in {}",
        plural(plan.instances.len(), "process", "processes"),
        plural(SERVICES.len(), "service", "services"),
        plan.public,
        data_dir.display(),
    ));
    if args.no_seed {
        output.launcher("--no-seed: the demo catalog will not be seeded");
    }
    if admin_password.created {
        output.launcher(&format!(
            "generated the local admin's password into {}",
            admin_password.path.display()
        ));
    }

    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let mut tasks = JoinSet::new();
    for instance in &plan.instances {
        tasks.spawn(supervise(
            Arc::clone(&exe),
            instance.clone(),
            Arc::clone(&output),
            phase_rx.clone(),
        ));
    }

    let targets: Vec<(String, SocketAddr)> = plan
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.addr))
        .collect();
    let ready = wait_ready(targets, plan.public, READY_TIMEOUT);
    tokio::pin!(ready);
    let mut waiting_for_ready = true;
    let mut seeding = None;
    let (code, reason) = loop {
        tokio::select! {
            result = &mut ready, if waiting_for_ready => {
                waiting_for_ready = false;
                match result {
                    Ok(()) => {
                        output.raw(&format!("ready: http://{}", plan.public));
                        output.raw(&admin::sign_in_line(
                            &format!("http://{}", plan.public),
                            &admin_email,
                            &admin_password,
                        ));
                        if !args.no_seed {
                            // In the background, so a stop signal is still
                            // heard while it runs.
                            let output = Arc::clone(&output);
                            seeding = Some(tokio::spawn(crate::seed::run(
                                format!("http://{}", plan.public),
                                data_dir.clone(),
                                move |line| output.launcher(line),
                            )));
                        }
                    }
                    Err(not_ready) => {
                        eprintln!("error: the fleet is not ready after {}s: {not_ready}", READY_TIMEOUT.as_secs());
                        break (ExitCode::FAILURE, "not ready in time");
                    }
                }
            }
            sig = signals.recv() => break (ExitCode::SUCCESS, sig),
        }
    };

    if let Some(seeding) = seeding {
        seeding.abort();
    }
    output.launcher(&format!(
        "{reason}: stopping {}",
        plural(plan.instances.len(), "process", "processes")
    ));
    stop_all(tasks, &phase_tx, &mut signals, &output).await;
    output.launcher("all processes stopped");
    Ok(code)
}

/// SIGTERM to every process through its supervisor, then waits; SIGKILL for
/// whatever still runs after [`STOP_TIMEOUT`] or on a second signal.
async fn stop_all(
    mut tasks: JoinSet<()>,
    phase: &watch::Sender<Phase>,
    signals: &mut Signals,
    output: &Output,
) {
    phase.send_replace(Phase::Stop);
    let stopping_since = Instant::now();
    let deadline = sleep(STOP_TIMEOUT);
    tokio::pin!(deadline);
    let mut killing = false;
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { return },
            () = &mut deadline, if !killing => {
                output.launcher(&format!("still running after {}s: sending SIGKILL", STOP_TIMEOUT.as_secs()));
                phase.send_replace(Phase::Kill);
                killing = true;
            }
            sig = signals.recv(), if !killing => {
                // A wrapper (timeout, a shell) often forwards the same signal
                // we already got; only a later one means "hurry".
                if stopping_since.elapsed() >= DUPLICATE_SIGNAL_WINDOW {
                    output.launcher(&format!("{sig} again: sending SIGKILL"));
                    phase.send_replace(Phase::Kill);
                    killing = true;
                }
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A plan with its data directory.
struct Reserved {
    plan: Plan,
    data_dir: std::path::PathBuf,
}

/// Checks that the public port is free and picks a free port for every
/// instance. All sockets stay bound until every port is chosen, so no two
/// instances (nor the public port) get the same one.
fn reserve_ports(mut options: Options) -> anyhow::Result<Reserved> {
    let public = TcpListener::bind((LOOPBACK, options.public_port)).map_err(|e| {
        anyhow::anyhow!(
            "port {} on {LOOPBACK} is not free ({e}); is another fleet running? Choose another with --port",
            options.public_port
        )
    })?;
    // --port 0: any free port.
    options.public_port = public.local_addr()?.port();
    let mut held = vec![public];
    let plan = Plan::new(SERVICES, &options, || {
        let listener = TcpListener::bind((LOOPBACK, 0))?;
        let port = listener.local_addr()?.port();
        held.push(listener);
        Ok(port)
    })
    .context("cannot find free ports on 127.0.0.1")?;
    drop(held);
    Ok(Reserved {
        plan,
        data_dir: options.data_dir,
    })
}

/// Polls every instance's `/readyz`, then the public port's, until all
/// answer 200; on timeout, says which did not and why.
async fn wait_ready(
    targets: Vec<(String, SocketAddr)>,
    public: SocketAddr,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<(String, SocketAddr, String)> = targets
        .into_iter()
        .map(|(name, addr)| (name, addr, "not polled yet".to_owned()))
        .collect();
    let mut public_state = "not polled yet".to_owned();
    loop {
        let mut still = Vec::with_capacity(pending.len());
        for (name, addr, _) in pending {
            match probe::get_status(addr, "/readyz").await {
                Ok(200) => {}
                Ok(code) => still.push((name, addr, format!("/readyz answered {code}"))),
                Err(e) => still.push((name, addr, e.to_string())),
            }
        }
        pending = still;
        if pending.is_empty() {
            // The instances are up; the URL we announce must answer too.
            match probe::get_status(public, "/readyz").await {
                Ok(200) => return Ok(()),
                Ok(code) => public_state = format!("/readyz answered {code}"),
                Err(e) => public_state = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            let mut missing: Vec<String> = pending
                .iter()
                .map(|(n, _, why)| format!("{n} ({why})"))
                .collect();
            if missing.is_empty() {
                missing.push(format!("the public port {public} ({public_state})"));
            }
            return Err(format!("not ready: {}", missing.join(", ")));
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// The signals that stop the fleet.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The name of the next signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_names_what_is_missing() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = wait_ready(
            vec![("gateway-0".into(), free)],
            free,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.contains("gateway-0"), "{err}");
    }

    #[test]
    fn a_busy_public_port_is_refused_clearly() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let options = Options {
            data_dir: "/tmp".into(),
            public_port: busy.local_addr().unwrap().port(),
            replicas: BTreeMap::new(),
            postgres: None,
            nats: None,
            redis: None,
            log_format: "json".into(),
            admin_password_file: None,
        };
        let err = reserve_ports(options).err().unwrap().to_string();
        assert!(err.contains("--port"), "{err}");
    }

    #[test]
    fn ports_are_distinct_and_port_zero_picks_one() {
        let options = Options {
            data_dir: "/tmp".into(),
            public_port: 0,
            replicas: BTreeMap::from([(crate::registry::FRONT_DOOR, 3)]),
            postgres: None,
            nats: None,
            redis: None,
            log_format: "json".into(),
            admin_password_file: None,
        };
        let plan = reserve_ports(options).unwrap().plan;
        assert_ne!(plan.public.port(), 0);
        let mut ports: Vec<u16> = plan.instances.iter().map(|i| i.addr.port()).collect();
        ports.push(plan.public.port());
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n);
    }
}
