//! The storefront in a real browser: `tests/browser/run.mjs` (playwright-core
//! driving headless Chromium) walks the shop's journeys against a seeded
//! fleet and saves a screenshot of every page in
//! `<repo>/target/browser-screenshots/`.
//!
//! Runs only with `BAZAAR_TEST_BROWSER=1` (CI sets it): a machine with only
//! Rust has no Chromium. Then it needs `npm ci` in `tests/browser` first,
//! and Chromium at `BAZAAR_CHROMIUM` or `/usr/bin/chromium`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::Fleet;

/// How long the journeys may take together.
const JOURNEYS_TIMEOUT: Duration = Duration::from_secs(600);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

#[tokio::test]
async fn the_shop_works_in_a_browser() {
    if std::env::var("BAZAAR_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set BAZAAR_TEST_BROWSER=1 to drive the storefront in headless Chromium \
             (needs node, `npm ci` in tests/browser and Chromium)"
        );
        return;
    }
    let root = repo_root();
    let dir = root.join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "BAZAAR_TEST_BROWSER=1 but {} has no node_modules/playwright-core: run `npm ci` there first",
        dir.display()
    );
    let chromium =
        std::env::var("BAZAAR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install it or set BAZAAR_CHROMIUM"
    );
    // The repository's own target/, whatever CARGO_TARGET_DIR says.
    let screenshots = root.join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).expect("the screenshot directory");

    // Seeded: the journeys browse the demo catalog.
    let fleet = Fleet::start().await;
    let mut command = tokio::process::Command::new("node");
    command
        .arg("run.mjs")
        .current_dir(&dir)
        .env("BAZAAR_URL", fleet.base_url())
        .env("BAZAAR_CHROMIUM", &chromium)
        .env("BAZAAR_SCREENSHOTS", &screenshots)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // The launcher writes the local admin's password there (when it does).
    match std::fs::read_to_string(fleet.data_dir().join("admin-password")) {
        Ok(password) => {
            command
                .env("BAZAAR_ADMIN_EMAIL", "admin@bazaar.local")
                .env("BAZAAR_ADMIN_PASSWORD", password.trim());
        }
        Err(_) => {
            command
                .env_remove("BAZAAR_ADMIN_EMAIL")
                .env_remove("BAZAAR_ADMIN_PASSWORD");
        }
    }
    let output = tokio::time::timeout(JOURNEYS_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the browser journeys took over {}s\nfleet output:\n{}",
                JOURNEYS_TIMEOUT.as_secs(),
                fleet.output()
            )
        })
        .expect("run node (is it installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser journeys failed ({}); screenshots in {}\n--- node stdout ---\n{stdout}\n--- node stderr ---\n{stderr}\n--- fleet output ---\n{}",
        output.status,
        screenshots.display(),
        fleet.output()
    );
}
