//! The two hooks every service builds on: settings read before any I/O,
//! and background tasks the server stops and awaits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use bazaar_platform::config::{Config, ConfigError, Env, FromEnv};
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Server, Service};

use super::MIGRATIONS;

/// A service with a setting of its own and a database, so building it
/// would create the data dir, bind and connect.
struct Strict;

/// [`Strict`]'s settings.
#[derive(Debug, Clone, Copy)]
struct Limits {
    burst: u32,
    pause: Duration,
}

const BURST: &str = "BAZAAR_STRICT_BURST";

impl FromEnv for Limits {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            burst: env.number(BURST, 100, 1..=1000)?,
            pause: env.positive_duration("BAZAAR_STRICT_PAUSE", Duration::from_secs(1))?,
        })
    }
}

/// What [`Strict`] was built with, for the test to see.
static BUILT_WITH: AtomicUsize = AtomicUsize::new(0);

impl Service for Strict {
    const NAME: &'static str = "strict";
    type Settings = Limits;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Limits>) -> anyhow::Result<Routes> {
        let limits = *ctx.settings();
        assert_eq!(limits.pause, Duration::from_secs(1));
        BUILT_WITH.store(limits.burst as usize, Ordering::SeqCst);
        Ok(Routes::new(Router::new()))
    }
}

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::with_prefix(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        "BAZAAR_",
    )
}

#[tokio::test]
async fn a_bad_setting_fails_the_build_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data_dir = dir.path().join("strict");
    let mut config = Config::for_test("strict", &data_dir);
    // Each of these would fail the build too, later: the port is taken and
    // nothing listens at the database's address.
    config.listen = taken.local_addr().unwrap();
    config.database = Config::from_vars(
        "strict",
        1,
        [(
            "BAZAAR_DATABASE_URL".to_owned(),
            "postgres://postgres@127.0.0.1:1/bazaar_strict".to_owned(),
        )],
    )
    .unwrap()
    .database;
    config.env = env(&[(BURST, "lots")]);

    let err = Server::build::<Strict>(config).await.unwrap_err();
    let err = err
        .downcast_ref::<ConfigError>()
        .unwrap_or_else(|| panic!("not the setting's error: {err:#}"));
    assert_eq!(err.var, BURST);
    assert_eq!(err.value, "lots");
    assert!(
        err.to_string().contains("BAZAAR_STRICT_BURST"),
        "the message names the variable: {err}"
    );
    assert!(
        !data_dir.exists(),
        "the data dir was created before the settings were read"
    );
}

#[tokio::test]
async fn settings_reach_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_test("strict", dir.path());
    config.env = env(&[(BURST, "7"), ("BAZAAR_OTHER", "ignored")]);
    let server = Server::build::<Strict>(config).await.unwrap();
    assert_eq!(BUILT_WITH.load(Ordering::SeqCst), 7);
    server.run_until(async {}).await.unwrap();
}

/// How each [`Worker`]'s task behaves.
#[derive(Clone, Copy)]
enum Mode {
    /// Finishes its unit of work (3 s) after the shutdown signal.
    Polite,
    /// Never looks at the signal.
    Deaf,
    /// Fails, panics, then finishes politely.
    Broken,
}

/// What each test's task did, by the test's number: it saw the shutdown,
/// it finished, it was dropped.
static SAW: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
static FINISHED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
static DROPPED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];

/// Sets `DROPPED[n]` when the task's future is dropped (finished or aborted).
struct OnDrop(usize);

impl Drop for OnDrop {
    fn drop(&mut self) {
        DROPPED[self.0].store(true, Ordering::SeqCst);
    }
}

/// A service without a database whose build starts one background task.
struct Worker<const N: usize, const MODE: u8>;

impl<const N: usize, const MODE: u8> Worker<N, MODE> {
    const MODE: Mode = match MODE {
        0 => Mode::Polite,
        1 => Mode::Deaf,
        _ => Mode::Broken,
    };
}

impl<const N: usize, const MODE: u8> Service for Worker<N, MODE> {
    const NAME: &'static str = "worker";
    type Settings = ();

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        if matches!(Self::MODE, Mode::Broken) {
            ctx.spawn("failing", |_| async { anyhow::bail!("cannot go on") });
            ctx.spawn("panicking", |_| async { panic!("boom") });
        }
        ctx.spawn("worker", |shutdown| async move {
            let _guard = OnDrop(N);
            match Self::MODE {
                Mode::Polite | Mode::Broken => {
                    shutdown.requested().await;
                    SAW[N].store(true, Ordering::SeqCst);
                    // The unit of work at hand is finished, not cut off.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Mode::Deaf => tokio::time::sleep(Duration::from_secs(3600)).await,
            }
            FINISHED[N].store(true, Ordering::SeqCst);
            Ok(())
        });
        Ok(Routes::new(Router::new()))
    }
}

async fn build<S: Service>(shutdown_timeout: Duration) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_test("worker", dir.path());
    config.shutdown_timeout = shutdown_timeout;
    config.env = Env::default();
    (Server::build::<S>(config).await.unwrap(), dir)
}

#[tokio::test(start_paused = true)]
async fn a_task_sees_shutdown_and_is_awaited_before_run_until_returns() {
    let (server, _dir) = build::<Worker<0, 0>>(Duration::from_secs(5)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        !SAW[0].load(Ordering::SeqCst),
        "the task was told to stop early"
    );
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    assert!(SAW[0].load(Ordering::SeqCst));
    assert!(
        FINISHED[0].load(Ordering::SeqCst),
        "run_until returned before the task finished"
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_that_does_not_stop_is_aborted_after_the_drain_time() {
    let (server, _dir) = build::<Worker<1, 1>>(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    server.run_until(async {}).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_secs(60), "{waited:?}");
    assert!(!FINISHED[1].load(Ordering::SeqCst));
    assert!(
        DROPPED[1].load(Ordering::SeqCst),
        "the task was not aborted"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_tasks_do_not_stop_the_server() {
    let (server, _dir) = build::<Worker<2, 2>>(Duration::from_secs(5)).await;
    server.run_until(async {}).await.unwrap();
    assert!(FINISHED[2].load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_server_dropped_without_running_stops_its_tasks() {
    let (server, _dir) = build::<Worker<3, 0>>(Duration::from_secs(5)).await;
    drop(server);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(SAW[3].load(Ordering::SeqCst));
    assert!(FINISHED[3].load(Ordering::SeqCst));
}
