//! E-mail for orders: `.eml` files a mail client reads on one machine, SMTP
//! when configured, and an order of a user not yet known is mailed once
//! identity's announcement arrives.

use std::path::Path;
use std::time::{Duration, Instant};

use bazaar_notifications::Settings;
use bazaar_platform::config::Secret;
use bazaar_testkit::{Engine, PATIENCE, engines, eventually};
use mail_parser::{MessageParser, MimeHeaders as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::events::eml_files;
use crate::support::{
    BrokerKind, World, cancelled, confirmed, of_kind, registered, settings, wait_for,
};

/// Reads `path` once it exists.
async fn read_when_written(path: &Path, patience: Duration) -> Vec<u8> {
    let started = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return bytes;
        }
        assert!(
            started.elapsed() < patience,
            "{} not written within {patience:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_order_confirmation_is_an_eml_file_a_mail_client_reads() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let name = world.name();
        let app = world.start().await;
        let http = &world.http;
        let ann = world.user("customer").await;
        let (order, other) = (Uuid::now_v7(), Uuid::now_v7());
        world.bus.publish(&registered(&ann, "Ann Example")).await;
        world.bus.publish(&confirmed(order, ann.uuid())).await;
        world
            .bus
            .publish(&cancelled(other, ann.uuid(), "Your card was declined."))
            .await;
        let items = wait_for(http, &app.base, &ann, "both orders", PATIENCE, |i| {
            i.len() == 3
        })
        .await;
        let id = of_kind(&items, "order_confirmed")[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let raw = read_when_written(&world.mail_dir().join(format!("{id}.eml")), PATIENCE).await;

        let message = MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("{name}: not an e-mail"));
        let content_type = message.content_type().expect("a content type");
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("multipart", Some("alternative")),
            "{name}"
        );
        assert_eq!(message.text_body_count(), 1, "{name}");
        assert_eq!(message.html_body_count(), 1, "{name}");
        assert!(
            !message.text_part(0).unwrap().is_text_html(),
            "a text/plain part"
        );
        assert!(
            message.html_part(0).unwrap().is_text_html(),
            "a text/html part"
        );
        let subject = message.subject().expect("a subject");
        assert!(subject.contains(&order.to_string()), "{subject}");
        assert_eq!(
            message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            Some("no-reply@bazaar.localhost")
        );
        let to = message.to().and_then(|a| a.first()).expect("a recipient");
        assert_eq!(to.address(), Some(ann.email.as_str()));
        assert_eq!(to.name(), Some("Ann Example"));
        assert_eq!(
            message.message_id(),
            Some(format!("{id}@bazaar.localhost").as_str())
        );
        assert!(message.date().is_some());

        let text = message.body_text(0).unwrap();
        assert!(text.starts_with("Hello Ann Example,"), "{text}");
        for needle in [
            order.to_string(),
            "2 x Cast iron teapot".to_owned(),
            "Total: 49.00 EUR".to_owned(),
            format!("http://shop.test/orders/{order}"),
        ] {
            assert!(text.contains(&needle), "{name}: {needle} not in\n{text}");
        }
        let html = message.body_html(0).unwrap();
        assert!(html.contains(&order.to_string()), "{html}");
        assert!(html.contains("Cast iron teapot"), "{html}");
        assert!(
            html.contains(&format!("href=\"http://shop.test/orders/{order}\"")),
            "{html}"
        );

        // The cancellation has its e-mail too, with the reason.
        let id = of_kind(&items, "order_cancelled")[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let raw = read_when_written(&world.mail_dir().join(format!("{id}.eml")), PATIENCE).await;
        let message = MessageParser::default().parse(&raw).unwrap();
        assert!(message.subject().unwrap().contains(&other.to_string()));
        assert!(
            message
                .body_text(0)
                .unwrap()
                .contains("Your card was declined.")
        );
        // No e-mail for the welcome.
        assert_eq!(eml_files(&world.mail_dir()).len(), 2, "{name}");
        app.stop().await;
    }
}

