//! Service tests of the gateway: real gateway, real upstream processes'
//! runtime (the platform server) on port 0, called over real sockets.

mod browser;
mod limits;
mod openapi;
mod tokens;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::{any, get};
use bazaar_gateway::{Gateway, Settings};
use bazaar_platform::config::Config;
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_testkit::{Frame, Open, Running, Sse};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use url::Url;

/// An upstream that tells what reached it and which instance it is.
struct Upstream;

impl Service for Upstream {
    const NAME: &'static str = "catalog";
    type Settings = ();

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let instance = ctx.config().instance.clone();
        let echo = move |req: Request| {
            let instance = instance.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                axum::Json(json!({
                    "instance": instance,
                    "method": parts.method.as_str(),
                    "path_and_query": parts.uri.path_and_query().unwrap().as_str(),
                    "body": String::from_utf8_lossy(&body),
                    "traceparent": header("traceparent"),
                    "request_id": header("x-request-id"),
                    "authorization": header("authorization"),
                }))
            }
        };
        let router = Router::new()
            .route("/api/v1/products/stream", get(stream))
            .route(
                "/api/v1/products/fail",
                get(|| async { bazaar_platform::Problem::service_unavailable("catalog is sad") }),
            )
            .route("/api/v1/products", any(echo.clone()))
            .route("/api/v1/products/{*rest}", any(echo));
        Ok(Routes::new(router).openapi(catalog_spec()))
    }
}

/// What the test catalog says it serves: one public path, one that the
/// gateway does not route to it.
fn catalog_spec() -> utoipa::openapi::OpenApi {
    serde_json::from_value(json!({
        "openapi": "3.1.0",
        "info": {"title": "catalog", "version": "1"},
        "paths": {
            "/api/v1/products": {"get": {
                "operationId": "list_products",
                "responses": {"200": {"description": "A page of products."}}
            }},
            "/internal/reindex": {"post": {
                "responses": {"204": {"description": "Not for the public."}}
            }}
        },
        "components": {"schemas": {"Product": {"type": "object"}}}
    }))
    .expect("a valid OpenAPI document")
}

/// Lets the stream's second event go.
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Sends "first", then writes "second" only when the test says so: a
/// client must see the first part before the second is written.
async fn stream() -> axum::response::Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        tx.send(Ok("data: first\n\n".into())).await.unwrap();
        RELEASE.notified().await;
        let _ = tx.send(Ok("data: second\n\n".into())).await;
    });
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}

/// `S` alone in a directory of its own, configured further by `edit`;
/// a quick drain, for the tests that stop an upstream.
async fn start<S: Service>(edit: impl FnOnce(&mut Config)) -> Running {
    bazaar_testkit::start_alone::<S>(|config| {
        config.shutdown_timeout = Duration::from_millis(100);
        edit(config);
    })
    .await
}

tokio::task_local! {
    /// The settings the gateway being built in this task gets.
    static SETTINGS: Settings;
}

/// The gateway with the settings of the task that builds it, rather than
/// the environment's (which every test of this binary would share).
struct Configured;

impl Service for Configured {
    const NAME: &'static str = "gateway";
    type Settings = ();

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        Gateway::routes(ctx, SETTINGS.with(Settings::clone)).await
    }
}

/// A gateway with `settings`, configured further by `edit`.
async fn start_gateway(settings: Settings, edit: impl FnOnce(&mut Config)) -> Running {
    SETTINGS.scope(settings, start::<Configured>(edit)).await
}

/// A bare HTTP server on port 0 for a test upstream that needs state of
/// its own test (the platform's `Service` is built from configuration only).
async fn serve(router: Router) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}").parse().unwrap()
}

/// A catalog that counts what reaches it and shows the `Authorization` it got.
async fn counting_catalog() -> (Url, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = {
        let hits = hits.clone();
        move |headers: http::HeaderMap| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let authorization = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                axum::Json(json!({ "authorization": authorization }))
            }
        }
    };
    let router = Router::new()
        .route("/api/v1/products", any(handler.clone()))
        .route("/api/v1/products/{*rest}", any(handler));
    (serve(router).await, hits)
}

