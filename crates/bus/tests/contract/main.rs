//! The broker contract, run against every adapter: the embedded log always,
//! NATS JetStream when `BAZAAR_TEST_NATS_URL` is set. The outbox/inbox tests
//! run on a SQLite service database always, and on PostgreSQL too when
//! `BAZAAR_TEST_POSTGRES_URL` is set.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bazaar_bus::subscription::{self, DeadLetter, Handler, Outcome, Subscription};
use bazaar_bus::{Envelope, Event as _, metrics::BusMetrics, outbox};
use serde_json::json;
use support::{Item, Running, brokers, receive, service_dbs};

#[tokio::test]
async fn events_of_a_subject_arrive_in_order_and_all_arrive() {
    for b in brokers().await {
        for n in 0..30_u32 {
            let subject = format!("s{}", n % 3);
            b.broker
                .publish(&Item::envelope(&subject, n))
                .await
                .unwrap();
        }
        let mut consumer = b.broker.consume("ordered", &[Item::topic()]).await.unwrap();
        let got = receive(consumer.as_mut(), 30, true).await;
        let mut by_subject: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for e in &got {
            let item: Item = e.decode().unwrap();
            by_subject
                .entry(e.subject.clone().unwrap())
                .or_default()
                .push(item.n);
        }
        assert_eq!(by_subject.len(), 3, "[{}]", b.name);
        for (subject, ns) in by_subject {
            let mut sorted = ns.clone();
            sorted.sort_unstable();
            assert_eq!(ns, sorted, "[{}] order within {subject}", b.name);
            assert_eq!(ns.len(), 10, "[{}]", b.name);
        }
        // Acked means done: the group has nothing left.
        let mut again = b.broker.consume("ordered", &[Item::topic()]).await.unwrap();
        let extra = again.next(Duration::from_millis(1500)).await.unwrap();
        assert!(
            extra.is_none(),
            "[{}] acked event delivered again: {extra:?}",
            b.name
        );
        assert_eq!(
            b.broker.lag("ordered", &[Item::topic()]).await.unwrap(),
            0,
            "[{}]",
            b.name
        );
    }
}

#[tokio::test]
async fn a_nacked_event_comes_again() {
    for b in brokers().await {
        let sent = Item::envelope("x", 1);
        b.broker.publish(&sent).await.unwrap();
        let mut consumer = b.broker.consume("retry", &[Item::topic()]).await.unwrap();
        let first = consumer
            .next(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.attempt, 1, "[{}]", b.name);
        first.acker.nack(Duration::from_millis(100)).await.unwrap();
        let second = consumer
            .next(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.envelope.id, sent.id, "[{}]", b.name);
        assert_eq!(second.attempt, 2, "[{}]", b.name);
        second.acker.ack().await.unwrap();
    }
}

#[tokio::test]
async fn an_event_whose_consumer_died_goes_to_another_member() {
    for b in brokers().await {
        let sent = Item::envelope("x", 1);
        b.broker.publish(&sent).await.unwrap();
        let mut doomed = b
            .broker
            .consume("takeover", &[Item::topic()])
            .await
            .unwrap();
        let taken = doomed.next(Duration::from_secs(10)).await.unwrap().unwrap();
        assert_eq!(taken.envelope.id, sent.id);
        // The consumer dies holding it, without ack or nack.
        drop(taken);
        drop(doomed);
        let mut survivor = b
            .broker
            .consume("takeover", &[Item::topic()])
            .await
            .unwrap();
        let again = survivor.next(Duration::from_secs(15)).await.unwrap();
        let again = again.unwrap_or_else(|| panic!("[{}] event lost with its consumer", b.name));
        assert_eq!(again.envelope.id, sent.id, "[{}]", b.name);
        assert!(again.attempt >= 2, "[{}]", b.name);
        again.acker.ack().await.unwrap();
    }
}

#[tokio::test]
async fn competing_consumers_split_the_work() {
    for b in brokers().await {
        for n in 0..60 {
            b.broker
                .publish(&Item::envelope(&format!("s{n}"), n))
                .await
                .unwrap();
        }
        let topics = [Item::topic()];
        let one = b.broker.consume("workers", &topics).await.unwrap();
        let two = b.broker.consume("workers", &topics).await.unwrap();
        let work = |mut c: Box<dyn bazaar_bus::Consumer>| async move {
            let mut ids = Vec::new();
            while let Some(d) = c.next(Duration::from_millis(1500)).await.unwrap() {
                ids.push(d.envelope.id.clone());
                // Slow work, so the other member gets a share.
                tokio::time::sleep(Duration::from_millis(5)).await;
                d.acker.ack().await.unwrap();
            }
            ids
        };
        let (a, c) = tokio::join!(work(one), work(two));
        let all: HashSet<_> = a.iter().chain(&c).cloned().collect();
        assert_eq!(
            a.len() + c.len(),
            60,
            "[{}] each event handled once: {} + {}",
            b.name,
            a.len(),
            c.len()
        );
        assert_eq!(all.len(), 60, "[{}]", b.name);
        assert!(
            !a.is_empty() && !c.is_empty(),
            "[{}] both members worked: {} + {}",
            b.name,
            a.len(),
            c.len()
        );
    }
}

