//! The checkout saga through the gateway, as a shopper sees it: an order is
//! accepted at once, then ends `confirmed` (stock taken, card charged, cart
//! emptied) or `cancelled` with a reason, and everything it held is given
//! back.

use reqwest::Method;
use serde_json::json;

use crate::api::{Api, CARD_DECLINED, CARD_FLAKY, CARD_NO_FUNDS, CARD_OK, order_body, unique};
use crate::harness::Fleet;

#[tokio::test]
async fn a_shopper_checks_out_from_the_cart_and_from_items() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let teapot = api.product(&seller, "Cast iron teapot", 2450, 10).await;
    let cups = api.product(&seller, "Two tea cups", 1200, 5).await;
    let listed = api
        .get(&format!("/api/v1/products?seller_id={}", seller.id), None)
        .await;
    assert_eq!(listed["total"], 2, "{listed}");
    let shopper = api.user("customer").await;

    // From the cart: two teapots.
    api.put_in_cart(&shopper, &teapot, 2).await;
    let key = unique();
    let body = order_body(None, CARD_OK);
    let response = api.order(&shopper, &key, &body).await;
    assert!(
        response.headers().contains_key("location"),
        "202 names the order"
    );
    let accepted = api.expect(response, 202, "order the cart").await;
    assert_eq!(accepted["status"], "pending", "{accepted}");
    let id = accepted["id"].as_str().expect("order id").to_owned();

    let order = api.settled(&shopper, &id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["total"], json!({"amount": 4900, "currency": "EUR"}));
    assert_eq!(order["items"][0]["product_id"], teapot.as_str());
    assert_eq!(order["items"][0]["title"], "Cast iron teapot");
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(
        order["items"][0]["unit_price"],
        json!({"amount": 2450, "currency": "EUR"})
    );
    let steps: Vec<&str> = order["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .filter_map(|entry| entry["step"].as_str())
        .collect();
    for step in ["accepted", "priced", "reserved", "authorized", "confirmed"] {
        assert!(steps.contains(&step), "no {step} in {steps:?}");
    }
    assert_eq!(api.stock(&teapot).await, (8, 0));
    let payments = api.payments(&shopper, &id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["status"], "captured");
    assert_eq!(payments[0]["amount"], 4900);
    // The ordered lines left the cart.
    let cart = api
        .until("the cart is emptied", || async {
            let cart = api.get("/api/v1/cart", Some(&shopper)).await;
            (cart["items"] == json!([])).then_some(cart)
        })
        .await;
    assert_eq!(cart, json!({"items": []}));

    // The same key again: the same order, not a second one.
    let again = api.order(&shopper, &key, &body).await;
    let again = api.expect(again, 200, "the same key again").await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(api.stock(&teapot).await, (8, 0));

    // From items: one set of cups.
    let placed = api
        .place(&shopper, &order_body(Some(&[(&cups, 1)]), CARD_OK))
        .await;
    let second = placed["id"].as_str().expect("order id").to_owned();
    let order = api.settled(&shopper, &second).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(api.stock(&cups).await, (4, 0));

    // History, newest first; nobody else sees these orders.
    let history = api.get("/api/v1/orders", Some(&shopper)).await;
    assert_eq!(history["total"], 2, "{history}");
    assert_eq!(history["items"][0]["id"], second.as_str());
    assert_eq!(history["items"][1]["id"], id.as_str());
    let stranger = api.user("customer").await;
    let response = api
        .send(
            Method::GET,
            &format!("/api/v1/orders/{id}"),
            Some(&stranger),
            None,
        )
        .await;
    api.expect(response, 404, "another user's order").await;
    assert_eq!(
        api.payments(&stranger, &id).await,
        Vec::<serde_json::Value>::new()
    );
    let history = api.get("/api/v1/orders", Some(&stranger)).await;
    assert_eq!(history["total"], 0, "{history}");
}

