//! Registering and signing in.

use bazaar_events::identity::{Role, UserRegistered};
use reqwest::Method;
use serde_json::json;

use crate::support::{apps, problem};

#[tokio::test]
async fn registering_answers_201_with_the_normalised_user() {
    for app in apps().await {
        let user = app
            .register("  Ann.Lee@Example.COM ", "password123", None)
            .await;
        let id = user["id"].as_str().expect("id");
        let id = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(id.get_version_num(), 7, "UUIDv7");
        assert_eq!(user["email"], "ann.lee@example.com");
        assert_eq!(user["name"], "Test User");
        assert_eq!(user["role"], "customer", "the default role");
        assert_eq!(
            user.as_object().expect("object").len(),
            4,
            "exactly id, email, name, role: {user}"
        );
        let seller = app
            .register("bo@example.com", "password123", Some("seller"))
            .await;
        assert_eq!(seller["role"], "seller");
    }
}

#[tokio::test]
async fn a_taken_email_is_409_however_it_is_typed() {
    for app in apps().await {
        app.register("cy@example.com", "password123", None).await;
        for again in ["cy@example.com", "CY@Example.com", " cy@EXAMPLE.COM"] {
            let res = app
                .post(
                    "/api/v1/auth/register",
                    &json!({"email": again, "password": "other-password", "name": "Cy"}),
                )
                .await;
            let p = problem(res, 409).await;
            assert_eq!(
                p.kind,
                "urn:bazaar:problem:email-taken",
                "{again} on {}",
                app.on()
            );
        }
    }
}

#[tokio::test]
async fn bad_input_is_422_naming_each_field() {
    for app in apps().await {
        let register = |body: serde_json::Value| {
            let app = &app;
            async move { app.post("/api/v1/auth/register", &body).await }
        };
        let fields = |p: &bazaar_platform::Problem| {
            let mut f: Vec<String> = p.errors.iter().map(|e| e.field.clone()).collect();
            f.sort();
            f
        };
        let ok = json!({"email": "di@example.com", "password": "password123", "name": "Di"});
        for (field, value) in [
            ("email", json!("not-an-email")),
            ("email", json!("di@localhost")),
            ("email", json!(format!("{}@example.com", "d".repeat(250)))),
            ("password", json!("short")),
            ("password", json!("x".repeat(1025))),
            ("name", json!("   ")),
            ("name", json!("n".repeat(101))),
            ("role", json!("admin")),
            ("role", json!("Seller")),
        ] {
            let mut body = ok.clone();
            body[field] = value;
            let p = problem(register(body).await, 422).await;
            assert_eq!(
                fields(&p),
                vec![field.to_owned()],
                "{field} on {}",
                app.on()
            );
            assert_eq!(p.kind, "urn:bazaar:problem:validation-failed");
            assert!(!p.errors[0].message.is_empty());
        }
        // Every bad field at once, each named.
        let p = problem(
            register(json!({"email": "x", "password": "1", "name": "", "role": "root"})).await,
            422,
        )
        .await;
        assert_eq!(fields(&p), ["email", "name", "password", "role"]);
        // A missing field or a wrong type is the platform's 422.
        let p = problem(
            register(json!({"email": "di@example.com", "name": "Di"})).await,
            422,
        )
        .await;
        assert!(!p.errors.is_empty());
        // Broken JSON is 400, and no JSON content type 415.
        let res = app
            .http
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body("{\"email\":")
            .send()
            .await
            .expect("request");
        problem(res, 400).await;
        let res = app
            .http
            .post(app.url("/api/v1/auth/register"))
            .body(ok.to_string())
            .send()
            .await
            .expect("request");
        problem(res, 415).await;
        // None of it created an account.
        app.register("di@example.com", "password123", None).await;
    }
}

