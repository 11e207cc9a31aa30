//! Card numbers are never stored, published or logged: after payments with
//! full numbers, neither the database files, nor the event log, nor any
//! line logged by this test binary (every test's, at TRACE) contains one.

use std::path::Path;

use bazaar_testkit::Engine;
use sqlx::Row as _;
use uuid::Uuid;

use crate::support::{DECLINED, apps, logs, request};

/// The bytes of every file under `dir`.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else {
            let bytes = std::fs::read(&path).expect("read file");
            out.push((path.display().to_string(), bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn card_numbers_appear_in_no_file_and_no_log_line() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();
        let numbers = [
            "5105105105105100",
            "4000056655665556",
            DECLINED,
            "4000000000000010",
            "6011111111111117",
        ];
        let orders: Vec<Uuid> = numbers.iter().map(|_| Uuid::now_v7()).collect();
        for (order, number) in orders.iter().zip(&numbers[..4]) {
            app.authorize(*order, user, 1234, number).await.unwrap();
        }
        app.capture(orders[0]).await.unwrap();
        app.refund(orders[0]).await.unwrap();
        app.void(orders[1]).await.unwrap();
        // Refused calls too: a malformed CVC, another amount.
        let mut bad = request(orders[4], user, 1234, numbers[4]);
        bad.card.as_mut().unwrap().cvc = "12".into();
        app.authorize_with(bad).await.unwrap_err();
        app.authorize(orders[1], user, 99, numbers[1])
            .await
            .unwrap_err();
        app.published().await;

        if let Engine::Postgres(_) = app.engine {
            let db = app.db().await;
            for table in ["payments", "ledger"] {
                let rows = sqlx::query(&format!("SELECT t::text FROM {table} t"))
                    .fetch_all(db.pool())
                    .await
                    .unwrap();
                assert!(!rows.is_empty());
                for row in rows {
                    let text: String = row.get(0);
                    for number in numbers {
                        assert!(!text.contains(number), "{table} on {on}: {text}");
                    }
                }
            }
            db.close().await;
        }
        let dir = app.stop_keeping_files().await;

        // Every file: the SQLite database with its WAL, the event log.
        let mut stored = Vec::new();
        files(dir.path(), &mut stored);
        for (path, bytes) in &stored {
            for number in numbers {
                assert!(!contains(bytes, number), "{number} in {path} on {on}");
            }
        }
        if on == "sqlite" {
            // The last four digits are kept: the search does find what is there.
            assert!(
                stored
                    .iter()
                    .any(|(path, bytes)| path.contains("payments.db") && contains(bytes, "5100")),
                "{:?}",
                stored.iter().map(|(path, _)| path).collect::<Vec<_>>()
            );
        }

        let logs = logs().text();
        assert!(
            logs.contains(&orders[0].to_string()) && logs.contains("payment authorized"),
            "the capture holds the service's logs ({on})"
        );
        for number in numbers {
            assert!(!logs.contains(number), "{number} logged on {on}");
        }
    }
}
