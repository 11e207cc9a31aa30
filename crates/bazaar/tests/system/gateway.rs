//! The front door of the real fleet: body limits, rate limits (per gateway
//! and shared by replicas through Redis), the public API description, and
//! circuit breakers around an upstream whose processes die.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{BAZAAR, EVENTUALLY, Fleet, Status, eventually, free_port};

/// The platform's default body limit.
const ONE_MIB: usize = 1024 * 1024;

/// `bazaar up` with extra `BAZAAR_*` variables for its processes.
///
/// The harness's `Fleet` takes only arguments, and this test process cannot
/// change its own environment for it (`std::env::set_var` is unsafe), so
/// this starts the launcher itself, the same way, with `env` added.
struct EnvFleet {
    launcher: Child,
    base_url: String,
    output: Arc<Mutex<VecDeque<String>>>,
    client: reqwest::Client,
    _data_dir: tempfile::TempDir,
}

impl EnvFleet {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let port = free_port();
        let mut launcher = Command::new(BAZAAR)
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `bazaar up`");
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let ready = Arc::new(OnceLock::new());
        let echo = std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
        for (stream, is_stdout) in [
            (
                Box::new(launcher.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
                true,
            ),
            (Box::new(launcher.stderr.take().expect("stderr")), false),
        ] {
            let output = output.clone();
            let ready = ready.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (true, Some(url)) = (is_stdout, line.strip_prefix("ready: ")) {
                        let _ = ready.set(url.trim().to_owned());
                    }
                    if echo {
                        eprintln!("{line}");
                    }
                    let mut lines = output.lock().unwrap_or_else(|e| e.into_inner());
                    if lines.len() == 400 {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            });
        }
        let mut fleet = Self {
            launcher,
            base_url: format!("http://127.0.0.1:{port}"),
            output,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            _data_dir: data_dir,
        };
        let started = Instant::now();
        while ready.get().is_none() {
            if let Ok(Some(status)) = fleet.launcher.try_wait() {
                panic!("`bazaar up` exited with {status}:\n{}", fleet.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "no ready line within 90 s:\n{}",
                fleet.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fleet
    }

    fn output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.output()))
    }
}

impl Drop for EnvFleet {
    fn drop(&mut self) {
        // Its processes watch their stdin, which dies with the launcher, so
        // stopping the launcher stops them all.
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.launcher.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.launcher.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
    }
}

async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    res.json().await.expect("a problem document")
}

