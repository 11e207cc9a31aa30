//! What browsers need: CORS for the storefront's origins, security headers
//! on every answer.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::get;
use bazaar_gateway::Settings;

use crate::{Running, client, counting_catalog, serve, start_gateway};

const STOREFRONT: &str = "http://localhost:8080";
const STRANGER: &str = "https://evil.example";

async fn gateway_for(catalog: url::Url) -> Running {
    start_gateway(Settings::default(), move |c| {
        c.upstreams.insert("catalog".into(), vec![catalog]);
    })
    .await
}

fn preflight(gw: &Running, origin: &str) -> reqwest::RequestBuilder {
    preflight_to(gw, "/api/v1/products", origin)
}

fn preflight_to(gw: &Running, path: &str, origin: &str) -> reqwest::RequestBuilder {
    client()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", gw.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
}

fn vary(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_only() {
    let (catalog, hits) = counting_catalog().await;
    let gw = gateway_for(catalog).await;

    let res = preflight(&gw, STOREFRONT).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], STOREFRONT);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "last-event-id",
    ] {
        assert!(headers.contains(name), "{headers}");
    }
    assert_eq!(h["access-control-max-age"], "600");
    assert!(vary(&res).contains("Origin"));

    let res = preflight(&gw, STRANGER).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(vary(&res).contains("Origin"));

    // The gateway's own endpoints too, though they answer only GET.
    let res = preflight_to(&gw, "/api/v1/status", STOREFRONT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], STOREFRONT);

    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "preflights end at the gateway"
    );
}

#[tokio::test]
async fn answers_are_readable_by_allowed_origins_only() {
    // A service that sets its own, too generous, CORS header.
    let catalog = serve(Router::new().route(
        "/api/v1/products",
        get(|| async { ([("access-control-allow-origin", "*")], "[]") }),
    ))
    .await;
    let gw = gateway_for(catalog).await;
    let get = |origin: &'static str| {
        client()
            .get(format!("{}/api/v1/products", gw.base))
            .header("origin", origin)
            .send()
    };

    let res = get(STOREFRONT).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], STOREFRONT);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("Retry-After") && exposed.contains("X-Request-Id"),
        "{exposed}"
    );
    assert!(vary(&res).contains("Origin"));

    let res = get(STRANGER).await.unwrap();
    assert_eq!(res.status(), 200, "CORS is the browser's to enforce");
    assert!(
        res.headers().get("access-control-allow-origin").is_none(),
        "the service's own CORS header does not leak through"
    );
    assert!(vary(&res).contains("Origin"));

    // The same-origin storefront sends no Origin on GET; nothing changes.
    let res = client()
        .get(format!("{}/api/v1/products", gw.base))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let catalog = serve(
        Router::new()
            .route("/api/v1/products", get(|| async { "[]" }))
            .route(
                "/api/v1/products/cached",
                get(|| async { ([("cache-control", "public, max-age=60")], "[]") }),
            ),
    )
    .await;
    let gw = gateway_for(catalog).await;
    for path in [
        "/api/v1/products",
        "/api/v1/products/cached",
        "/api/v1/status",
        "/api/v1/openapi.json",
        "/api/v1/nothing-here",
        "/api/v1/orders",
        "/",
        "/favicon.ico",
    ] {
        let res = client()
            .get(format!("{}{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_security_headers(&res, path);
        let h = res.headers();
        if path.starts_with("/api/") {
            assert_eq!(
                h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
            let expected = if path.ends_with("/cached") {
                "public, max-age=60"
            } else {
                "no-store"
            };
            assert_eq!(h["cache-control"], expected, "{path}");
        } else {
            assert_eq!(res.status(), 404, "{path}");
            assert_eq!(h["content-type"], "application/problem+json", "{path}");
        }
    }
}

fn assert_security_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cross-origin-resource-policy"], "same-origin", "{what}");
    assert!(
        h.contains_key("x-request-id"),
        "{what}: the platform's request id stays"
    );
}

#[tokio::test]
async fn a_wrong_method_on_the_gateways_own_endpoints_is_a_problem_with_headers() {
    let (catalog, _hits) = counting_catalog().await;
    let gw = gateway_for(catalog).await;
    for path in ["/api/v1/status", "/api/v1/openapi.json"] {
        let res = client()
            .post(format!("{}{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(res.headers()["allow"], "GET, HEAD");
        assert_security_headers(&res, path);
    }
}
