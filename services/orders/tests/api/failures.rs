//! Checkouts that fail and are undone: each test card, no stock, products
//! that cannot be sold, and many buyers racing for the last unit.

use bazaar_bus::Event as _;
use bazaar_events::orders::OrderCancelled;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{
    BROKE_CARD, DECLINED_CARD, FLAKY_CARD, GOOD_CARD, Orders, Payments, SHORT_DEADLINE, Up, fleet,
    fleet_with, order, steps,
};

#[tokio::test]
async fn declined_cards_cancel_the_order_and_release_the_stock() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let cases = [
            (DECLINED_CARD, "card_declined", "declined"),
            (BROKE_CARD, "insufficient_funds", "insufficient funds"),
            // Fails the Luhn check: the processor calls it invalid.
            ("4242424242424241", "invalid_card", "invalid"),
        ];
        let mut ids = Vec::new();
        for (card, code, words) in cases {
            let accepted = fleet
                .accepted(&buyer, &order(Some(&[(teapot, 2)]), card))
                .await;
            let id = accepted["id"].as_str().expect("id").to_owned();
            let done = fleet.settled(&buyer, &id).await;
            assert_eq!(
                done["status"],
                "cancelled",
                "{card} on {}: {done}",
                fleet.on()
            );
            assert_eq!(done["cancel_code"], code);
            let reason = done["cancel_reason"].as_str().expect("a reason");
            assert!(reason.contains(words), "{reason}");
            assert_eq!(
                steps(&done),
                [
                    "accepted",
                    "priced",
                    "reserved",
                    "cancelling",
                    "releasing",
                    "released",
                    "cancelled"
                ],
                "{card}"
            );
            assert_eq!(
                fleet.stock(teapot).await,
                Some((5, 0)),
                "released after {card}"
            );
            let payments = fleet.payments_of(&buyer, &id).await;
            assert_eq!(payments.len(), 1, "{payments:?}");
            assert_eq!(payments[0]["status"], "declined");
            ids.push((id, code));
        }

        // One cancelled event each: a later order's event comes after any of theirs.
        let last = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 1)]), DECLINED_CARD))
            .await;
        let last_id = last["id"].as_str().expect("id").to_owned();
        let seen = fleet
            .events(OrderCancelled::TOPIC, |seen| {
                seen.iter()
                    .any(|e| e.subject.as_deref() == Some(last_id.as_str()))
            })
            .await;
        for (id, code) in &ids {
            let ours: Vec<OrderCancelled> = seen
                .iter()
                .filter(|e| e.subject.as_deref() == Some(id.as_str()))
                .map(|e| e.decode().expect("an OrderCancelled"))
                .collect();
            assert_eq!(ours.len(), 1, "one cancelled event for {code}");
            assert_eq!(ours[0].reason_code, *code);
            assert_eq!(ours[0].user_id, buyer.uuid());
            assert!(!ours[0].reason.is_empty());
        }
        assert_eq!(fleet.sagas_counted("card_declined").await, 2.0);
        assert_eq!(fleet.sagas_counted("insufficient_funds").await, 1.0);
        fleet.stop().await;
    }
}

#[tokio::test]
async fn a_transient_card_is_retried_until_the_deadline_then_cancelled() {
    for engine in bazaar_testkit::engines() {
        let fleet =
            fleet_with::<Orders<SHORT_DEADLINE>, Payments<0>>(engine, Up::Yes, Up::Yes).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 2)]), FLAKY_CARD))
            .await;
        let id = accepted["id"].as_str().expect("id").to_owned();
        let done = fleet.settled(&buyer, &id).await;
        assert_eq!(done["status"], "cancelled", "on {}: {done}", fleet.on());
        // No definite answer ever came: the deadline, not a count of
        // attempts, ended the order.
        assert_eq!(done["cancel_code"], "timed_out");
        assert!(
            done["cancel_reason"]
                .as_str()
                .is_some_and(|r| r.contains("payment service did not answer within 1 s")),
            "{done}"
        );
        let steps = steps(&done);
        let retries = steps.iter().filter(|s| *s == "retrying").count();
        assert!(retries >= 2, "asked again and again: {steps:?}");
        // Payments answered ABORTED, which records nothing: nothing to void.
        assert_eq!(
            steps[steps.len() - 4..],
            ["cancelling", "releasing", "released", "cancelled"]
        );
        assert_eq!(fleet.stock(teapot).await, Some((5, 0)), "released");
        assert!(fleet.payments_of(&buyer, &id).await.is_empty());
        fleet.stop().await;
    }
}