#[tokio::test]
async fn signing_in_gives_tokens_that_open_me() {
    for app in apps().await {
        let user = app
            .register("Eve@Example.com", "password123", Some("seller"))
            .await;
        let res = app
            .post(
                "/api/v1/auth/login",
                &json!({"email": " EVE@example.com", "password": "password123"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let tokens: crate::support::Tokens = res.json().await.expect("tokens");
        assert_eq!(tokens.token_type, "Bearer");
        assert_eq!(tokens.expires_in, 900);
        assert_eq!(tokens.access_token.split('.').count(), 3, "a JWS");

        let res = app
            .call(Method::GET, "/api/v1/users/me", Some(&tokens.access_token))
            .await;
        assert_eq!(res.status(), 200, "on {}", app.on());
        let me: serde_json::Value = res.json().await.expect("me");
        assert_eq!(me, user);

        let p = problem(app.call(Method::GET, "/api/v1/users/me", None).await, 401).await;
        assert!(p.detail.contains("access token"), "{p:?}");
        problem(
            app.call(Method::GET, "/api/v1/users/me", Some("not.a.token"))
                .await,
            401,
        )
        .await;
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    for app in apps().await {
        app.register("fay@example.com", "password123", None).await;
        let login = |email: &str, password: &str| {
            let body = json!({"email": email, "password": password});
            let app = &app;
            async move { problem(app.post("/api/v1/auth/login", &body).await, 401).await }
        };
        let wrong_password = login("fay@example.com", "password124").await;
        let unknown = login("nobody@example.com", "password123").await;
        let malformed = login("not an address", "password123").await;
        assert_eq!(wrong_password, unknown, "on {}", app.on());
        assert_eq!(wrong_password, malformed);
        assert_eq!(
            wrong_password.kind,
            "urn:bazaar:problem:invalid-credentials"
        );
    }
}

#[tokio::test]
async fn registering_announces_exactly_one_event_and_refusals_none() {
    for app in apps().await {
        let user = app
            .register("Gil@Example.com", "password123", Some("seller"))
            .await;
        // Refused: taken, and invalid.
        let res = app
            .post(
                "/api/v1/auth/register",
                &json!({"email": "gil@example.com", "password": "password123", "name": "Again"}),
            )
            .await;
        assert_eq!(res.status(), 409);
        let res = app
            .post(
                "/api/v1/auth/register",
                &json!({"email": "hal@example.com", "password": "short", "name": "Hal"}),
            )
            .await;
        assert_eq!(res.status(), 422);
        // The outbox publishes in commit order: once this one is out, any
        // event of the refused ones would be out too.
        let last = app.register("ida@example.com", "password123", None).await;
        let last_id = last["id"].as_str().expect("id").to_owned();
        let events = app
            .events(&["identity.user.registered"], |seen| {
                seen.iter()
                    .any(|e| e.subject.as_deref() == Some(last_id.as_str()))
            })
            .await;
        assert_eq!(events.len(), 2, "on {}: {events:#?}", app.on());
        let first: UserRegistered = events[0].decode().expect("the v1 contract");
        assert_eq!(first.user_id.to_string(), user["id"].as_str().expect("id"));
        assert_eq!(first.email, "gil@example.com");
        assert_eq!(first.name, "Test User");
        assert_eq!(first.role, Role::Seller);
        assert_eq!(events[0].subject.as_deref(), user["id"].as_str());
        assert_eq!(events[0].source, "/bazaar/identity");
        let second: UserRegistered = events[1].decode().expect("the v1 contract");
        assert_eq!(second.email, "ida@example.com");
    }
}

#[tokio::test]
async fn a_hash_with_older_parameters_is_replaced_at_sign_in() {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    use sqlx::Row as _;

    for app in apps().await {
        app.register("old@example.com", "password123", None).await;
        let db = bazaar_platform::db::Db::connect(&app.config.database)
            .await
            .expect("the service's database");
        // As an account made before the parameters were raised.
        let weak = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(
            b"password123",
            &SaltString::encode_b64(&[3; 16]).expect("salt"),
        )
        .expect("hash")
        .to_string();
        sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2")
            .bind(&weak)
            .bind("old@example.com")
            .execute(db.pool())
            .await
            .expect("update");

        app.login("old@example.com", "password123").await;
        let stored: String = sqlx::query("SELECT password_hash FROM users WHERE email = $1")
            .bind("old@example.com")
            .fetch_one(db.pool())
            .await
            .expect("select")
            .get(0);
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "on {}: {stored}",
            app.on()
        );
        // And it still opens the account.
        app.login("old@example.com", "password123").await;
        db.close().await;
    }
}
