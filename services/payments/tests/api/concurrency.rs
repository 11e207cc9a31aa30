//! Concurrent calls for one order: one records, every caller gets its
//! answer, money moves once.

use bazaar_proto::payments::v1 as pb;
use futures_util::future::join_all;
use uuid::Uuid;

use crate::support::{APPROVED, apps, of_order, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_captures_capture_once() {
    for app in apps().await {
        let on = app.on();
        let order = Uuid::now_v7();
        let authorized = app
            .authorize(order, Uuid::now_v7(), 9900, APPROVED)
            .await
            .unwrap();

        let calls = (0..20).map(|_| {
            let app = &app;
            async move { app.capture(order).await }
        });
        let answers = join_all(calls).await;
        for answer in &answers {
            let p = answer.as_ref().unwrap_or_else(|e| panic!("{on}: {e:?}"));
            assert_eq!(state(p), pb::PaymentState::Captured, "{on}");
            assert_eq!(p.id, authorized.id);
        }
        assert_eq!(
            app.count(
                "SELECT COUNT(*) FROM ledger l JOIN payments p ON p.id = l.payment_id \
                 WHERE p.order_id = $1 AND l.kind = 'capture'",
                order
            )
            .await,
            1,
            "{on}"
        );
        assert_eq!(app.counted("capture", "ok").await, 1.0, "{on}");
        assert_eq!(app.counted("capture", "repeated").await, 19.0, "{on}");
        let events = app.published().await;
        let captured: Vec<_> = of_order(&events, order)
            .into_iter()
            .filter(|(topic, _)| topic == "payments.payment.captured")
            .collect();
        assert_eq!(captured.len(), 1, "{on}: {captured:?}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_authorizations_record_one_payment() {
    for app in apps().await {
        let on = app.on();
        let order = Uuid::now_v7();
        let user = Uuid::now_v7();
        let calls = (0..12).map(|_| {
            let app = &app;
            async move { app.authorize(order, user, 1500, APPROVED).await }
        });
        let answers: Vec<pb::Payment> = join_all(calls)
            .await
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| panic!("{on}: {e:?}")))
            .collect();
        assert!(
            answers.iter().all(|p| *p == answers[0]),
            "{on}: {answers:?}"
        );
        assert_eq!(
            app.count("SELECT COUNT(*) FROM payments WHERE order_id = $1", order)
                .await,
            1
        );
        assert_eq!(app.ledger(order).await, ["authorize"], "{on}");
        let events = app.published().await;
        assert_eq!(of_order(&events, order).len(), 1, "{on}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capture_racing_a_void_settles_one_way() {
    for app in apps().await {
        let on = app.on();
        for _ in 0..5 {
            let order = Uuid::now_v7();
            app.authorize(order, Uuid::now_v7(), 800, APPROVED)
                .await
                .unwrap();
            let (capture, void) = tokio::join!(app.capture(order), app.void(order));
            let ledger = app.ledger(order).await;
            match (capture, void) {
                (Ok(c), Err(v)) => {
                    assert_eq!(state(&c), pb::PaymentState::Captured, "{on}");
                    assert_eq!(v.code(), tonic::Code::FailedPrecondition, "{on}");
                    assert_eq!(ledger, ["authorize", "capture"], "{on}");
                }
                (Err(c), Ok(v)) => {
                    assert_eq!(state(&v), pb::PaymentState::Voided, "{on}");
                    assert_eq!(c.code(), tonic::Code::FailedPrecondition, "{on}");
                    assert_eq!(ledger, ["authorize", "void"], "{on}");
                }
                other => panic!("exactly one must win on {on}: {other:?}"),
            }
        }
        app.stop().await;
    }
}