/// The value of metric `name` (summed over its label sets) in `/metrics`.
async fn metric(gw: &Running, name: &str) -> f64 {
    bazaar_testkit::scrape(&client(), &gw.base)
        .await
        .sum(name, &[])
}

/// The problem a response carries, checking its media type.
async fn problem(res: reqwest::Response) -> Value {
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    res.json().await.unwrap()
}

async fn upstreams(n: usize) -> Vec<Running> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(start::<Upstream>(|c| c.instance = format!("catalog-{i}")).await);
    }
    all
}

async fn gateway(catalog: &[Running]) -> Running {
    let urls = catalog
        .iter()
        .map(|r| r.base.parse().unwrap())
        .collect::<Vec<_>>();
    start_gateway(Settings::default(), |c| {
        c.upstreams.insert("catalog".into(), urls);
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn proxies_method_path_query_body_and_headers() {
    let catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = client()
        .patch(format!("{}/api/v1/products/42?x=1&y=2", gw.base))
        .header("authorization", "Bearer abc")
        .header("traceparent", incoming)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["method"], "PATCH");
    assert_eq!(seen["path_and_query"], "/api/v1/products/42?x=1&y=2");
    assert_eq!(seen["body"], "hello");
    assert_eq!(seen["authorization"], "Bearer abc");
    assert_eq!(
        seen["request_id"],
        request_id.as_str(),
        "the same request id end to end"
    );
    let traceparent = seen["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "same trace, the gateway's span as parent: {traceparent}"
    );
    assert!(!traceparent.contains("00f067aa0ba902b7"));
}

#[tokio::test]
async fn unknown_and_absent_services_are_problems() {
    let catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    let res = client()
        .get(format!("{}/api/v1/nothing-here", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = client()
        .get(format!("{}/api/v1/orders", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let p: Value = res.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("orders"), "{p}");
}

#[tokio::test]
async fn upstream_problems_pass_through() {
    let catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    let res = client()
        .get(format!("{}/api/v1/products/fail", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["detail"], "catalog is sad", "the service's own words");
}

#[tokio::test]
async fn too_large_bodies_are_refused_before_the_upstream() {
    let catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    let res = client()
        .post(format!("{}/api/v1/products", gw.base))
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn balances_over_instances_and_survives_losing_one() {
    let mut catalog = upstreams(2).await;
    let gw = gateway(&catalog).await;
    let http = client();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for _ in 0..40 {
        let v: Value = http
            .get(format!("{}/api/v1/products", gw.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        *seen
            .entry(v["instance"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both instances served: {seen:?}");

    catalog.remove(1).stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let res = http
            .get(format!("{}/api/v1/products", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "a GET is retried on the live instance");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["instance"], "catalog-0");
    }

    let status: Value = http
        .get(format!("{}/api/v1/status", gw.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let instances = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "catalog")
        .unwrap()["instances"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0]["healthy"], true);
    assert_eq!(instances[0]["instance"], "catalog-0");
    assert_eq!(instances[0]["pid"], std::process::id());
    assert_eq!(instances[1]["healthy"], false);
}

#[tokio::test]
async fn every_instance_down_is_a_fast_503() {
    let mut catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    catalog.remove(0).stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..8 {
        let res = client()
            .get(format!("{}/api/v1/products", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn event_streams_pass_through_unbuffered() {
    let catalog = upstreams(1).await;
    let gw = gateway(&catalog).await;
    let mut sse = Sse::open(
        &client(),
        &gw.url("/api/v1/products/stream"),
        Open::default(),
    )
    .await
    .expect("a stream");
    // If the gateway buffered the body, the first event would never come
    // while the upstream holds the second back.
    let first = sse
        .frame(Duration::from_secs(20))
        .await
        .expect("the first event arrives while the upstream is still writing");
    assert_eq!(first, event("first"));
    RELEASE.notify_one();
    let second = sse
        .frame(Duration::from_secs(20))
        .await
        .expect("the second event");
    assert_eq!(second, event("second"));
}

/// A frame with only `data`.
fn event(data: &str) -> Frame {
    Frame {
        data: Some(data.to_owned()),
        ..Frame::default()
    }
}
