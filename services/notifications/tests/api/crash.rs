//! A crash while events flow loses nothing and doubles nothing: the
//! process dies at any point (mid-transaction, between commit and ack,
//! with e-mails claimed but not marked sent), starts again on the same
//! database, and afterwards every event has exactly one notification and
//! every order exactly one e-mail.
//!
//! Slow on purpose: what the dead process had claimed comes back only
//! when its claims run out (the broker's lease or ack wait, 30 s).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bazaar_testkit::engines;
use serde_json::Value;
use uuid::Uuid;

use crate::events::eml_files;
use crate::support::{
    BrokerKind, Killable, LONG, World, all, brokers, confirmed, feed, registered, settings,
    stock_low,
};

/// Stock warnings published before the crash, and while it is down.
const BEFORE: usize = 120;
const WHILE_DOWN: usize = 40;
/// Every this many warnings, an order confirmation (with its e-mail) too.
const ORDER_EVERY: usize = 8;

#[tokio::test]
async fn killed_while_events_flow_on_the_embedded_log() {
    killed_while_events_flow(BrokerKind::Embedded).await;
}

#[tokio::test]
async fn killed_while_events_flow_on_nats() {
    for broker in brokers() {
        if matches!(broker, BrokerKind::Nats(_)) {
            killed_while_events_flow(broker).await;
        }
    }
}

async fn killed_while_events_flow(broker: BrokerKind) {
    for engine in engines() {
        let world = World::new(engine, broker.clone()).await;
        let name = world.name();
        let http = &world.http;
        let seller = world.user("seller").await;
        let buyer = world.user("customer").await;
        world.bus.publish(&registered(&buyer, "Buyer")).await;

        let mut products = Vec::new();
        let mut orders = Vec::new();
        let mut publish = async |n: usize| {
            for i in 0..n {
                let product = Uuid::now_v7();
                world
                    .bus
                    .publish(&stock_low(product, seller.uuid(), 1))
                    .await;
                products.push(product);
                if i % ORDER_EVERY == 0 {
                    let order = Uuid::now_v7();
                    world.bus.publish(&confirmed(order, buyer.uuid())).await;
                    orders.push(order);
                }
            }
        };

        // A backlog first, so the instance is busy from its first moment.
        publish(BEFORE).await;
        let first = Killable::start(world.config("notifications-0"), settings()).await;
        // Let it get going, then kill it while it works through the rest.
        let started = Instant::now();
        loop {
            let total = feed(http, &first.base, &seller, "?limit=1").await["total"]
                .as_u64()
                .unwrap();
            if total >= 10 {
                assert!(
                    total < BEFORE as u64,
                    "{name}: everything was handled before the crash; publish more"
                );
                break;
            }
            assert!(started.elapsed() < LONG, "{name}: nothing handled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first.kill();
        publish(WHILE_DOWN).await;

        let second = Killable::start(world.config("notifications-0"), settings()).await;
        let started = Instant::now();
        let (warnings, confirmations) = loop {
            let warnings = all(http, &second.base, &seller).await;
            let confirmations = all(http, &second.base, &buyer).await;
            // Paging newest first while notifications are still being
            // stored can show an item on two pages: count distinct ids,
            // and once all are there read the settled feeds again.
            let distinct = |items: &[Value], kind: Option<&str>| {
                items
                    .iter()
                    .filter(|i| kind.is_none_or(|k| i["kind"] == k))
                    .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
                    .collect::<HashSet<String>>()
                    .len()
            };
            let done = distinct(&warnings, None) >= products.len()
                && distinct(&confirmations, Some("order_confirmed")) >= orders.len();
            if done {
                break (
                    all(http, &second.base, &seller).await,
                    all(http, &second.base, &buyer).await,
                );
            }
            assert!(
                started.elapsed() < LONG,
                "{name}: {} of {} warnings, {} of {} confirmations after the restart",
                warnings.len(),
                products.len(),
                confirmations.len(),
                orders.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

        // Exactly one notification per event.
        let links: HashSet<String> = warnings
            .iter()
            .map(|i| i["link"].as_str().unwrap().to_owned())
            .collect();
        let expected: HashSet<String> = products.iter().map(|p| format!("/products/{p}")).collect();
        assert_eq!(warnings.len(), products.len(), "{name}: a warning twice");
        assert_eq!(links, expected, "{name}");
        let confirmed_links: Vec<&str> = confirmations
            .iter()
            .filter(|i| i["kind"] == "order_confirmed")
            .map(|i| i["link"].as_str().unwrap())
            .collect();
        let distinct: HashSet<&str> = confirmed_links.iter().copied().collect();
        assert_eq!(
            confirmed_links.len(),
            orders.len(),
            "{name}: an order twice"
        );
        assert_eq!(distinct.len(), orders.len(), "{name}");
        assert_eq!(
            confirmations
                .iter()
                .filter(|i| i["kind"] == "welcome")
                .count(),
            1,
            "{name}"
        );

        // Exactly one e-mail per order: files are named after their
        // notification, so a resend after the crash overwrote its file.
        let dir = world.mail_dir();
        let started = Instant::now();
        while eml_files(&dir).len() < orders.len() {
            assert!(
                started.elapsed() < LONG,
                "{name}: {} of {} e-mails",
                eml_files(&dir).len(),
                orders.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(eml_files(&dir).len(), orders.len(), "{name}");
        second.kill();
    }
}
