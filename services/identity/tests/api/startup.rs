//! Starting: the signing key in production and across restarts.

use bazaar_identity::{DEV_KEY_FILE, Identity};
use bazaar_platform::config::Environment;
use bazaar_platform::server::Server;
use reqwest::Method;

use crate::support::{config, engines, spawn, start};

#[tokio::test]
async fn production_refuses_to_start_without_a_key() {
    if std::env::var_os("BAZAAR_IDENTITY_SIGNING_KEY").is_some()
        || std::env::var_os("BAZAAR_IDENTITY_SIGNING_KEY_FILE").is_some()
    {
        eprintln!("skipped: a signing key is set in this test's environment");
        return;
    }
    bazaar_platform::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = config(dir.path(), &crate::support::Engine::Sqlite);
    config.environment = Environment::Production;
    let error = Server::build::<Identity>(config)
        .await
        .expect_err("production without a key must not start");
    let message = format!("{error:#}");
    assert!(
        message.contains("BAZAAR_IDENTITY_SIGNING_KEY") && message.contains("production"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(!dir.path().join(DEV_KEY_FILE).exists());
}

#[tokio::test]
async fn the_development_key_survives_a_restart() {
    for engine in engines() {
        let app = spawn(engine).await;
        let (_, tokens) = app.user("customer").await;
        let jwks_before: serde_json::Value = app
            .call(Method::GET, "/api/v1/auth/jwks.json", None)
            .await
            .json()
            .await
            .expect("JWKS");
        let key_file = app.config.data_dir.join(DEV_KEY_FILE);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_file)
                .expect("the dev key")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");

        let (config, engine, dir) = app.stop().await;
        let app = start(config, engine, dir).await;
        let jwks_after: serde_json::Value = app
            .call(Method::GET, "/api/v1/auth/jwks.json", None)
            .await
            .json()
            .await
            .expect("JWKS");
        assert_eq!(jwks_before, jwks_after, "the same key on {}", app.on());
        let res = app
            .call(Method::GET, "/api/v1/users/me", Some(&tokens.access_token))
            .await;
        assert_eq!(
            res.status(),
            200,
            "a token from before the restart on {}",
            app.on()
        );
        assert_eq!(app.refresh(&tokens.refresh_token).await.status(), 200);
    }
}