#[tokio::test]
async fn too_few_units_cancel_the_order_naming_the_product() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 1).await;
        let mug = fleet.product("Mug", 450, 9).await;
        let buyer = fleet.customer().await;
        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(mug, 1), (teapot, 2)]), GOOD_CARD))
            .await;
        let done = fleet
            .settled(&buyer, accepted["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["status"], "cancelled", "on {}", fleet.on());
        assert_eq!(done["cancel_code"], "out_of_stock");
        let reason = done["cancel_reason"].as_str().expect("reason");
        assert!(
            reason.contains("Teapot") && reason.contains("1"),
            "{reason}"
        );
        assert!(!reason.contains("Mug"), "{reason}");
        assert_eq!(
            steps(&done),
            ["accepted", "priced", "cancelling", "cancelled"]
        );
        // Priced before it failed: the order shows what it would have cost.
        assert_eq!(done["total"]["amount"], 450 + 2 * 1250);
        assert_eq!(fleet.stock(teapot).await, Some((1, 0)));
        assert_eq!(fleet.stock(mug).await, Some((9, 0)), "nothing held");
        assert_eq!(fleet.sagas_counted("out_of_stock").await, 1.0);
        fleet.stop().await;
    }
}

/// Lines of an order: product and quantity.
type Items<'a> = &'a [(Uuid, i64)];

#[tokio::test]
async fn products_that_cannot_be_sold_cancel_the_order() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let gone = fleet.product("Old kettle", 2000, 5).await;
        let dollars = fleet.product_in("Mug", 450, "USD", 5).await;
        let buyer = fleet.customer().await;
        fleet.delete_product(gone).await;

        let cases: [(Items, &str, &str); 3] = [
            (&[(teapot, 1), (gone, 1)], "not_on_sale", "Old kettle"),
            (&[(Uuid::now_v7(), 1)], "unknown_product", "No product"),
            (
                &[(teapot, 1), (dollars, 1)],
                "currency_mismatch",
                "EUR, USD",
            ),
        ];
        for (items, code, words) in cases {
            let accepted = fleet.accepted(&buyer, &order(Some(items), GOOD_CARD)).await;
            let done = fleet
                .settled(&buyer, accepted["id"].as_str().expect("id"))
                .await;
            assert_eq!(done["status"], "cancelled", "{code} on {}", fleet.on());
            assert_eq!(done["cancel_code"], code);
            let reason = done["cancel_reason"].as_str().expect("reason");
            assert!(reason.contains(words), "{reason}");
            assert_eq!(steps(&done), ["accepted", "cancelling", "cancelled"]);
            assert!(done["total"].is_null(), "never priced");
        }
        assert_eq!(fleet.stock(teapot).await, Some((5, 0)));
        fleet.stop().await;
    }
}

#[tokio::test]
async fn eight_buyers_race_for_the_last_unit_and_one_gets_it() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let last = fleet.product("Last teapot", 1250, 1).await;
        let mut buyers = Vec::new();
        for _ in 0..8 {
            buyers.push(fleet.customer().await);
        }
        let body = order(Some(&[(last, 1)]), GOOD_CARD);
        let placed =
            futures_util::future::join_all(buyers.iter().map(|buyer| fleet.accepted(buyer, &body)))
                .await;
        let mut statuses = Vec::new();
        for (buyer, accepted) in buyers.iter().zip(&placed) {
            let done: Value = fleet
                .settled(buyer, accepted["id"].as_str().expect("id"))
                .await;
            if done["status"] == "cancelled" {
                assert_eq!(done["cancel_code"], "out_of_stock", "{done}");
            }
            statuses.push(done["status"].as_str().expect("status").to_owned());
        }
        let confirmed = statuses.iter().filter(|s| *s == "confirmed").count();
        assert_eq!(confirmed, 1, "{statuses:?} on {}", fleet.on());
        assert_eq!(
            fleet.stock(last).await,
            Some((0, 0)),
            "sold, never oversold"
        );
        fleet.stop().await;
    }
}