#[tokio::test]
async fn a_new_group_replays_from_the_beginning() {
    for b in brokers().await {
        for n in 0..5 {
            b.broker.publish(&Item::envelope("x", n)).await.unwrap();
        }
        let mut first = b.broker.consume("early", &[Item::topic()]).await.unwrap();
        receive(first.as_mut(), 5, true).await;
        // A group created later still sees everything.
        let mut late = b.broker.consume("late", &[Item::topic()]).await.unwrap();
        let got = receive(late.as_mut(), 5, true).await;
        let ns: Vec<u32> = got.iter().map(|e| e.decode::<Item>().unwrap().n).collect();
        assert_eq!(ns, vec![0, 1, 2, 3, 4], "[{}]", b.name);
    }
}

#[tokio::test]
async fn a_group_only_sees_its_topics() {
    for b in brokers().await {
        b.broker.publish(&Item::envelope("x", 1)).await.unwrap();
        let mut other = Item::envelope("x", 2);
        other.topic = "test.other.changed".into();
        b.broker.publish(&other).await.unwrap();
        let mut consumer = b
            .broker
            .consume("picky", &["test.other.changed".to_owned()])
            .await
            .unwrap();
        let got = receive(consumer.as_mut(), 1, true).await;
        assert_eq!(got[0].id, other.id, "[{}]", b.name);
        assert!(
            consumer
                .next(Duration::from_millis(800))
                .await
                .unwrap()
                .is_none(),
            "[{}]",
            b.name
        );
    }
}

/// Records each event id it handles, with no unique constraint, so a
/// second handling would show as a second row.
struct Record;

