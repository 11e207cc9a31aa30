//! Idempotency by order id and the state rules of capture, void and refund.

use bazaar_proto::payments::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{APPROVED, DECLINED, apps, of_order, request, state};

#[tokio::test]
async fn every_call_repeated_answers_the_same_and_publishes_once() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();

        // authorize ×3, capture ×3, refund ×3
        let paid = Uuid::now_v7();
        let first = app.authorize(paid, user, 4200, APPROVED).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                app.authorize(paid, user, 4200, APPROVED).await.unwrap(),
                first,
                "{on}"
            );
        }
        let captured = app.capture(paid).await.unwrap();
        assert_eq!(state(&captured), pb::PaymentState::Captured);
        assert_eq!(captured.id, first.id);
        for _ in 0..2 {
            assert_eq!(app.capture(paid).await.unwrap(), captured, "{on}");
        }
        // Authorize again after the capture: the payment as it is now.
        assert_eq!(
            app.authorize(paid, user, 4200, APPROVED).await.unwrap(),
            captured
        );
        let refunded = app.refund(paid).await.unwrap();
        assert_eq!(state(&refunded), pb::PaymentState::Refunded);
        for _ in 0..2 {
            assert_eq!(app.refund(paid).await.unwrap(), refunded, "{on}");
        }

        // authorize, void ×3
        let voided = Uuid::now_v7();
        app.authorize(voided, user, 1000, APPROVED).await.unwrap();
        let v = app.void(voided).await.unwrap();
        assert_eq!(state(&v), pb::PaymentState::Voided);
        for _ in 0..2 {
            assert_eq!(app.void(voided).await.unwrap(), v, "{on}");
        }

        // declined ×3 (a repeat with another card still gets the answer);
        // voiding a decline answers it, with nothing to give back.
        let declined = Uuid::now_v7();
        let d = app.authorize(declined, user, 1000, DECLINED).await.unwrap();
        assert_eq!(state(&d), pb::PaymentState::Declined);
        assert_eq!(
            app.authorize(declined, user, 1000, DECLINED).await.unwrap(),
            d
        );
        assert_eq!(
            app.authorize(declined, user, 1000, APPROVED).await.unwrap(),
            d
        );
        assert_eq!(app.void(declined).await.unwrap(), d);

        assert_eq!(
            app.ledger(paid).await,
            ["authorize", "capture", "refund"],
            "{on}"
        );
        assert_eq!(app.ledger(voided).await, ["authorize", "void"], "{on}");
        assert!(app.ledger(declined).await.is_empty());

        let events = app.published().await;
        let topics = |order| {
            of_order(&events, order)
                .into_iter()
                .map(|(topic, _)| topic)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            topics(paid),
            [
                "payments.payment.authorized",
                "payments.payment.captured",
                "payments.payment.refunded"
            ],
            "{on}"
        );
        assert_eq!(
            topics(voided),
            ["payments.payment.authorized", "payments.payment.voided"],
            "{on}"
        );
        assert_eq!(topics(declined), ["payments.payment.declined"], "{on}");

        assert_eq!(app.counted("capture", "ok").await, 1.0);
        assert_eq!(app.counted("capture", "repeated").await, 2.0);
        assert_eq!(app.counted("authorize", "repeated").await, 5.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn another_amount_currency_or_buyer_under_one_order_id_already_exists() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();
        let order = Uuid::now_v7();
        let first = app.authorize(order, user, 4200, APPROVED).await.unwrap();

        let e = app
            .authorize(order, user, 4300, APPROVED)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{on}: {e:?}");
        let mut other_currency = request(order, user, 4200, APPROVED);
        other_currency.currency = "USD".into();
        let e = app.authorize_with(other_currency).await.unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{on}");
        let e = app
            .authorize(order, Uuid::now_v7(), 4200, APPROVED)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{on}");

        // The same for a declined one.
        let declined = Uuid::now_v7();
        app.authorize(declined, user, 500, DECLINED).await.unwrap();
        let e = app
            .authorize(declined, user, 501, DECLINED)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{on}");

        // Nothing changed.
        assert_eq!(
            app.authorize(order, user, 4200, APPROVED).await.unwrap(),
            first
        );
        assert_eq!(app.ledger(order).await, ["authorize"]);
        assert_eq!(app.counted("authorize", "refused").await, 4.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn capture_void_and_refund_follow_the_state_rules() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();
        let unknown = Uuid::now_v7();
        for e in [
            app.capture(unknown).await.unwrap_err(),
            app.void(unknown).await.unwrap_err(),
            app.refund(unknown).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::NotFound, "{on}: {e:?}");
        }

        // Authorized: not refundable.
        let authorized = Uuid::now_v7();
        app.authorize(authorized, user, 700, APPROVED)
            .await
            .unwrap();
        let e = app.refund(authorized).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{on}");

        // Captured: not voidable.
        let captured = Uuid::now_v7();
        app.authorize(captured, user, 700, APPROVED).await.unwrap();
        app.capture(captured).await.unwrap();
        let e = app.void(captured).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{on}");
        assert!(e.message().contains("captured"), "{}", e.message());

        // Voided: neither capturable nor refundable.
        let voided = Uuid::now_v7();
        app.authorize(voided, user, 700, APPROVED).await.unwrap();
        app.void(voided).await.unwrap();
        for e in [
            app.capture(voided).await.unwrap_err(),
            app.refund(voided).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::FailedPrecondition, "{on}: {e:?}");
        }

        // Declined: neither capturable nor refundable.
        let declined = Uuid::now_v7();
        app.authorize(declined, user, 700, DECLINED).await.unwrap();
        for e in [
            app.capture(declined).await.unwrap_err(),
            app.refund(declined).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::FailedPrecondition, "{on}: {e:?}");
        }

        // Refunded: neither capturable nor voidable.
        let refunded = Uuid::now_v7();
        app.authorize(refunded, user, 700, APPROVED).await.unwrap();
        app.capture(refunded).await.unwrap();
        app.refund(refunded).await.unwrap();
        for e in [
            app.capture(refunded).await.unwrap_err(),
            app.void(refunded).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::FailedPrecondition, "{on}: {e:?}");
        }

        // Refusals changed nothing.
        assert_eq!(app.ledger(authorized).await, ["authorize"]);
        assert_eq!(app.ledger(captured).await, ["authorize", "capture"]);
        assert_eq!(app.ledger(voided).await, ["authorize", "void"]);
        assert!(app.ledger(declined).await.is_empty());
        assert_eq!(
            app.ledger(refunded).await,
            ["authorize", "capture", "refund"]
        );
        let p = app.capture(authorized).await.unwrap();
        assert_eq!(state(&p), pb::PaymentState::Captured, "still capturable");
        app.stop().await;
    }
}
