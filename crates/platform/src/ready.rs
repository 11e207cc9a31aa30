//! Readiness: is every dependency of this process reachable right now?
//!
//! `GET /readyz` runs every check concurrently, each bounded by a short
//! timeout, and answers 200 only when all pass. The gRPC health service
//! reports the same verdict.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use url::Url;

use crate::problem::{Json, Problem};

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync;

/// One named dependency check.
#[derive(Clone)]
pub struct Check {
    name: String,
    run: Arc<CheckFn>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl Check {
    /// A check named `name` that passes when `run` returns `Ok`.
    pub fn new<F, Fut>(name: impl Into<String>, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            run: Arc::new(move || Box::pin(run())),
        }
    }

    /// Redis answers `PING` with `+PONG`.
    pub fn redis(url: Url) -> Self {
        Self::new("redis", move || {
            let url = url.clone();
            async move {
                let mut stream = connect(&url, 6379).await?;
                stream
                    .write_all(b"PING\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
                let mut line = String::new();
                BufReader::new(stream)
                    .read_line(&mut line)
                    .await
                    .map_err(|e| e.to_string())?;
                // "-NOAUTH" still proves the server is up and answering.
                if line.starts_with("+PONG") || line.starts_with("-NOAUTH") {
                    Ok(())
                } else {
                    Err(format!("unexpected answer to PING: {}", line.trim()))
                }
            }
        })
    }

    /// A NATS server greets every connection with an `INFO` line.
    pub fn nats(url: Url) -> Self {
        Self::new("nats", move || {
            let url = url.clone();
            async move {
                let stream = connect(&url, 4222).await?;
                let mut line = String::new();
                BufReader::new(stream)
                    .read_line(&mut line)
                    .await
                    .map_err(|e| e.to_string())?;
                if line.starts_with("INFO ") {
                    Ok(())
                } else {
                    Err("the server did not greet like NATS".to_owned())
                }
            }
        })
    }
}

async fn connect(url: &Url, default_port: u16) -> Result<TcpStream, String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port().unwrap_or(default_port);
    TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
}

/// Every check of one process.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Vec<Check>,
}

/// The outcome of one check, as `/readyz` reports it.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// Adds a check.
    pub fn add(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Runs every check concurrently.
    pub async fn run(&self) -> Vec<Outcome> {
        let runs = self.checks.iter().map(|c| async move {
            let result = match tokio::time::timeout(CHECK_TIMEOUT, (c.run)()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            Outcome {
                name: c.name.clone(),
                ok: result.is_ok(),
                error: result.err(),
            }
        });
        futures_util::future::join_all(runs).await
    }

    /// Whether every check passes now.
    pub async fn is_ready(&self) -> bool {
        self.run().await.iter().all(|o| o.ok)
    }
}

/// `GET /readyz`: 200 with every check, or 503 problem naming the failing ones.
pub async fn handler(State(readiness): State<Readiness>) -> Response {
    let outcomes = readiness.run().await;
    let failing: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.error.as_deref().unwrap_or("failed")))
        .collect();
    if failing.is_empty() {
        Json(serde_json::json!({ "status": "ready", "checks": outcomes })).into_response()
    } else {
        tracing::warn!(failing = ?failing, "not ready");
        Problem::service_unavailable(format!("Not ready: {}", failing.join("; "))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn all_checks_must_pass() {
        let mut r = Readiness::default();
        r.add(Check::new("fine", || async { Ok(()) }));
        assert!(r.is_ready().await);
        r.add(Check::new("broken", || async { Err("down".to_owned()) }));
        let outcomes = r.run().await;
        assert!(!r.is_ready().await);
        assert_eq!(outcomes[1].error.as_deref(), Some("down"));
    }

    #[tokio::test]
    async fn unreachable_redis_and_nats_fail() {
        // A port that was free a moment ago: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Readiness::default();
        r.add(Check::redis(
            format!("redis://127.0.0.1:{port}").parse().unwrap(),
        ));
        r.add(Check::nats(
            format!("nats://127.0.0.1:{port}").parse().unwrap(),
        ));
        assert!(r.run().await.iter().all(|o| !o.ok));
    }

    #[tokio::test]
    async fn real_redis_and_nats_pass_when_configured() {
        let mut r = Readiness::default();
        let mut any = false;
        if let Ok(url) = std::env::var("BAZAAR_TEST_REDIS_URL") {
            r.add(Check::redis(url.parse().unwrap()));
            any = true;
        }
        if let Ok(url) = std::env::var("BAZAAR_TEST_NATS_URL") {
            r.add(Check::nats(url.parse().unwrap()));
            any = true;
        }
        if !any {
            eprintln!("skipped: BAZAAR_TEST_REDIS_URL and BAZAAR_TEST_NATS_URL are unset");
            return;
        }
        let outcomes = r.run().await;
        assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    }
}