#[tokio::test]
async fn an_order_before_its_user_is_known_is_mailed_once_they_are() {
    let world = World::new(Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world.start().await;
    let http = &world.http;
    let ann = world.user("customer").await;
    let order = Uuid::now_v7();
    // Orders' event overtakes identity's.
    world.bus.publish(&confirmed(order, ann.uuid())).await;
    let items = wait_for(http, &app.base, &ann, "the order", PATIENCE, |i| {
        !i.is_empty()
    })
    .await;
    let id = items[0]["id"].as_str().unwrap().to_owned();
    world.bus.publish(&registered(&ann, "Ann")).await;
    // The worker tries again after 5 s.
    let raw = read_when_written(
        &world.mail_dir().join(format!("{id}.eml")),
        Duration::from_secs(30),
    )
    .await;
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some(ann.email.as_str())
    );
    assert!(message.subject().unwrap().contains(&order.to_string()));
    app.stop().await;
}

/// What a fake SMTP server was given.
#[derive(Debug)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// An SMTP server on port 0 that accepts everything: its port, and what
/// it receives.
async fn fake_smtp() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let say = async |w: &mut tokio::net::tcp::OwnedWriteHalf, s: &str| {
                    let _ = w.write_all(s.as_bytes()).await;
                };
                say(&mut write, "220 fake.test ESMTP\r\n").await;
                let (mut from, mut to) = (String::new(), Vec::new());
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        say(&mut write, "250 fake.test\r\n").await;
                    } else if upper.starts_with("MAIL FROM:") {
                        from = line[10..].trim().to_owned();
                        say(&mut write, "250 OK\r\n").await;
                    } else if upper.starts_with("RCPT TO:") {
                        to.push(line[8..].trim().to_owned());
                        say(&mut write, "250 OK\r\n").await;
                    } else if upper == "DATA" {
                        say(&mut write, "354 go on\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            data.push_str(&line);
                            data.push('\n');
                        }
                        let _ = tx.send(Received {
                            from: std::mem::take(&mut from),
                            to: std::mem::take(&mut to),
                            data,
                        });
                        say(&mut write, "250 queued\r\n").await;
                    } else if upper == "QUIT" {
                        say(&mut write, "221 bye\r\n").await;
                        break;
                    } else {
                        say(&mut write, "250 OK\r\n").await;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn e_mail_goes_through_smtp_when_configured() {
    let world = World::new(Engine::Sqlite, BrokerKind::Embedded).await;
    let (port, mut received) = fake_smtp().await;
    let app = world
        .start_with(
            "notifications-0",
            Settings {
                smtp_url: Some(Secret::new(format!("smtp://127.0.0.1:{port}"))),
                mail_from: "Shop <shop@example.com>".to_owned(),
                ..settings()
            },
        )
        .await;
    let ann = world.user("customer").await;
    let order = Uuid::now_v7();
    world.bus.publish(&registered(&ann, "Ann")).await;
    world
        .bus
        .publish(&cancelled(order, ann.uuid(), "Out of stock."))
        .await;
    let mail = tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("an e-mail within the patience")
        .expect("an e-mail");
    assert_eq!(mail.from, "<shop@example.com>");
    assert_eq!(mail.to, [format!("<{}>", ann.email)]);
    let message = MessageParser::default()
        .parse(mail.data.as_bytes())
        .expect("an e-mail");
    assert!(message.subject().unwrap().contains(&order.to_string()));
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    assert!(message.body_text(0).unwrap().contains("Out of stock."));
    // Sent, so not sent again; and no files.
    eventually("the e-mail is marked sent", || async {
        bazaar_testkit::scrape(&world.http, &app.base)
            .await
            .sum("notifications_mail_total", &[("outcome", "sent")])
            == 1.0
    })
    .await;
    assert!(eml_files(&world.mail_dir()).is_empty());
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), received.recv())
            .await
            .is_err(),
        "a second e-mail"
    );
    app.stop().await;
}