#[tokio::test]
async fn failed_checkouts_are_cancelled_with_a_reason_and_undone() {
    // A card whose processor never answers is asked until the saga's
    // deadline: a short one here.
    let fleet =
        Fleet::start_with_env(&["--no-seed"], &[("BAZAAR_ORDERS_SAGA_DEADLINE", "3s")]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let lamp = api.product(&seller, "Brass desk lamp", 5900, 3).await;
    let shopper = api.user("customer").await;

    for (card, reason) in [
        (CARD_DECLINED, "declined"),
        (CARD_NO_FUNDS, "insufficient funds"),
        (CARD_FLAKY, "did not answer within 3 s"),
    ] {
        let placed = api
            .place(&shopper, &order_body(Some(&[(&lamp, 2)]), card))
            .await;
        let id = placed["id"].as_str().expect("order id").to_owned();
        let order = api.settled(&shopper, &id).await;
        assert_eq!(order["status"], "cancelled", "{card}: {order}");
        let said = order["cancel_reason"].as_str().unwrap_or_default();
        assert!(
            said.to_lowercase().contains(reason),
            "{card}: the reason {said:?} does not say {reason:?}"
        );
        // Nothing is held and nothing charged.
        assert_eq!(api.stock(&lamp).await, (3, 0), "{card}");
        let payments = api.payments(&shopper, &id).await;
        assert!(
            payments.iter().all(|p| p["status"] != "captured"),
            "{card}: {payments:?}"
        );
    }

    // More than there is.
    let placed = api
        .place(&shopper, &order_body(Some(&[(&lamp, 4)]), CARD_OK))
        .await;
    let id = placed["id"].as_str().expect("order id").to_owned();
    let order = api.settled(&shopper, &id).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let said = order["cancel_reason"].as_str().unwrap_or_default();
    assert!(said.to_lowercase().contains("stock"), "{said:?}");
    assert!(api.payments(&shopper, &id).await.is_empty());
    assert_eq!(api.stock(&lamp).await, (3, 0));

    // Requests that are refused outright change nothing.
    let body = order_body(Some(&[(&lamp, 1)]), CARD_OK);
    let response = api
        .send(Method::POST, "/api/v1/orders", Some(&shopper), Some(&body))
        .await;
    api.expect(response, 400, "no Idempotency-Key").await;
    let response = api
        .try_send(
            Method::POST,
            "/api/v1/orders",
            None,
            &[("idempotency-key", "k")],
            Some(&body),
        )
        .await
        .expect("an answer");
    api.expect(response, 401, "no token").await;
    for (bad, what) in [
        (order_body(Some(&[(&lamp, 0)]), CARD_OK), "quantity 0"),
        (order_body(Some(&[(&lamp, 100)]), CARD_OK), "quantity 100"),
        (order_body(Some(&[("not-a-uuid", 1)]), CARD_OK), "a bad id"),
        (order_body(Some(&[]), CARD_OK), "no items"),
        (order_body(Some(&[(&lamp, 1)]), "42"), "a short card"),
        (
            json!({"items": [{"product_id": lamp, "quantity": 1}]}),
            "no payment",
        ),
    ] {
        let response = api.order(&shopper, &unique(), &bad).await;
        let problem = api.expect(response, 422, what).await;
        assert!(problem["errors"].is_array(), "{what}: {problem}");
    }
    // An empty cart cannot be ordered.
    let response = api
        .order(&shopper, &unique(), &order_body(None, CARD_OK))
        .await;
    api.expect(response, 422, "an empty cart").await;
    let history = api.get("/api/v1/orders", Some(&shopper)).await;
    assert_eq!(
        history["total"], 4,
        "only the four accepted orders: {history}"
    );
    assert_eq!(api.stock(&lamp).await, (3, 0));
}

#[tokio::test]
async fn eight_buyers_race_for_the_last_unit() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let last = api.product(&seller, "The last vase", 8900, 1).await;
    let mut buyers = Vec::new();
    for _ in 0..8 {
        buyers.push(api.user("customer").await);
    }

    let body = order_body(Some(&[(&last, 1)]), CARD_OK);
    let placed =
        futures_util::future::join_all(buyers.iter().map(|buyer| api.place(buyer, &body))).await;
    let mut confirmed = 0;
    for (buyer, placed) in buyers.iter().zip(&placed) {
        let id = placed["id"].as_str().expect("order id");
        let order = api.settled(buyer, id).await;
        match order["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            Some("cancelled") => {
                let said = order["cancel_reason"].as_str().unwrap_or_default();
                assert!(said.to_lowercase().contains("stock"), "{said:?}");
                assert!(
                    api.payments(buyer, id)
                        .await
                        .iter()
                        .all(|p| p["status"] != "captured"),
                    "a cancelled order was charged"
                );
            }
            other => panic!("order {id} ended {other:?}"),
        }
    }
    assert_eq!(confirmed, 1, "exactly one buyer gets the last unit");
    assert_eq!(api.stock(&last).await, (0, 0));
}
