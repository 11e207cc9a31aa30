//! Password guessing is slowed down: five failures for one account, or
//! twenty from one address, within fifteen minutes, and login answers 429
//! with `Retry-After` (even to the right password) until the window
//! passes. A success clears the account's count.

use bazaar_identity::throttle::{ACCOUNT_LIMIT, ADDRESS_LIMIT, CLIENT_ADDRESS, WINDOW_SECONDS};
use serde_json::json;

use crate::support::{App, apps, problem};

/// A sign-in as `email` from `address` (as the gateway names it); the status.
async fn login(app: &App, email: &str, password: &str, address: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .header(CLIENT_ADDRESS, address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request")
}

async fn assert_throttled(res: reqwest::Response, what: &str) {
    let retry_after: i64 = res
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=WINDOW_SECONDS).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    let p = problem(res, 429).await;
    assert!(p.detail.contains("Retry-After"), "{what}: {}", p.detail);
}

#[tokio::test]
async fn an_account_is_throttled_after_five_failures_and_a_success_resets_it() {
    for app in apps().await {
        app.register("gus@example.com", "password123", None).await;
        app.register("ida@example.com", "password123", None).await;
        let from = "203.0.113.7";
        // Four failures, a success: the count starts again.
        for _ in 0..ACCOUNT_LIMIT - 1 {
            let res = login(&app, "gus@example.com", "wrong-guess", from).await;
            assert_eq!(res.status(), 401, "on {}", app.on());
        }
        let res = login(&app, "gus@example.com", "password123", from).await;
        assert_eq!(res.status(), 200, "on {}", app.on());
        for _ in 0..ACCOUNT_LIMIT {
            let res = login(&app, "gus@example.com", "wrong-guess", from).await;
            assert_eq!(res.status(), 401, "on {}", app.on());
        }
        // Now even the right password waits, from any address.
        let res = login(&app, "gus@example.com", "password123", "198.51.100.9").await;
        assert_throttled(res, &format!("the account on {}", app.on())).await;
        // Another account from the same address is not affected.
        let res = login(&app, "ida@example.com", "password123", from).await;
        assert_eq!(res.status(), 200, "on {}", app.on());
    }
}

#[tokio::test]
async fn an_address_is_throttled_after_twenty_failures_over_any_accounts() {
    for app in apps().await {
        app.register("kit@example.com", "password123", None).await;
        let from = "203.0.113.20";
        for n in 0..ADDRESS_LIMIT {
            let email = format!("guess-{n}@example.com");
            let res = login(&app, &email, "password123", from).await;
            assert_eq!(res.status(), 401, "on {}", app.on());
        }
        let res = login(&app, "kit@example.com", "password123", from).await;
        assert_throttled(res, &format!("the address on {}", app.on())).await;
        // The same account from elsewhere signs in.
        let res = login(&app, "kit@example.com", "password123", "203.0.113.21").await;
        assert_eq!(res.status(), 200, "on {}", app.on());
    }
}
