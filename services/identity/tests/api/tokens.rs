//! Access tokens, JWKS, refresh rotation and reuse detection, OpenAPI.

use bazaar_platform::auth::{AUDIENCE, ISSUER, Jwks, Verifier};
use reqwest::Method;
use serde_json::Value;

use crate::support::{Tokens, apps, problem};

#[tokio::test]
async fn access_tokens_verify_with_the_published_keys_and_carry_the_claims() {
    for app in apps().await {
        let (id, tokens) = app.user("seller").await;
        let res = app.call(Method::GET, "/api/v1/auth/jwks.json", None).await;
        assert_eq!(res.status(), 200);
        let jwks: Jwks = res.json().await.expect("a JWKS the platform reads");
        assert_eq!(jwks.keys.len(), 1);
        let key = &jwks.keys[0];
        assert_eq!(
            (
                key.kty.as_str(),
                key.crv.as_str(),
                key.alg.as_str(),
                key.use_.as_str()
            ),
            ("OKP", "Ed25519", "EdDSA", "sig")
        );
        assert!(!key.kid.is_empty());

        // What any other service does: verify with identity's public keys.
        let claims = Verifier::local(jwks.keys.clone())
            .verify(&tokens.access_token)
            .await
            .expect("the token verifies");
        assert_eq!(claims.sub, id);
        assert_eq!(claims.role, "seller");
        assert_eq!(claims.exp - claims.iat, 900);
        assert!((claims.iat - bazaar_platform::auth::now_seconds()).abs() < 60);
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            (ISSUER, AUDIENCE)
        );
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());

        // The header names the key, so keys can rotate.
        use base64::Engine as _;
        let header = tokens.access_token.split('.').next().expect("header");
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .expect("base64url"),
        )
        .expect("JSON header");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.kid.as_str());
    }
}

#[tokio::test]
async fn refreshing_rotates_and_a_reused_token_revokes_its_family() {
    for app in apps().await {
        let email = "rae@example.com";
        app.register(email, "password123", None).await;
        let first = app.login(email, "password123").await;
        // Another sign-in: another family, untouched by what follows.
        let other = app.login(email, "password123").await;

        let res = app.refresh(&first.refresh_token).await;
        assert_eq!(res.status(), 200, "on {}", app.on());
        assert_eq!(res.headers()["cache-control"], "no-store");
        let second: Tokens = res.json().await.expect("tokens");
        assert_eq!(second.token_type, "Bearer");
        assert_eq!(second.expires_in, 900);
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        let res = app
            .call(Method::GET, "/api/v1/users/me", Some(&second.access_token))
            .await;
        assert_eq!(res.status(), 200);

        // The old one again: refused, and it takes the new one with it.
        let p = problem(app.refresh(&first.refresh_token).await, 401).await;
        assert_eq!(p.kind, "urn:bazaar:problem:invalid-refresh-token");
        problem(app.refresh(&second.refresh_token).await, 401).await;

        // The other sign-in still works, and rotates as usual.
        let res = app.refresh(&other.refresh_token).await;
        assert_eq!(res.status(), 200, "another family is not affected");
        let next: Tokens = res.json().await.expect("tokens");
        assert_eq!(app.refresh(&next.refresh_token).await.status(), 200);

        // Nobody issued these.
        for junk in ["", "nope", &"A".repeat(43)] {
            problem(app.refresh(junk).await, 401).await;
        }

        // Replays are counted apart from other refusals: they mean a leak.
        let metrics = bazaar_testkit::scrape(&app.http, &app.url("")).await;
        let count =
            |outcome: &str| metrics.sum("identity_refreshes_total", &[("outcome", outcome)]) as u64;
        assert_eq!(
            (count("rotated"), count("replayed"), count("refused")),
            (3, 2, 3),
            "{}",
            metrics.text
        );
    }
}

#[tokio::test]
async fn of_two_concurrent_refreshes_with_one_token_only_one_wins() {
    for app in apps().await {
        let (_, tokens) = app.user("customer").await;
        let (a, b) = tokio::join!(
            app.refresh(&tokens.refresh_token),
            app.refresh(&tokens.refresh_token)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "on {}", app.on());
    }
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    for app in apps().await {
        let res = app.call(Method::GET, "/openapi.json", None).await;
        assert_eq!(res.status(), 200);
        let spec: Value = res.json().await.expect("OpenAPI JSON");
        assert!(spec["openapi"].as_str().expect("version").starts_with("3."));
        let paths = spec["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/api/v1/auth/register", "post"),
            ("/api/v1/auth/login", "post"),
            ("/api/v1/auth/refresh", "post"),
            ("/api/v1/auth/jwks.json", "get"),
            ("/api/v1/users/me", "get"),
            ("/api/v1/users/{seller_id}/follow", "put"),
            ("/api/v1/users/{seller_id}/follow", "delete"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path}"
            );
        }
        let schemes = &spec["components"]["securitySchemes"]["bearer"];
        assert_eq!(schemes["scheme"], "bearer");
        assert!(spec["components"]["schemas"]["Problem"].is_object());
        assert_eq!(
            paths["/api/v1/auth/register"]["post"]["responses"]["201"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/User"
        );
    }
}

#[tokio::test]
async fn logout_ends_that_sign_in_and_no_other() {
    for app in apps().await {
        let (_, first) = app.user("customer").await;
        // The same account signed in elsewhere too, and refreshed once there.
        let me = app
            .call(Method::GET, "/api/v1/users/me", Some(&first.access_token))
            .await;
        let email = me.json::<Value>().await.expect("me")["email"]
            .as_str()
            .expect("email")
            .to_owned();
        let second = app.login(&email, "password123").await;
        let rotated: Tokens = app
            .refresh(&first.refresh_token)
            .await
            .json()
            .await
            .expect("rotated tokens");

        let body = serde_json::json!({"refresh_token": rotated.refresh_token});
        let res = app.post("/api/v1/auth/logout", &body).await;
        assert_eq!(res.status(), 204, "on {}", app.on());
        // Neither the newest token of that sign-in nor an older one works.
        problem(app.refresh(&rotated.refresh_token).await, 401).await;
        problem(app.refresh(&first.refresh_token).await, 401).await;
        // Logging out again, or with a token nobody issued, changes nothing.
        let res = app.post("/api/v1/auth/logout", &body).await;
        assert_eq!(res.status(), 204);
        let unknown = serde_json::json!({"refresh_token": "x".repeat(43)});
        assert_eq!(
            app.post("/api/v1/auth/logout", &unknown).await.status(),
            204
        );
        // The other sign-in goes on.
        let res = app.refresh(&second.refresh_token).await;
        assert_eq!(res.status(), 200, "on {}", app.on());
    }
}