#[async_trait::async_trait]
impl Handler for Record {
    async fn handle(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
            .bind(&event.id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

struct AlwaysFails;

#[async_trait::async_trait]
impl Handler for AlwaysFails {
    async fn handle(
        &self,
        _tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        _event: &Envelope,
    ) -> anyhow::Result<()> {
        anyhow::bail!("this event is poison")
    }
}

/// Fails its first `n` deliveries (a database that blinks), then handles.
struct FailsFirst {
    n: u32,
    seen: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl Handler for FailsFirst {
    async fn handle(
        &self,
        _tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        _event: &Envelope,
    ) -> anyhow::Result<()> {
        let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        anyhow::ensure!(
            seen > self.n,
            "the database is restarting (delivery {seen})"
        );
        Ok(())
    }
}

/// Rejects every event for good.
struct Rejects;

#[async_trait::async_trait]
impl Handler for Rejects {
    async fn handle(
        &self,
        _tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        _event: &Envelope,
    ) -> anyhow::Result<()> {
        Err(subscription::Poison::new("no such seller, ever").into())
    }
}

/// An acker that forgets to ack: the process "crashed" after commit.
struct Forgetful;

#[async_trait::async_trait]
impl bazaar_bus::Acker for Forgetful {
    async fn ack(&self) -> Result<(), bazaar_bus::BusError> {
        Ok(())
    }
    async fn nack(&self, _delay: Duration) -> Result<(), bazaar_bus::BusError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    for b in brokers().await {
        for db in service_dbs().await {
            let sent = Item::envelope("x", 1);
            b.broker.publish(&sent).await.unwrap();
            let sub = Subscription::new("inbox", &[Item::TOPIC], Record);
            let metrics = BusMetrics::default();
            let mut consumer = b.broker.consume("inbox", &sub.topics).await.unwrap();

            // Handled and committed, but the ack never happened.
            let first = consumer
                .next(Duration::from_secs(10))
                .await
                .unwrap()
                .unwrap();
            let crashed = bazaar_bus::Delivery {
                acker: Box::new(Forgetful),
                ..first
            };
            let outcome =
                subscription::process(&sub, &db.pool, b.broker.as_ref(), &metrics, crashed)
                    .await
                    .unwrap();
            assert_eq!(outcome, Outcome::Handled);

            // So the broker delivers it again (after the lease / ack wait).
            let again = consumer
                .next(Duration::from_secs(15))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again.envelope.id, sent.id);
            let outcome = subscription::process(&sub, &db.pool, b.broker.as_ref(), &metrics, again)
                .await
                .unwrap();
            assert_eq!(outcome, Outcome::Duplicate, "[{} on {}]", b.name, db.name);
            assert_eq!(db.effects(&sent.id).await, 1, "[{} on {}]", b.name, db.name);
            assert!(
                consumer
                    .next(Duration::from_millis(1500))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_after_max_attempts() {
    for b in brokers().await {
        let db = &service_dbs().await[0];
        let poison = Item::envelope("x", 13);
        b.broker.publish(&poison).await.unwrap();
        let sub = Subscription::new("picky-eater", &[Item::TOPIC], AlwaysFails)
            .max_attempts(3)
            .backoff(Duration::from_millis(20), Duration::from_millis(50));
        let runner = Running::start(sub.clone(), &db.pool, &b.broker, BusMetrics::default());
        let dlq = subscription::dead_letter_topic("picky-eater");
        let mut watcher = b
            .broker
            .consume("dlq-reader", std::slice::from_ref(&dlq))
            .await
            .unwrap();
        let got = receive(watcher.as_mut(), 1, true).await;
        let letter: DeadLetter = serde_json::from_value(got[0].data.clone()).unwrap();
        assert_eq!(letter.attempts, 3, "[{}]", b.name);
        assert_eq!(letter.event.id, poison.id);
        assert!(letter.error.contains("poison"));
        assert_eq!(got[0].topic, dlq);
        // The original is settled: nothing left for the group.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            b.broker.lag("picky-eater", &sub.topics).await.unwrap(),
            0,
            "[{}]",
            b.name
        );
        runner.stop().await;
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_past_any_count_until_it_succeeds() {
    for b in brokers().await {
        let db = &service_dbs().await[0];
        let event = Item::envelope("x", 21);
        b.broker.publish(&event).await.unwrap();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        // Twelve failures: more than any attempt count a group used to get.
        let handler = FailsFirst {
            n: 12,
            seen: seen.clone(),
        };
        let sub = Subscription::new("patient", &[Item::TOPIC], handler)
            .backoff(Duration::from_millis(5), Duration::from_millis(20));
        let runner = Running::start(sub.clone(), &db.pool, &b.broker, BusMetrics::default());
        let started = std::time::Instant::now();
        while seen.load(std::sync::atomic::Ordering::SeqCst) < 13 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "[{}] only {} deliveries",
                b.name,
                seen.load(std::sync::atomic::Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let handled: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM bazaar_inbox WHERE consumer = 'patient' AND event_id = $1",
        )
        .bind(&event.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(handled, 1, "[{}] handled in the end", b.name);
        // Nothing was dead-lettered.
        let mut dlq = b
            .broker
            .consume("dlq-reader", &[subscription::dead_letter_topic("patient")])
            .await
            .unwrap();
        assert!(
            dlq.next(Duration::from_millis(300))
                .await
                .unwrap()
                .is_none(),
            "[{}]",
            b.name
        );
        runner.stop().await;
    }
}

#[tokio::test]
async fn poison_goes_to_dead_letters_on_its_first_delivery() {
    for b in brokers().await {
        let db = &service_dbs().await[0];
        let bad = Item::envelope("x", 34);
        b.broker.publish(&bad).await.unwrap();
        let sub = Subscription::new("strict", &[Item::TOPIC], Rejects);
        let runner = Running::start(sub.clone(), &db.pool, &b.broker, BusMetrics::default());
        let dlq = subscription::dead_letter_topic("strict");
        let mut watcher = b
            .broker
            .consume("dlq-reader", std::slice::from_ref(&dlq))
            .await
            .unwrap();
        let got = receive(watcher.as_mut(), 1, true).await;
        let letter: DeadLetter = serde_json::from_value(got[0].data.clone()).unwrap();
        assert_eq!(letter.attempts, 1, "[{}] not retried", b.name);
        assert_eq!(letter.event.id, bad.id);
        assert!(letter.error.contains("no such seller"), "{}", letter.error);
        runner.stop().await;
    }
}

/// Kill the relay while events are being produced; a new relay picks up
/// where it left, and every event reaches the handler's effects once.
#[tokio::test]
async fn killing_the_relay_loses_nothing() {
    for b in brokers().await {
        for db in service_dbs().await {
            let metrics = BusMetrics::default();
            let relay = || {
                outbox::Relay::new(
                    db.pool.clone(),
                    b.broker.clone(),
                    metrics.clone(),
                    outbox::RelayOptions::default(),
                )
            };
            let first = tokio::spawn(relay().run(std::future::pending()));

            let sub = Subscription::new("effects", &[Item::TOPIC], Record);
            let runner = Running::start(sub, &db.pool, &b.broker, metrics.clone());

            let mut ids = Vec::new();
            for n in 0..200_u32 {
                ids.push(db.produce(n).await);
                if n == 70 {
                    // Mid-stream, no goodbye: the task is dropped wherever it is.
                    first.abort();
                }
            }
            let _ = first.await;
            let second = tokio::spawn(relay().run(std::future::pending()));

            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let handled = db.distinct_effects().await;
                if handled == 200 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "[{} on {}] only {handled} of 200 handled",
                    b.name,
                    db.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for id in &ids {
                assert_eq!(
                    db.effects(id).await,
                    1,
                    "[{} on {}] {id} handled once",
                    b.name,
                    db.name
                );
            }
            assert_eq!(db.outbox_len().await, 0, "[{} on {}]", b.name, db.name);
            second.abort();
            runner.stop().await;
        }
    }
}

#[tokio::test]
async fn outbox_appends_only_with_their_transaction() {
    for db in service_dbs().await {
        let mut tx = db.pool.begin().await.unwrap();
        outbox::append(&mut tx, "test", Some("x"), &Item { n: 1 })
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            db.outbox_len().await,
            0,
            "[{}] a rolled-back change announces nothing",
            db.name
        );
        let mut tx = db.pool.begin().await.unwrap();
        let e = outbox::append(&mut tx, "test", Some("x"), &Item { n: 2 })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.outbox_len().await, 1, "[{}]", db.name);
        assert_eq!(e.source, "/bazaar/test");
        assert_eq!(e.decode::<Item>().unwrap().n, 2);
    }
}

#[tokio::test]
async fn only_one_relay_publishes_at_a_time() {
    let b = &brokers().await[0];
    for db in service_dbs().await {
        for n in 0..5 {
            db.produce(n).await;
        }
        let metrics = BusMetrics::default();
        let one = outbox::Relay::new(
            db.pool.clone(),
            b.broker.clone(),
            metrics.clone(),
            outbox::RelayOptions::default(),
        );
        let two = outbox::Relay::new(
            db.pool.clone(),
            b.broker.clone(),
            metrics.clone(),
            outbox::RelayOptions::default(),
        );
        assert_eq!(one.round().await.unwrap(), 5, "[{}]", db.name);
        for n in 5..8 {
            db.produce(n).await;
        }
        assert_eq!(
            two.round().await.unwrap(),
            0,
            "[{}] the other replica holds the lease",
            db.name
        );
        assert_eq!(one.round().await.unwrap(), 3, "[{}]", db.name);
    }
}

#[test]
fn envelope_json_is_cloudevents() {
    let e = Item::envelope("x", 1);
    let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
    for field in [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "data",
    ] {
        assert!(v.get(field).is_some(), "{field} missing");
    }
    assert_eq!(v["data"], json!({"n": 1}));
}

/// NATS goes away while events are being produced: the outbox keeps
/// accepting them, `ping` reports the outage, and when the server is back
/// every event reaches the handler's effects exactly once. Runs a private
/// nats-server (from PATH or /usr/sbin) so the shared one is left alone.
#[tokio::test]
async fn a_nats_outage_loses_nothing() {
    let Some(binary) = support::nats_server_binary() else {
        eprintln!("skipped: no nats-server binary on this machine");
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut server = support::start_nats(&binary, port, store.path()).await;
    let url = format!("nats://127.0.0.1:{port}");
    let broker: std::sync::Arc<dyn bazaar_bus::Broker> = std::sync::Arc::new(
        bazaar_bus::nats::NatsBroker::connect(&url, "OUTAGE")
            .await
            .unwrap()
            .with_ack_wait(support::LEASE),
    );
    let db = &service_dbs().await[0];
    let metrics = BusMetrics::default();
    let relay = outbox::Relay::new(
        db.pool.clone(),
        broker.clone(),
        metrics.clone(),
        outbox::RelayOptions::default(),
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let sub = Subscription::new("effects", &[Item::TOPIC], Record);
    let runner = tokio::spawn(subscription::run(
        sub,
        db.pool.clone(),
        broker.clone(),
        metrics,
        std::future::pending(),
    ));

    let mut ids = Vec::new();
    for n in 0..120_u32 {
        if n == 40 {
            server.kill().await.unwrap();
            server.wait().await.unwrap();
            let mut down = false;
            for _ in 0..50 {
                if broker.ping().await.is_err() {
                    down = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(down, "ping must report the outage");
        }
        if n == 80 {
            server = support::start_nats(&binary, port, store.path()).await;
        }
        // Commits go through whether or not the broker is up.
        ids.push(db.produce(n).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let handled = db.distinct_effects().await;
        if handled == 120 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {handled} of 120 handled after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        assert_eq!(db.effects(id).await, 1, "{id} handled once");
    }
    broker.ping().await.unwrap();
    relay.abort();
    runner.abort();
    let _ = server.kill().await;
}
