//! Per-client rate limits: in memory, shared through Redis, and failing
//! open when Redis is down.

use bazaar_gateway::{RateLimit, Settings};
use bazaar_platform::auth::TokenSigner;
use bazaar_platform::config::Secret;

use crate::tokens::{Identity, claims, gateway_with};
use crate::{Running, client, counting_catalog, metric, problem, start_gateway, upstreams};

/// Slow enough that no token comes back while a test runs.
fn settings(burst: u32) -> Settings {
    Settings {
        rate_limit: Some(RateLimit {
            per_second: 0.1,
            burst,
        }),
        ..Settings::default()
    }
}

async fn products(gw: &Running) -> reqwest::Response {
    client()
        .get(format!("{}/api/v1/products", gw.base))
        .send()
        .await
        .unwrap()
}

async fn assert_limited(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=10).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let p = problem(res).await;
    assert_eq!(p["status"], 429);
}

#[tokio::test]
async fn over_the_burst_is_429_with_retry_after() {
    let catalog = upstreams(1).await;
    let url = catalog[0].base.parse().unwrap();
    let gw = start_gateway(settings(3), |c| {
        c.upstreams.insert("catalog".into(), vec![url]);
    })
    .await;
    for i in 0..3 {
        assert_eq!(
            products(&gw).await.status(),
            200,
            "request {i} is within the burst"
        );
    }
    assert_limited(products(&gw).await).await;
    // Claiming to be someone else does not help: the header is not believed.
    let res = client()
        .get(format!("{}/api/v1/products", gw.base))
        .header("x-forwarded-for", "198.51.100.23")
        .send()
        .await
        .unwrap();
    assert_limited(res).await;
    // The gateway's own API is limited too; operations endpoints never are.
    assert_limited(
        client()
            .get(format!("{}/api/v1/status", gw.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        for _ in 0..5 {
            let res = client()
                .get(format!("{}{path}", gw.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
    }
    assert_eq!(metric(&gw, "gateway_rate_limited_total").await, 3.0);
}

#[tokio::test]
async fn a_signed_in_user_has_a_budget_of_their_own() {
    let key = TokenSigner::from_seed(&[4; 32]);
    let (_identity, identity_url) = Identity::start(&[&key]).await;
    let (catalog_url, _hits) = counting_catalog().await;
    let gw = gateway_with(&identity_url, &catalog_url, settings(2)).await;
    let call = |token: Option<String>| {
        let mut request = client().get(format!("{}/api/v1/products", gw.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // Anonymous callers from this address use up its budget...
    for _ in 0..2 {
        assert_eq!(call(None).await.unwrap().status(), 200);
    }
    assert_limited(call(None).await.unwrap()).await;
    // ...and a bad token is charged to the address too.
    assert_limited(call(Some("not-a-jwt".into())).await.unwrap()).await;
    // Each user spends their own, from the same address.
    for user in ["alice", "bob"] {
        let token = key.sign(&claims(user));
        for _ in 0..2 {
            assert_eq!(
                call(Some(token.clone())).await.unwrap().status(),
                200,
                "{user}"
            );
        }
        assert_limited(call(Some(token)).await.unwrap()).await;
    }
}

/// A gateway whose buckets live in Redis at `redis` under `prefix`.
async fn redis_gateway(redis: url::Url, prefix: &str, catalog: &str) -> Running {
    let settings = Settings {
        redis_prefix: prefix.to_owned(),
        ..settings(4)
    };
    let catalog = catalog.parse().unwrap();
    start_gateway(settings, move |c| {
        c.redis_url = Some(Secret::new(redis));
        c.upstreams.insert("catalog".into(), vec![catalog]);
    })
    .await
}

#[tokio::test]
async fn replicas_share_one_budget_through_redis() {
    let Some(redis) = bazaar_testkit::redis_url() else {
        return;
    };
    // A prefix of its own, so runs and other tests never share buckets.
    let prefix = format!("bazaar-test:{}", uuid::Uuid::now_v7());
    let catalog = upstreams(1).await;
    let a = redis_gateway(redis.clone(), &prefix, &catalog[0].base).await;
    let b = redis_gateway(redis, &prefix, &catalog[0].base).await;
    for (i, gw) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            products(gw).await.status(),
            200,
            "request {i} is within the burst"
        );
    }
    // Four requests spread over two gateways used up the one budget.
    assert_limited(products(&a).await).await;
    assert_limited(products(&b).await).await;
    for gw in [&a, &b] {
        assert_eq!(metric(gw, "gateway_rate_limit_fail_open_total").await, 0.0);
        let ready = client()
            .get(format!("{}/readyz", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    }
    // Another prefix is another fleet, with budgets of its own.
    let c = redis_gateway(
        bazaar_testkit::redis_url().unwrap(),
        &format!("{prefix}-other"),
        &catalog[0].base,
    )
    .await;
    assert_eq!(products(&c).await.status(), 200);
}

#[tokio::test]
async fn redis_down_lets_requests_through_and_stays_ready() {
    // A port that was free a moment ago: nothing answers there.
    let redis = bazaar_testkit::refused_url("redis");
    let catalog = upstreams(1).await;
    let gw = redis_gateway(redis, "bazaar-test:down", &catalog[0].base).await;
    for i in 0..8 {
        assert_eq!(
            products(&gw).await.status(),
            200,
            "request {i}: a limiter outage is not a shop outage"
        );
    }
    assert!(metric(&gw, "gateway_rate_limit_fail_open_total").await >= 8.0);
    // Still ready: a limiter that fails open is no reason to take the
    // gateway out of service; the counter above is how the outage shows.
    let ready = client()
        .get(format!("{}/readyz", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
