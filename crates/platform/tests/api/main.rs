//! Service tests of the runtime: a small service built on the platform,
//! served on port 0 over a real socket, called like any client would.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bazaar_platform::config::Config;
use bazaar_platform::db::Migrations;
use bazaar_platform::problem::{Json, Problem};
use bazaar_platform::server::{Context, Routes, Server, Service};
use serde_json::Value;
use sqlx::Row;

mod edge;
mod hooks;

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("tests/fixtures/migrations/sqlite"),
    postgres: sqlx::migrate!("tests/fixtures/migrations/postgres"),
};

/// A tiny service exercising every part of the runtime a real one uses.
struct Notes;

#[derive(serde::Deserialize)]
struct NewNote {
    id: String,
    body: String,
}

/// The event a new note announces.
#[derive(serde::Serialize, serde::Deserialize)]
struct NoteAdded {
    id: String,
}

impl bazaar_bus::Event for NoteAdded {
    const TOPIC: &'static str = "notes.note.added";
    const VERSION: u32 = 1;
}

/// Records every note event it sees, with the trace it arrived in.
struct Seen;

#[async_trait::async_trait]
impl bazaar_bus::subscription::Handler for Seen {
    async fn handle(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event: &bazaar_bus::Envelope,
    ) -> anyhow::Result<()> {
        let note: NoteAdded = event.decode()?;
        let trace_id = bazaar_platform::telemetry::trace_id(&tracing::Span::current());
        sqlx::query("INSERT INTO seen (event_id, note_id, trace_id) VALUES ($1, $2, $3)")
            .bind(&event.id)
            .bind(&note.id)
            .bind(trace_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Service for Notes {
    const NAME: &'static str = "notes";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let db = ctx.db()?;
        let events = ctx.events()?;
        let seen_db = db.clone();
        let router = Router::new()
            .route(
                "/seen",
                get(move || {
                    let db = seen_db.clone();
                    async move {
                        let rows =
                            sqlx::query("SELECT note_id, trace_id FROM seen ORDER BY note_id")
                                .fetch_all(db.pool())
                                .await
                                .map_err(|e| Problem::internal(&e))?;
                        let seen: Vec<(String, String)> =
                            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                        Ok::<_, Problem>(Json(seen))
                    }
                }),
            )
            .route(
                "/notes",
                post(move |Json(n): Json<NewNote>| {
                    let db = db.clone();
                    let events = events.clone();
                    async move {
                        if n.body.is_empty() {
                            return Err(Problem::validation(vec![
                                bazaar_platform::problem::FieldError {
                                    field: "body".into(),
                                    message: "must not be empty".into(),
                                },
                            ]));
                        }
                        let mut tx = db.pool().begin().await.map_err(|e| Problem::internal(&e))?;
                        let r = sqlx::query("INSERT INTO notes (id, body, n) VALUES ($1, $2, 0)")
                            .bind(&n.id)
                            .bind(&n.body)
                            .execute(&mut *tx)
                            .await;
                        match r {
                            Ok(_) => {
                                events
                                    .append(&mut tx, Some(&n.id), &NoteAdded { id: n.id.clone() })
                                    .await
                                    .map_err(|e| Problem::internal(&e))?;
                                tx.commit().await.map_err(|e| Problem::internal(&e))?;
                                events.committed();
                                Ok(http::StatusCode::CREATED)
                            }
                            Err(e)
                                if e.as_database_error()
                                    .is_some_and(|d| d.is_unique_violation()) =>
                            {
                                Err(Problem::conflict("a note with this id exists"))
                            }
                            Err(e) => Err(Problem::internal(&e)),
                        }
                    }
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    "done"
                }),
            )
            .route(
                "/outgoing-traceparent",
                get(|| async {
                    let mut headers = http::HeaderMap::new();
                    bazaar_platform::telemetry::inject_http(&mut headers);
                    headers
                        .get("traceparent")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                }),
            );
        let mut routes = Routes::new(router);
        if let Some(redis) = &ctx.config().redis_url {
            // As a service that keeps state in Redis would.
            routes =
                routes.ready_check(bazaar_platform::ready::Check::redis(redis.expose().clone()));
        }
        Ok(routes
            .body_limit(1024)
            .subscribe(bazaar_bus::subscription::Subscription::new(
                "notes-seen",
                &["notes.note.added"],
                Seen,
            )))
    }
}

struct App {
    base: String,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn spawn_with(edit: impl FnOnce(&mut Config)) -> App {
    let dir = tempfile::tempdir().unwrap();
    bazaar_platform::telemetry::init_for_tests();
    let mut config = Config::for_test("notes", dir.path());
    edit(&mut config);
    let server = Server::build::<Notes>(config).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    App {
        base: format!("http://{addr}"),
        addr,
        stop: Some(tx),
        done,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

async fn spawn() -> App {
    spawn_with(|_| {}).await
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    async fn problem(&self, res: reqwest::Response) -> Problem {
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "not a problem document"
        );
        res.json().await.unwrap()
    }
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = spawn().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"][0]["name"], "database");
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"route="/readyz",status="2xx"} 1"#),
        "{text}"
    );
    assert!(text.contains("http_requests_in_flight"), "{text}");
}

#[tokio::test]
async fn readiness_fails_when_a_dependency_is_down() {
    let redis = bazaar_testkit::refused_url("redis");
    let app = spawn_with(|c| {
        c.redis_url = Some(bazaar_platform::config::Secret::new(redis));
    })
    .await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let p = app.problem(res).await;
    assert!(p.detail.contains("redis"), "{p:?}");
    // Alive all the same: liveness does not depend on others.
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bad_input_is_problem_json_and_changes_nothing() {
    let app = spawn().await;
    let post = |body: &'static str| {
        app.http
            .post(app.url("/notes"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let res = post(r#"{"id":"1","body":"hi"}"#).await.unwrap();
    assert_eq!(res.status(), 201);

    let res = post(r#"{"id":"1","body":"again"}"#).await.unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(app.problem(res).await.status, 409);

    let res = post(r#"{"id":"2""#).await.unwrap();
    assert_eq!(res.status(), 400);
    app.problem(res).await;

    let res = post(r#"{"id":"2","body":""}"#).await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(app.problem(res).await.errors[0].field, "body");

    let res = post(r#"{"id":"2"}"#).await.unwrap();
    assert_eq!(res.status(), 422);

    let big = format!(r#"{{"id":"3","body":"{}"}}"#, "x".repeat(4096));
    let res = app
        .http
        .post(app.url("/notes"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    app.problem(res).await;

    let res = app.http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    app.problem(res).await;

    let res = app.http.delete(app.url("/notes")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    app.problem(res).await;

    let res = app.http.get(app.url("/panic")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let p = app.problem(res).await;
    assert!(
        !p.detail.contains("boom"),
        "panic text must not leak: {p:?}"
    );

    // Only the first note exists.
    let dir = app._dir.path().join("notes.db");
    let db =
        bazaar_platform::db::Db::connect(&bazaar_platform::config::DatabaseConfig::Sqlite(dir))
            .await
            .unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM notes")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn traceparent_is_accepted_and_forwarded() {
    let app = spawn().await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = app
        .http
        .get(app.url("/outgoing-traceparent"))
        .header("traceparent", incoming)
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let outgoing = res.text().await.unwrap();
    let parts: Vec<_> = outgoing.split('-').collect();
    assert_eq!(parts.len(), 4, "{outgoing:?}");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "a new span of ours");

    // Without one, a new trace starts and a request id is generated.
    let res = app
        .http
        .get(app.url("/outgoing-traceparent"))
        .send()
        .await
        .unwrap();
    assert!(!res.headers()["x-request-id"].is_empty());
    let outgoing = res.text().await.unwrap();
    assert!(outgoing.starts_with("00-"), "{outgoing:?}");
}

#[tokio::test]
async fn grpc_health_and_instance_on_the_same_port() {
    use bazaar_proto::platform::v1::{DescribeRequest, instance_client::InstanceClient};
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let app = spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(app.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    // The health task sets the status right after start.
    let mut status = 0;
    for _ in 0..50 {
        if let Ok(r) = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            status = r.into_inner().status;
            if status == 1 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 1, "SERVING");
    let info = InstanceClient::new(channel)
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.service, "notes");
    assert_eq!(info.instance, "notes-0");
    assert_eq!(info.pid, std::process::id());
    // gRPC calls are counted per method.
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"route="/bazaar.platform.v1.Instance/Describe""#),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_and_stops_accepting() {
    let mut app = spawn().await;
    let slow = tokio::spawn({
        let http = app.http.clone();
        let url = app.url("/slow");
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.stop.take().unwrap().send(()).unwrap();
    assert_eq!(slow.await.unwrap(), "done", "in-flight request finished");
    tokio::time::timeout(Duration::from_secs(5), &mut app.done)
        .await
        .expect("server stopped after draining")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(app.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn replicas_share_a_port_with_reuseport() {
    let shared = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = spawn_with(|c| {
        c.shared_listen = Some(shared);
        c.instance = "notes-0".into();
    })
    .await;
    let b = spawn_with(|c| {
        c.shared_listen = Some(shared);
        c.instance = "notes-1".into();
    })
    .await;
    for _ in 0..60 {
        // A fresh connection each time, so the kernel picks a listener.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let res = client
            .get(format!("http://{shared}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let served = |app: &App| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            bazaar_testkit::scrape(&http, &base)
                .await
                .sum("http_requests_total", &[("route", "/healthz")]) as u64
        }
    };
    let (na, nb) = (served(&a).await, served(&b).await);
    assert_eq!(na + nb, 60);
    assert!(na > 0 && nb > 0, "both replicas served: {na} and {nb}");
}

#[tokio::test]
async fn postgres_database_is_created_and_migrated() {
    let Some(url) = bazaar_testkit::postgres_database() else {
        return;
    };
    let app = spawn_with(|c| {
        c.database = bazaar_platform::config::DatabaseConfig::Postgres(
            bazaar_platform::config::Secret::new(url),
        );
    })
    .await;
    let res = app
        .http
        .post(app.url("/notes"))
        .header("content-type", "application/json")
        .body(r#"{"id":"1","body":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .http
        .post(app.url("/notes"))
        .header("content-type", "application/json")
        .body(r#"{"id":"1","body":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn events_from_a_request_reach_handlers_in_the_same_trace() {
    let app = spawn().await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    for id in ["a", "b"] {
        let res = app
            .http
            .post(app.url("/notes"))
            .header("content-type", "application/json")
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .body(format!(r#"{{"id":"{id}","body":"hi"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // A refused change announces nothing.
    let res = app
        .http
        .post(app.url("/notes"))
        .header("content-type", "application/json")
        .body(r#"{"id":"a","body":"again"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    let mut seen: Vec<(String, String)> = Vec::new();
    for _ in 0..100 {
        seen = app
            .http
            .get(app.url("/seen"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        vec![
            ("a".to_owned(), trace.to_owned()),
            ("b".to_owned(), trace.to_owned())
        ]
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"events_published_total{service="notes",instance="notes-0",topic="notes.note.added"} 2"#), "{metrics}");
    assert!(
        metrics.contains(
            r#"events_acked_total{service="notes",instance="notes-0",group="notes-seen"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn readiness_follows_the_broker() {
    let Some(binary) = bazaar_testkit::nats_server_binary() else {
        eprintln!("skipped: no nats-server binary on this machine");
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let port = bazaar_testkit::free_port();
    let start = || bazaar_testkit::start_nats(&binary, port, store.path());
    let mut nats = start().await;
    let app = spawn_with(|c| {
        c.nats_url = Some(format!("nats://127.0.0.1:{port}/READY").parse().unwrap());
    })
    .await;
    let ready = |app: &App| {
        let http = app.http.clone();
        let url = app.url("/readyz");
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let eventually = |want: u16| {
        let http = app.http.clone();
        let url = app.url("/readyz");
        async move {
            for _ in 0..100 {
                if http.get(&url).send().await.unwrap().status().as_u16() == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert_eq!(ready(&app).await, 200);
    nats.kill().await.unwrap();
    nats.wait().await.unwrap();
    assert!(eventually(503).await, "not ready while NATS is down");
    // Writes are still accepted: the outbox holds their events.
    let res = app
        .http
        .post(app.url("/notes"))
        .header("content-type", "application/json")
        .body(r#"{"id":"n1","body":"during the outage"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let _nats = start().await;
    assert!(eventually(200).await, "ready again once NATS is back");
    let mut seen: Vec<(String, String)> = Vec::new();
    for _ in 0..100 {
        seen = app
            .http
            .get(app.url("/seen"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.len(),
        1,
        "the event written during the outage was delivered"
    );
}
