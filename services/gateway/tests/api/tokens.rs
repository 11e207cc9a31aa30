//! Access tokens checked at the edge, against keys served by a test
//! identity the way the real one serves them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_gateway::Settings;
use bazaar_platform::auth::{AUDIENCE, Claims, ISSUER, JWKS_PATH, Jwks, TokenSigner, now_seconds};
use serde_json::json;
use url::Url;

use crate::{Running, client, counting_catalog, metric, problem, serve, start_gateway};

/// A stand-in for identity: serves whatever keys the test puts in, counts
/// how often they are fetched, and answers login whatever the token says.
#[derive(Clone, Default)]
pub struct Identity {
    keys: Arc<Mutex<Jwks>>,
    fetches: Arc<AtomicUsize>,
}

impl Identity {
    pub async fn start(signers: &[&TokenSigner]) -> (Self, Url) {
        let identity = Self::default();
        identity.publish(signers);
        let jwks = {
            let identity = identity.clone();
            move || {
                let identity = identity.clone();
                async move {
                    identity.fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(identity.keys.lock().unwrap().clone())
                }
            }
        };
        let router = Router::new().route(JWKS_PATH, get(jwks)).route(
            "/api/v1/auth/login",
            post(|| async { axum::Json(json!({"token_type": "Bearer"})) }),
        );
        let url = serve(router).await;
        (identity, url)
    }

    /// Replaces the published keys.
    pub fn publish(&self, signers: &[&TokenSigner]) {
        *self.keys.lock().unwrap() = Jwks {
            keys: signers.iter().map(|s| s.jwk()).collect(),
        };
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

pub fn claims(sub: &str) -> Claims {
    let now = now_seconds();
    Claims {
        sub: sub.into(),
        role: "customer".into(),
        exp: now + 900,
        iat: now,
        jti: uuid::Uuid::now_v7().to_string(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
    }
}

/// A gateway in front of `identity` and `catalog`, with `settings`.
pub async fn gateway_with(identity: &Url, catalog: &Url, settings: Settings) -> Running {
    let (identity, catalog) = (identity.clone(), catalog.clone());
    start_gateway(settings, move |c| {
        c.upstreams.insert("identity".into(), vec![identity]);
        c.upstreams.insert("catalog".into(), vec![catalog]);
    })
    .await
}

async fn get_products(gw: &Running, token: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("{}/api/v1/products", gw.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn valid_tokens_pass_and_bad_ones_stop_at_the_edge() {
    let key = TokenSigner::from_seed(&[1; 32]);
    let (_identity, identity_url) = Identity::start(&[&key]).await;
    let (catalog_url, hits) = counting_catalog().await;
    let gw = gateway_with(&identity_url, &catalog_url, Settings::default()).await;

    let valid = key.sign(&claims("u1"));
    let res = get_products(&gw, Some(&valid)).await;
    assert_eq!(res.status(), 200);
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        seen["authorization"],
        format!("Bearer {valid}"),
        "the service gets the token to verify it again"
    );
    assert_eq!(
        get_products(&gw, None).await.status(),
        200,
        "no token: the service decides"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let [header, _, signature] =
        <[&str; 3]>::try_from(valid.split('.').collect::<Vec<_>>()).unwrap();
    let mut admin = claims("u1");
    admin.role = "admin".into();
    let payload = |c: &Claims| B64.encode(serde_json::to_vec(c).unwrap());
    let tampered = format!("{header}.{}.{signature}", payload(&admin));
    let none_header = B64.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid()));
    let alg_none = format!("{none_header}.{}.", payload(&claims("u1")));
    let mut expired = claims("u1");
    expired.exp = now_seconds() - 600;
    let mut other_audience = claims("u1");
    other_audience.aud = "someone-else".into();
    let bad = [
        ("tampered", tampered),
        ("alg none", alg_none),
        ("expired", key.sign(&expired)),
        ("wrong audience", key.sign(&other_audience)),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, token) in &bad {
        let res = get_products(&gw, Some(token)).await;
        assert_eq!(res.status(), 401, "{what}");
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{what}"
        );
        let p = problem(res).await;
        assert_eq!(p["status"], 401, "{what}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "no bad token reached the service"
    );
    assert_eq!(
        metric(&gw, "gateway_tokens_refused_total").await,
        bad.len() as f64
    );

    // Login must work for a client still holding a bad token.
    let res = client()
        .post(format!("{}/api/v1/auth/login", gw.base))
        .bearer_auth(&bad[2].1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "/api/v1/auth/* is passed on unchecked");
}

#[tokio::test]
async fn without_identity_tokens_pass_through() {
    let (catalog_url, hits) = counting_catalog().await;
    let gw = start_gateway(Settings::default(), move |c| {
        c.upstreams.insert("catalog".into(), vec![catalog_url]);
    })
    .await;
    let res = get_products(&gw, Some("not-a-jwt")).await;
    assert_eq!(
        res.status(),
        200,
        "nothing to check against: the service decides"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unknown_key_id_refetches_the_keys_once() {
    let old = TokenSigner::from_seed(&[2; 32]);
    let new = TokenSigner::from_seed(&[3; 32]);
    let (identity, identity_url) = Identity::start(&[&old]).await;
    let (catalog_url, _hits) = counting_catalog().await;
    let gw = gateway_with(&identity_url, &catalog_url, Settings::default()).await;

    assert_eq!(
        get_products(&gw, Some(&old.sign(&claims("u1"))))
            .await
            .status(),
        200
    );
    assert_eq!(identity.fetches(), 1, "keys are fetched when first needed");
    assert_eq!(
        get_products(&gw, Some(&old.sign(&claims("u2"))))
            .await
            .status(),
        200
    );
    assert_eq!(identity.fetches(), 1, "and then cached");

    // identity rotates its key; the gateway has not seen the new one.
    identity.publish(&[&old, &new]);
    let token = new.sign(&claims("u3"));
    let started = Instant::now();
    let mut refused = 0;
    loop {
        let status = get_products(&gw, Some(&token)).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401);
        refused += 1;
        // The verifier refetches at most once per few seconds, whatever
        // unknown key ids arrive meanwhile.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the rotated key was never picked up ({} fetches)",
            identity.fetches()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        identity.fetches(),
        2,
        "one refetch for the new key id, not one per request ({refused} refused meanwhile)"
    );
    assert_eq!(get_products(&gw, Some(&token)).await.status(), 200);
    assert_eq!(identity.fetches(), 2);
}
