//! Checkouts that go through: of named items, of the cart, and retried
//! under the same Idempotency-Key.

use bazaar_bus::Event as _;
use bazaar_events::orders::OrderConfirmed;
use serde_json::Value;
use sqlx::Row as _;
use uuid::Uuid;

use crate::support::{GOOD_CARD, fleet, order, steps};

#[tokio::test]
async fn an_order_of_items_is_priced_reserved_paid_and_confirmed() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let mug = fleet.product("Mug", 450, 10).await;
        let buyer = fleet.customer().await;

        // The same product twice is one line of the summed quantity.
        let body = order(Some(&[(teapot, 1), (mug, 1), (teapot, 1)]), GOOD_CARD);
        let accepted = fleet.accepted(&buyer, &body).await;
        assert_eq!(accepted["status"], "pending", "on {}", fleet.on());
        assert_eq!(steps(&accepted), ["accepted"]);
        assert!(accepted["total"].is_null(), "not priced yet: {accepted}");
        assert!(accepted["items"][0]["title"].is_null());
        assert!(accepted["items"][0]["unit_price"].is_null());
        assert_eq!(accepted["items"][0]["quantity"], 2);
        assert_eq!(accepted["card_last4"], "4242");
        assert!(accepted.get("cancel_reason").is_none());
        let id = accepted["id"].as_str().expect("id").to_owned();

        let done = fleet.settled(&buyer, &id).await;
        assert_eq!(done["status"], "confirmed", "{done}");
        assert_eq!(
            steps(&done),
            [
                "accepted",
                "priced",
                "reserved",
                "authorized",
                "committed",
                "captured",
                "confirmed"
            ],
            "on {}",
            fleet.on()
        );
        assert!(
            done["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z'))
                    && e["detail"].is_string())
        );
        assert_eq!(done["items"][0]["title"], "Teapot");
        assert_eq!(done["items"][0]["unit_price"]["amount"], 1250);
        assert_eq!(done["items"][1]["title"], "Mug");
        assert_eq!(done["total"]["amount"], 2 * 1250 + 450);
        assert_eq!(done["total"]["currency"], "EUR");
        assert_eq!(done["shipping_address"]["country"], "GB");
        assert!(done.get("cancel_reason").is_none());
        assert!(
            done.to_string().find("4242424242424242").is_none(),
            "no card number"
        );

        assert_eq!(fleet.stock(teapot).await, Some((3, 0)), "committed");
        assert_eq!(fleet.stock(mug).await, Some((9, 0)));
        let payments = fleet.payments_of(&buyer, &id).await;
        assert_eq!(payments.len(), 1, "{payments:?}");
        assert_eq!(payments[0]["status"], "captured");
        assert_eq!(payments[0]["amount"], 2950);

        // The card is gone once authorized.
        let db = fleet.orders_db().await;
        let cards: i64 = sqlx::query("SELECT COUNT(*) FROM order_cards")
            .fetch_one(db.pool())
            .await
            .expect("count cards")
            .get(0);
        assert_eq!(cards, 0, "no card kept after authorization");
        db.close().await;

        // Published once: a later order's event comes after anything of this one.
        let later = fleet
            .accepted(&buyer, &order(Some(&[(mug, 1)]), GOOD_CARD))
            .await;
        let later_id = later["id"].as_str().expect("id").to_owned();
        let seen = fleet
            .events(OrderConfirmed::TOPIC, |seen| {
                seen.iter()
                    .any(|e| e.subject.as_deref() == Some(later_id.as_str()))
            })
            .await;
        let ours: Vec<OrderConfirmed> = seen
            .iter()
            .filter(|e| e.subject.as_deref() == Some(id.as_str()))
            .map(|e| e.decode().expect("an OrderConfirmed"))
            .collect();
        assert_eq!(
            ours.len(),
            1,
            "exactly one confirmed event on {}",
            fleet.on()
        );
        assert_eq!(ours[0].user_id, buyer.uuid());
        assert_eq!(ours[0].total.amount, 2950);
        assert_eq!(ours[0].items.len(), 2);
        assert_eq!(ours[0].items[0].title, "Teapot");
        assert_eq!(ours[0].items[0].quantity, 2);
        assert_eq!(ours[0].items[0].seller_id, fleet.seller.uuid());

        // Newest first.
        let page = fleet.list(&buyer, "").await;
        assert_eq!(page["total"], 2);
        assert_eq!(page["items"][0]["id"], later_id.as_str());
        assert_eq!(page["items"][1]["id"], id.as_str());
        assert_eq!(fleet.sagas_counted("confirmed").await, 2.0);
        fleet.stop().await;
    }
}

