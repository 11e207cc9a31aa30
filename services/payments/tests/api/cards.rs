//! The test cards of shared/API.md and what the simulated processor makes
//! of other cards; malformed requests are INVALID_ARGUMENT.

use bazaar_proto::payments::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{APPROVED, DECLINED, FLAKY, NO_FUNDS, apps, request, state};

#[tokio::test]
async fn test_cards_answer_as_documented() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();

        let order = Uuid::now_v7();
        let p = app.authorize(order, user, 2500, APPROVED).await.unwrap();
        assert_eq!(state(&p), pb::PaymentState::Authorized, "{on}");
        assert_eq!(p.decline_reason(), pb::DeclineReason::Unspecified);
        assert_eq!(p.order_id, order.to_string());
        assert_eq!((p.amount, p.currency.as_str()), (2500, "EUR"));
        assert_eq!(p.card_last4, "4242");
        assert!(Uuid::parse_str(&p.id).is_ok_and(|id| id.get_version_num() == 7));
        assert_eq!(app.ledger(order).await, ["authorize"], "{on}");

        for (number, reason, last4) in [
            (DECLINED, pb::DeclineReason::CardDeclined, "0002"),
            (NO_FUNDS, pb::DeclineReason::InsufficientFunds, "9995"),
        ] {
            let order = Uuid::now_v7();
            let p = app.authorize(order, user, 2500, number).await.unwrap();
            assert_eq!(state(&p), pb::PaymentState::Declined, "{number} on {on}");
            assert_eq!(p.decline_reason(), reason, "{number} on {on}");
            assert_eq!(p.card_last4, last4);
            assert!(
                app.ledger(order).await.is_empty(),
                "a decline moves no money"
            );
        }

        // Transient, every time, and nothing is recorded.
        let order = Uuid::now_v7();
        for _ in 0..3 {
            let e = app.authorize(order, user, 2500, FLAKY).await.unwrap_err();
            assert_eq!(e.code(), Code::Aborted, "{on}: {e:?}");
        }
        assert_eq!(
            app.count("SELECT COUNT(*) FROM payments WHERE order_id = $1", order)
                .await,
            0,
            "{on}"
        );
        assert_eq!(app.capture(order).await.unwrap_err().code(), Code::NotFound);
        assert_eq!(app.counted("authorize", "unavailable").await, 3.0);
        assert_eq!(app.counted("authorize", "ok").await, 1.0);
        assert_eq!(app.counted("authorize", "declined").await, 2.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn other_cards_approve_when_valid_and_are_declined_when_not() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();
        // Any other number that passes the Luhn check: Mastercard, Amex,
        // a 12-digit and a 19-digit one.
        for number in [
            "5555555555554444",
            "378282246310005",
            "000000000000",
            "6221260000000000001",
        ] {
            let p = app
                .authorize(Uuid::now_v7(), user, 100, number)
                .await
                .unwrap_or_else(|e| panic!("{number} on {on}: {e:?}"));
            assert_eq!(state(&p), pb::PaymentState::Authorized, "{number} on {on}");
            assert_eq!(p.card_last4, number[number.len() - 4..]);
        }

        // A wrong check digit.
        let p = app
            .authorize(Uuid::now_v7(), user, 100, "4242424242424241")
            .await
            .unwrap();
        assert_eq!(state(&p), pb::PaymentState::Declined, "{on}");
        assert_eq!(p.decline_reason(), pb::DeclineReason::InvalidCard);

        // Expired: even the approving test card.
        for (month, year) in [(1, 2020), (12, 2024)] {
            let mut r = request(Uuid::now_v7(), user, 100, APPROVED);
            let card = r.card.as_mut().unwrap();
            card.exp_month = month;
            card.exp_year = year;
            let p = app.authorize_with(r).await.unwrap();
            assert_eq!(
                state(&p),
                pb::PaymentState::Declined,
                "{month}/{year} on {on}"
            );
            assert_eq!(p.decline_reason(), pb::DeclineReason::InvalidCard);
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_arguments_and_record_nothing() {
    for app in apps().await {
        let on = app.on();
        let order = Uuid::now_v7();
        let user = Uuid::now_v7();
        let good = || request(order, user, 2500, APPROVED);
        type Edit = fn(&mut pb::AuthorizeRequest);
        let cases: Vec<(&str, Edit)> = vec![
            ("non-digits", |r| {
                r.card.as_mut().unwrap().number = "4242x42424242424".into()
            }),
            ("spaces", |r| {
                r.card.as_mut().unwrap().number = "4242 4242 4242 4242".into()
            }),
            ("11 digits", |r| {
                r.card.as_mut().unwrap().number = "42424242424".into()
            }),
            ("20 digits", |r| {
                r.card.as_mut().unwrap().number = "42424242424242424242".into()
            }),
            ("month 0", |r| r.card.as_mut().unwrap().exp_month = 0),
            ("month 13", |r| r.card.as_mut().unwrap().exp_month = 13),
            ("two-digit year", |r| r.card.as_mut().unwrap().exp_year = 30),
            ("cvc of 2", |r| r.card.as_mut().unwrap().cvc = "12".into()),
            ("cvc of 5", |r| {
                r.card.as_mut().unwrap().cvc = "12345".into()
            }),
            ("cvc letters", |r| {
                r.card.as_mut().unwrap().cvc = "abc".into()
            }),
            ("no card", |r| r.card = None),
            ("amount 0", |r| r.amount = 0),
            ("negative amount", |r| r.amount = -100),
            ("lower-case currency", |r| r.currency = "eur".into()),
            ("long currency", |r| r.currency = "EURO".into()),
            ("empty currency", |r| r.currency = String::new()),
            ("order id", |r| r.order_id = "order-1".into()),
            ("user id", |r| r.user_id = String::new()),
        ];
        for (what, edit) in cases {
            let mut r = good();
            edit(&mut r);
            let e = app.authorize_with(r).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{what} on {on}: {e:?}");
            assert!(!e.message().contains("4242"), "{what}: {}", e.message());
        }
        for call in ["capture", "void", "refund"] {
            let e = match call {
                "capture" => app.capture("nope").await,
                "void" => app.void("nope").await,
                _ => app.refund("nope").await,
            }
            .unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{call} on {on}");
        }
        assert_eq!(
            app.count("SELECT COUNT(*) FROM payments WHERE order_id = $1", order)
                .await,
            0
        );
        assert_eq!(app.counted("authorize", "invalid").await, 18.0);
        // The same order with a good request still works.
        let p = app.authorize_with(good()).await.unwrap();
        assert_eq!(state(&p), pb::PaymentState::Authorized, "{on}");
        app.stop().await;
    }
}
