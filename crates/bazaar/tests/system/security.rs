//! Attacks through the public port, each refused: password guessing is
//! throttled (and a client cannot pose as another address to dodge it),
//! and a logged-out sign-in's refresh token is worth nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Api, unique};
use crate::harness::Fleet;

#[tokio::test]
async fn password_guessing_is_throttled_whatever_address_a_client_claims() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let email = format!("target-{}@example.com", unique());
    let body = json!({"email": email, "password": "password123", "name": "Target"});
    let res = api
        .send(Method::POST, "/api/v1/auth/register", None, Some(&body))
        .await;
    assert_eq!(res.status(), 201);

    // Twenty guesses at other accounts, each claiming another address: the
    // gateway names the real one, so they all count against it.
    for n in 0..20 {
        let guess = json!({"email": format!("nobody-{n}@example.com"), "password": "guess"});
        let claimed = format!("198.51.100.{n}");
        let res = api
            .try_send(
                Method::POST,
                "/api/v1/auth/login",
                None,
                &[
                    ("x-bazaar-client-address", claimed.as_str()),
                    ("x-forwarded-for", claimed.as_str()),
                ],
                Some(&guess),
            )
            .await
            .expect("an answer");
        assert_eq!(res.status(), 401, "guess {n}");
    }
    let right = json!({"email": email, "password": "password123"});
    let res = api
        .send(Method::POST, "/api/v1/auth/login", None, Some(&right))
        .await;
    assert_eq!(res.status(), 429, "the address is throttled");
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_logged_out_refresh_token_is_refused() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let email = format!("leaver-{}@example.com", unique());
    let body = json!({"email": email, "password": "password123", "name": "Leaver"});
    api.send(Method::POST, "/api/v1/auth/register", None, Some(&body))
        .await;
    let login = json!({"email": email, "password": "password123"});
    let res = api
        .send(Method::POST, "/api/v1/auth/login", None, Some(&login))
        .await;
    let tokens: Value = res.json().await.expect("tokens");
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let res = api
        .send(Method::POST, "/api/v1/auth/logout", None, Some(&refresh))
        .await;
    assert_eq!(res.status(), 204);
    let res = api
        .send(Method::POST, "/api/v1/auth/refresh", None, Some(&refresh))
        .await;
    assert_eq!(
        res.status(),
        401,
        "a stolen refresh token outlived its logout"
    );
}
