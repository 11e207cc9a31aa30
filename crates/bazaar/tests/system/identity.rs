//! Identity through the gateway, as a client sees it: accounts, tokens,
//! refresh rotation, and tokens that must not open anything.

use std::path::PathBuf;

use crate::procfs;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_platform::auth::{AUDIENCE, Claims, ISSUER, TokenSigner, now_seconds};
use bazaar_testkit::Answer;
use serde_json::{Value, json};

use crate::harness::{Fleet, run_bazaar};

/// A client of one fleet's public port.
struct Client<'a> {
    fleet: &'a Fleet,
}

impl Client<'_> {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.fleet
            .client()
            .post(format!("{}{path}", self.fleet.base_url()))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn me(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .fleet
            .client()
            .get(format!("{}/api/v1/users/me", self.fleet.base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET /api/v1/users/me")
    }

    async fn json(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        self.answer(response, status, what).await.json(what)
    }

    /// Asserts a problem+json answer with `status`.
    async fn problem(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        let answer = self.answer(response, status, what).await;
        let problem = answer.json(what);
        assert_eq!(answer.content_type, "application/problem+json", "{what}");
        assert_eq!(problem["status"], status, "{what}: {problem}");
        problem
    }

    /// The answer read, asserting its status (the fleet's output shown
    /// when it is not).
    async fn answer(&self, response: reqwest::Response, status: u16, what: &str) -> Answer {
        let answer = Answer::read(response).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}\nfleet output:\n{}",
            answer.body,
            self.fleet.output()
        );
        answer
    }
}

/// The data directory identity runs with, as the launcher gave it.
fn identity_data_dir(fleet: &Fleet) -> PathBuf {
    fleet
        .children()
        .iter()
        .find(|c| procfs::env_var(c.pid, "BAZAAR_INSTANCE").as_deref() == Some("identity-0"))
        .and_then(|c| procfs::env_var(c.pid, "BAZAAR_DATA_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no identity-0 child with a data dir\n{}", fleet.output()))
}

fn claims(sub: &str, role: &str) -> Claims {
    let now = now_seconds();
    Claims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        exp: now + 900,
        iat: now,
        jti: format!("systest-{now}"),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    }
}

#[tokio::test]
async fn accounts_tokens_and_refresh_through_the_gateway() {
    let fleet = Fleet::start().await;
    let client = Client { fleet: &fleet };

    // Register, with the address as a person might type it.
    let res = client
        .post(
            "/api/v1/auth/register",
            &json!({"email": " Sam@Example.com", "password": "correct horse", "name": "Sam", "role": "seller"}),
        )
        .await;
    let user = client.json(res, 201, "register").await;
    assert_eq!(user["email"], "sam@example.com");
    assert_eq!(user["role"], "seller");
    let id = user["id"].as_str().expect("id").to_owned();

    // The same address again, differently cased: taken.
    let res = client
        .post(
            "/api/v1/auth/register",
            &json!({"email": "SAM@example.com", "password": "another one", "name": "Sam 2"}),
        )
        .await;
    client.problem(res, 409, "duplicate e-mail").await;

    // Bad input names each field.
    let res = client
        .post(
            "/api/v1/auth/register",
            &json!({"email": "nope", "password": "short", "name": "X", "role": "admin"}),
        )
        .await;
    let p = client.problem(res, 422, "bad registration").await;
    let mut fields: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "password", "role"], "{p}");

    // Sign in; a wrong password and an unknown address look alike.
    let login = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        let client = &client;
        async move { client.post("/api/v1/auth/login", &body).await }
    };
    let wrong = client
        .problem(
            login("sam@example.com", "wrong horse").await,
            401,
            "wrong password",
        )
        .await;
    let unknown = client
        .problem(
            login("nobody@example.com", "correct horse").await,
            401,
            "unknown e-mail",
        )
        .await;
    assert_eq!(wrong, unknown);
    let tokens = client
        .json(
            login("SAM@example.com", "correct horse").await,
            200,
            "login",
        )
        .await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");

    let me = client.json(client.me(Some(access)).await, 200, "me").await;
    assert_eq!(me, user);
    client
        .problem(client.me(None).await, 401, "me without a token")
        .await;

    // Refresh rotates: the new pair works, the old refresh token does not,
    // and presenting it again revokes the new one as well.
    let res = client
        .post("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    let rotated = client.json(res, 200, "refresh").await;
    let new_access = rotated["access_token"].as_str().expect("access token");
    let new_refresh = rotated["refresh_token"].as_str().expect("refresh token");
    assert_ne!(new_refresh, refresh);
    client
        .json(
            client.me(Some(new_access)).await,
            200,
            "me with the new token",
        )
        .await;
    let res = client
        .post("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    client
        .problem(res, 401, "the old refresh token again")
        .await;
    let res = client
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": new_refresh}),
        )
        .await;
    client
        .problem(res, 401, "the newer token of a replayed family")
        .await;

    // Tokens that must open nothing. Forged ones are signed with the
    // fleet's own generated key, to show that the claims are what is
    // refused, not the key.
    let seed = std::fs::read_to_string(identity_data_dir(&fleet).join("signing-key.dev"))
        .expect("the fleet's development key");
    let seed: [u8; 32] = B64
        .decode(seed.trim())
        .expect("base64url")
        .try_into()
        .expect("32 bytes");
    let fleet_key = TokenSigner::from_seed(&seed);
    let good = fleet_key.sign(&claims(&id, "seller"));
    client
        .json(
            client.me(Some(&good)).await,
            200,
            "a token signed with the fleet key",
        )
        .await;

    let parts: Vec<&str> = access.split('.').collect();
    let mut admin = claims(&id, "admin");
    admin.jti = "tampered".into();
    let forged_payload = B64.encode(serde_json::to_vec(&admin).expect("claims JSON"));
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let alg_none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut expired = claims(&id, "seller");
    expired.iat -= 3600;
    expired.exp = expired.iat + 900;
    let mut elsewhere = claims(&id, "seller");
    elsewhere.aud = "another-audience".into();
    let mut foreign_issuer = claims(&id, "seller");
    foreign_issuer.iss = "someone-else".into();
    let stranger = TokenSigner::from_seed(&[42; 32]).sign(&claims(&id, "seller"));
    for (what, token) in [
        ("a tampered token", tampered),
        ("an alg:none token", alg_none),
        ("an expired token", fleet_key.sign(&expired)),
        ("a token for another audience", fleet_key.sign(&elsewhere)),
        (
            "a token from another issuer",
            fleet_key.sign(&foreign_issuer),
        ),
        ("a token signed by an unknown key", stranger),
        ("garbage", "a.b.c".to_owned()),
    ] {
        client
            .problem(client.me(Some(&token)).await, 401, what)
            .await;
    }
}

#[test]
fn serve_identity_in_production_without_a_key_fails_with_one_line() {
    // The event log defaults to beside the data dir; keep it in ours.
    let dir = tempfile::tempdir().expect("temporary directory");
    let event_log = dir.path().join("events.db");
    let out = run_bazaar(
        &["serve", "identity"],
        &[
            ("BAZAAR_ENV", "production"),
            ("BAZAAR_LISTEN", "127.0.0.1:0"),
            ("BAZAAR_EVENT_LOG", event_log.to_str().expect("utf-8 path")),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}\n{stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{stderr}");
    assert!(
        lines[0].contains("BAZAAR_IDENTITY_SIGNING_KEY") && lines[0].contains("production"),
        "{stderr}"
    );
}
