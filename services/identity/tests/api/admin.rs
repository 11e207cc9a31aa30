//! The admin account ensured at start: created once from the configured
//! password, signing in as `admin`, never duplicated by restarts or racing
//! replicas, never imposed on an account that exists.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bazaar_bus::Event as _;
use bazaar_events::identity::{Role, UserRegistered};
use bazaar_identity::{
    ADMIN_PASSWORD, ADMIN_PASSWORD_FILE, DEFAULT_ADMIN_EMAIL, Identity, Settings,
};
use bazaar_platform::config::Config;
use bazaar_platform::db::{Db, Migrations};
use bazaar_platform::server::{Context, Routes, Server, Service};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, config, engines, problem, start, start_as};

/// The password [`WithAdmin`] configures.
const PASSWORD: &str = "an admin's password";
/// The file [`WithAdminFile`] reads, in the instance's data dir (as `bazaar
/// up` generates `<data dir>/admin-password`).
const PASSWORD_FILE: &str = "admin-password";

/// Identity with `BAZAAR_IDENTITY_ADMIN_PASSWORD` set.
struct WithAdmin;

impl Service for WithAdmin {
    const NAME: &'static str = "identity";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        Identity::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let settings = Settings::from_vars([(ADMIN_PASSWORD.to_owned(), PASSWORD.to_owned())])?;
        bazaar_identity::build(ctx, settings).await
    }
}

/// Identity with `BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE` naming a file in its
/// data dir.
struct WithAdminFile;

impl Service for WithAdminFile {
    const NAME: &'static str = "identity";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        Identity::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let file = ctx.config().data_dir.join(PASSWORD_FILE);
        let settings = Settings::from_vars([(
            ADMIN_PASSWORD_FILE.to_owned(),
            file.to_string_lossy().into_owned(),
        )])?;
        bazaar_identity::build(ctx, settings).await
    }
}

/// The claims of an access token, read without verifying it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// How many accounts have `email`, and their roles.
async fn accounts(config: &Config, email: &str) -> Vec<String> {
    let db = Db::connect(&config.database).await.expect("the database");
    let rows = sqlx::query("SELECT role FROM users WHERE email = $1")
        .bind(email)
        .fetch_all(db.pool())
        .await
        .expect("users");
    db.close().await;
    rows.iter()
        .map(|r| sqlx::Row::get::<String, _>(r, 0))
        .collect()
}

async fn login(app: &App, email: &str, password: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

/// A fresh data dir and configuration on each engine.
fn fresh() -> Vec<(Config, crate::support::Engine, Arc<tempfile::TempDir>)> {
    engines()
        .into_iter()
        .map(|engine| {
            let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
            (config(dir.path(), &engine), engine, dir)
        })
        .collect()
}

#[tokio::test]
async fn the_configured_admin_is_created_once_and_signs_in_as_admin() {
    for (config, engine, dir) in fresh() {
        std::fs::write(config.data_dir.join(PASSWORD_FILE), format!("{PASSWORD}\n"))
            .expect("the password file");
        let app = start_as::<WithAdminFile>(config, engine, dir).await;
        let tokens = app.login(DEFAULT_ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(
            claims(&tokens.access_token)["role"],
            "admin",
            "{}",
            app.on()
        );
        let me: Value = app
            .call(Method::GET, "/api/v1/users/me", Some(&tokens.access_token))
            .await
            .json()
            .await
            .expect("me");
        assert_eq!(me["email"], DEFAULT_ADMIN_EMAIL);
        assert_eq!(me["role"], "admin", "{me} on {}", app.on());
        // The e-mail is taken like any other.
        let res = app
            .post(
                "/api/v1/auth/register",
                &json!({"email": DEFAULT_ADMIN_EMAIL, "password": "password123", "name": "X"}),
            )
            .await;
        problem(res, 409).await;
        // Announced like any new account.
        let events = app
            .events(&[UserRegistered::TOPIC], |seen| !seen.is_empty())
            .await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event: UserRegistered = events[0].decode().expect("the event");
        assert_eq!(event.role, Role::Admin);
        assert_eq!(event.email, DEFAULT_ADMIN_EMAIL);

        // A restart with the same settings changes nothing.
        let (config, engine, dir) = app.stop().await;
        let app = start_as::<WithAdminFile>(config, engine, dir).await;
        let again = app.login(DEFAULT_ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(claims(&again.access_token)["role"], "admin");
        assert_eq!(
            claims(&again.access_token)["sub"],
            me["id"],
            "the same user"
        );
        assert_eq!(
            accounts(&app.config, DEFAULT_ADMIN_EMAIL).await,
            ["admin"],
            "one account on {}",
            app.on()
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn replicas_starting_together_create_one_admin() {
    for (config, engine, dir) in fresh() {
        // Migrated first, so the replicas race only to create the admin.
        let app = start(config, engine, dir).await;
        let (config, _engine, _dir) = app.stop().await;
        let mut replicas = tokio::task::JoinSet::new();
        for _ in 0..4 {
            replicas.spawn(Server::build::<WithAdmin>(config.clone()));
        }
        let mut started = Vec::new();
        while let Some(built) = replicas.join_next().await {
            started.push(built.expect("task").expect("every replica starts"));
        }
        drop(started);
        assert_eq!(accounts(&config, DEFAULT_ADMIN_EMAIL).await, ["admin"]);
    }
}

#[tokio::test]
async fn an_account_that_exists_is_left_as_it_is() {
    if std::env::var_os(ADMIN_PASSWORD).is_some() || std::env::var_os(ADMIN_PASSWORD_FILE).is_some()
    {
        eprintln!("skipped: an admin password is set in this test's environment");
        return;
    }
    for (config, engine, dir) in fresh() {
        // Without a password, no admin.
        let app = start(config, engine, dir).await;
        assert_eq!(
            login(&app, DEFAULT_ADMIN_EMAIL, PASSWORD).await.status(),
            401
        );
        assert!(accounts(&app.config, DEFAULT_ADMIN_EMAIL).await.is_empty());
        app.register(DEFAULT_ADMIN_EMAIL, "a customer's password", None)
            .await;
        let (config, engine, dir) = app.stop().await;

        // Configured later, the admin password changes neither the
        // account's password nor its role.
        let app = start_as::<WithAdmin>(config, engine, dir).await;
        assert_eq!(
            login(&app, DEFAULT_ADMIN_EMAIL, PASSWORD).await.status(),
            401
        );
        let tokens = app
            .login(DEFAULT_ADMIN_EMAIL, "a customer's password")
            .await;
        assert_eq!(claims(&tokens.access_token)["role"], "customer");
        assert_eq!(
            accounts(&app.config, DEFAULT_ADMIN_EMAIL).await,
            ["customer"],
            "on {}",
            app.on()
        );
        app.stop().await;
    }
}