#[tokio::test]
async fn a_body_over_one_mib_is_refused_at_the_door() {
    let fleet = Fleet::start().await;
    let res = fleet
        .client()
        .post(format!("{}/api/v1/auth/register", fleet.base_url()))
        .header("content-type", "application/json")
        .body(vec![b' '; ONE_MIB + 1])
        .send()
        .await
        .expect("POST a large body");
    let p = assert_problem(res, 413).await;
    assert!(p["detail"].as_str().unwrap_or("").contains("larger"), "{p}");
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_with_retry_after() {
    let fleet = EnvFleet::start(
        // Nothing else may spend from this client's budget.
        &["--no-seed"],
        &[
            ("BAZAAR_GATEWAY_RATE_LIMIT", "5"),
            ("BAZAAR_GATEWAY_RATE_BURST", "5"),
        ],
    )
    .await;
    let url = format!("{}/api/v1/nothing-here", fleet.base_url);
    // The burst first; then, five a second, requests made back to back
    // outrun the refill long before fifteen more are done.
    for i in 0..5 {
        assert_eq!(fleet.get(&url).await.status(), 404, "request {i}");
    }
    let mut limited = None;
    for _ in 0..15 {
        let res = fleet.get(&url).await;
        if res.status() == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.unwrap_or_else(|| panic!("never limited:\n{}", fleet.output()));
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    assert_problem(res, 429).await;
    // Probes of health are never limited.
    for _ in 0..20 {
        let res = fleet.get(&format!("{}/healthz", fleet.base_url)).await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn gateway_replicas_share_one_budget_through_redis() {
    if std::env::var("BAZAAR_SYSTEST_BACKENDS").as_deref() != Ok("external") {
        eprintln!("skipped: a shared budget needs Redis; set BAZAAR_SYSTEST_BACKENDS=external");
        return;
    }
    let redis = std::env::var("BAZAAR_TEST_REDIS_URL")
        .expect("BAZAAR_SYSTEST_BACKENDS=external needs BAZAAR_TEST_REDIS_URL");
    // Buckets of this fleet only, so other fleets on the same Redis neither
    // spend from nor add to them.
    let prefix = format!(
        "systest:{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    const BURST: usize = 6;
    let fleet = EnvFleet::start(
        &["--no-seed", "--replicas", "gateway=2", "--redis", &redis],
        &[
            // One token back every ten seconds: none while the test runs.
            ("BAZAAR_GATEWAY_RATE_LIMIT", "0.1"),
            ("BAZAAR_GATEWAY_RATE_BURST", &BURST.to_string()),
            ("BAZAAR_GATEWAY_RATE_PREFIX", &prefix),
        ],
    )
    .await;
    let status: Status = fleet
        .get(&format!("{}/api/v1/status", fleet.base_url))
        .await
        .json()
        .await
        .expect("status");
    let replicas: Vec<String> = status
        .service("gateway")
        .expect("gateway listed")
        .instances
        .iter()
        .map(|i| i.url.trim_end_matches('/').to_owned())
        .collect();
    assert_eq!(replicas.len(), 2, "{status:?}");

    // Each replica by its own address, alternately: with a budget each they
    // would let twice the burst through.
    let mut allowed = 0;
    let mut last = Vec::new();
    for i in 0..2 * BURST {
        let replica = &replicas[i % 2];
        let res = fleet.get(&format!("{replica}/api/v1/nothing-here")).await;
        match res.status().as_u16() {
            404 => allowed += 1,
            429 => {}
            other => panic!("{replica} answered {other}:\n{}", fleet.output()),
        }
        last.push(res.status().as_u16());
    }
    // The status request above took one token from the same budget; two
    // budgets would have let nearly twice as many through.
    assert!(
        (1..BURST).contains(&allowed),
        "{allowed} let through; answers {last:?} from replicas {replicas:?}:\n{}",
        fleet.output()
    );
    assert_eq!(&last[last.len() - 2..], [429, 429], "both replicas refuse");
    for replica in &replicas {
        let ready = fleet.get(&format!("{replica}/readyz")).await;
        assert_eq!(ready.status(), 200, "{replica} reaches Redis");
    }
}

#[tokio::test]
async fn the_public_api_description_covers_the_fleet() {
    let fleet = Fleet::start().await;
    let res = fleet
        .client()
        .get(format!("{}/api/v1/openapi.json", fleet.base_url()))
        .send()
        .await
        .expect("GET /api/v1/openapi.json");
    assert_eq!(res.status(), 200);
    let spec: Value = res.json().await.expect("JSON");
    assert!(
        spec["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{spec}"
    );
    let paths = spec["paths"].as_object().expect("paths");
    for path in ["/api/v1/status", "/api/v1/auth/login", "/api/v1/users/me"] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Resumes a stopped launcher when dropped, so a failing test does not
/// leave it frozen.
struct Frozen(u32);

impl Frozen {
    fn launcher(fleet: &Fleet) -> Self {
        fleet.signal(Signal::SIGSTOP);
        Self(fleet.pid())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGCONT);
    }
}

fn identity_instances(status: &Status) -> Vec<(String, u32, bool)> {
    status
        .service("identity")
        .map(|s| {
            s.instances
                .iter()
                .map(|i| {
                    (
                        i.instance.clone().unwrap_or_default(),
                        i.pid.unwrap_or_default(),
                        i.healthy,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn calls_survive_a_dead_instance_and_fail_fast_when_all_are_dead() {
    let fleet = Fleet::start_with(&["--replicas", "identity=2"]).await;
    let before = fleet
        .wait_for_status("two healthy identity instances", |s| {
            let ids = identity_instances(s);
            ids.len() == 2 && ids.iter().all(|(_, pid, healthy)| *healthy && *pid != 0)
        })
        .await;
    let ids = identity_instances(&before);
    let keys = format!("{}/api/v1/auth/jwks.json", fleet.base_url());
    let sigkill = |pid: u32| {
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL an identity instance")
    };

    // The launcher would restart a dead process within a moment; frozen, it
    // cannot, so what clients see while an instance is down can be watched.
    let frozen = Frozen::launcher(&fleet);
    sigkill(ids[1].1);
    for i in 0..20 {
        let res = fleet.client().get(&keys).send().await.expect("GET keys");
        assert_eq!(res.status(), 200, "call {i}: served by the living instance");
    }
    // Refused connections never reached anyone, so even a login (not
    // idempotent) moves on to the living instance.
    let res = fleet
        .client()
        .post(format!("{}/api/v1/auth/login", fleet.base_url()))
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "not-the-password"}))
        .send()
        .await
        .expect("POST login");
    assert_eq!(res.status(), 401, "identity's answer, not the gateway's");
    let status = fleet.status().await.expect("status");
    let now = identity_instances(&status);
    assert!(now[0].2 && !now[1].2, "{now:?}");

    // With every instance dead, the answer is a prompt 503 problem naming
    // the service, not a hang.
    sigkill(ids[0].1);
    for _ in 0..8 {
        let res = fleet.client().get(&keys).send().await.expect("GET keys");
        let p = assert_problem(res, 503).await;
        assert!(
            p["detail"].as_str().unwrap_or("").contains("identity"),
            "{p}"
        );
    }

    // Thawed, the launcher restarts both; the gateway's breakers let calls
    // through again once a probe succeeds.
    drop(frozen);
    fleet
        .wait_for_status("both identity instances back with new pids", |s| {
            let now = identity_instances(s);
            now.len() == 2
                && now
                    .iter()
                    .zip(&ids)
                    .all(|(n, old)| n.2 && n.1 != 0 && n.1 != old.1)
        })
        .await;
    let back = eventually(EVENTUALLY, || async {
        let res = fleet.client().get(&keys).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "calls never succeeded again:\n{}",
        fleet.output()
    );
}