#[tokio::test]
async fn an_order_of_the_cart_takes_its_lines_out_of_the_cart() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let mug = fleet.product("Mug", 450, 10).await;
        let buyer = fleet.customer().await;
        fleet.cart_put(&buyer, teapot, 2).await;
        fleet.cart_put(&buyer, mug, 3).await;

        let accepted = fleet.accepted(&buyer, &order(None, GOOD_CARD)).await;
        assert_eq!(accepted["items"][0]["product_id"], teapot.to_string());
        assert_eq!(accepted["items"][0]["quantity"], 2);
        assert_eq!(accepted["items"][1]["quantity"], 3);
        let id = accepted["id"].as_str().expect("id").to_owned();
        let done = fleet.settled(&buyer, &id).await;
        assert_eq!(done["status"], "confirmed", "{done}");
        assert_eq!(done["total"]["amount"], 2 * 1250 + 3 * 450);

        let cleared = fleet.reached(&buyer, &id, "cart_cleared").await;
        assert_eq!(
            steps(&cleared).last().map(String::as_str),
            Some("cart_cleared")
        );
        assert!(fleet.cart_of(&buyer).await.is_empty(), "on {}", fleet.on());
        assert_eq!(fleet.stock(teapot).await, Some((3, 0)));
        assert_eq!(fleet.stock(mug).await, Some((7, 0)));

        // An order of named items leaves the cart alone.
        fleet.cart_put(&buyer, mug, 1).await;
        let named = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 1)]), GOOD_CARD))
            .await;
        let named = fleet
            .settled(&buyer, named["id"].as_str().expect("id"))
            .await;
        assert_eq!(named["status"], "confirmed");
        assert!(!steps(&named).contains(&"cart_cleared".to_owned()));
        assert_eq!(fleet.cart_of(&buyer).await, [(mug.to_string(), 1)]);
        fleet.stop().await;
    }
}

#[tokio::test]
async fn the_same_key_answers_the_same_order() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 50).await;
        let buyer = fleet.customer().await;
        let body = order(Some(&[(teapot, 1)]), GOOD_CARD);
        let key = Uuid::now_v7().to_string();

        let first = fleet.place(&buyer, Some(&key), &body).await;
        assert_eq!(first.status(), 202);
        let first: Value = first.json().await.expect("order");
        let id = first["id"].as_str().expect("id").to_owned();

        let again = fleet.place(&buyer, Some(&key), &body).await;
        assert_eq!(again.status(), 200, "a retry on {}", fleet.on());
        assert_eq!(
            again.headers()["location"],
            format!("/api/v1/orders/{id}").as_str()
        );
        let again: Value = again.json().await.expect("order");
        assert_eq!(again["id"], id.as_str());

        // Whatever its status now.
        fleet.settled(&buyer, &id).await;
        let later = fleet.place(&buyer, Some(&key), &body).await;
        assert_eq!(later.status(), 200);
        let later: Value = later.json().await.expect("order");
        assert_eq!(later["id"], id.as_str());
        assert_eq!(later["status"], "confirmed");

        // Another request under the key is refused; the order stands.
        let other = order(Some(&[(teapot, 2)]), GOOD_CARD);
        let problem =
            bazaar_testkit::problem(fleet.place(&buyer, Some(&key), &other).await, 422).await;
        assert_eq!(problem.kind, "urn:bazaar:problem:idempotency-key-reused");

        // Keys are per user.
        let someone = fleet.customer().await;
        let theirs = fleet.place(&someone, Some(&key), &body).await;
        assert_eq!(theirs.status(), 202);
        let theirs: Value = theirs.json().await.expect("order");
        assert_ne!(theirs["id"], id.as_str());

        // Racing retries: one order, every answer names it.
        let key = Uuid::now_v7().to_string();
        let answers =
            futures_util::future::join_all((0..5).map(|_| fleet.place(&buyer, Some(&key), &body)))
                .await;
        let mut ids = Vec::new();
        let mut accepted = 0;
        for res in answers {
            match res.status().as_u16() {
                202 => accepted += 1,
                200 => {}
                other => panic!("status {other} on {}", fleet.on()),
            }
            let order: Value = res.json().await.expect("order");
            ids.push(order["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(accepted, 1, "one of the racing requests creates it");
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(fleet.list(&buyer, "").await["total"], 2);
        fleet.settled(&buyer, &ids[0]).await;
        fleet
            .settled(&someone, theirs["id"].as_str().expect("id"))
            .await;
        assert_eq!(
            fleet.stock(teapot).await,
            Some((47, 0)),
            "three orders of one"
        );
        fleet.stop().await;
    }
}
