//! What `POST /api/v1/orders` refuses before anything is stored, and who
//! may read which order.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{GOOD_CARD, Orders, Payments, QUICK, Up, fleet, fleet_with, order};

#[tokio::test]
async fn an_order_needs_a_token_and_a_good_key() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let body = order(Some(&[(teapot, 1)]), GOOD_CARD);

        let res = fleet
            .http
            .post(fleet.orders().url("/api/v1/orders"))
            .header("Idempotency-Key", "k")
            .json(&body)
            .send()
            .await
            .expect("POST");
        bazaar_testkit::problem(res, 401).await;
        let res = fleet
            .http
            .get(fleet.orders().url("/api/v1/orders"))
            .send()
            .await
            .expect("GET");
        bazaar_testkit::problem(res, 401).await;

        let missing = bazaar_testkit::problem(fleet.place(&buyer, None, &body).await, 400).await;
        assert_eq!(missing.kind, "urn:bazaar:problem:idempotency-key-missing");
        assert!(
            missing.detail.contains("Idempotency-Key"),
            "{}",
            missing.detail
        );
        // Checked before the body: a missing key is 400 even with a bad body.
        bazaar_testkit::problem(fleet.place(&buyer, None, &json!({})).await, 400).await;
        for bad in ["", "   ", &"k".repeat(201)] {
            let problem =
                bazaar_testkit::problem(fleet.place(&buyer, Some(bad), &body).await, 400).await;
            assert_eq!(
                problem.kind, "urn:bazaar:problem:idempotency-key-invalid",
                "{bad:?}"
            );
        }
        let longest = "k".repeat(200);
        assert_eq!(
            fleet.place(&buyer, Some(&longest), &body).await.status(),
            202
        );
        assert_eq!(
            fleet.list(&buyer, "").await["total"],
            1,
            "on {}",
            fleet.on()
        );
        fleet.stop().await;
    }
}

#[tokio::test]
async fn invalid_orders_are_refused_whole_and_nothing_is_stored() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let key = || Some(Uuid::now_v7().to_string());
        let fields = |problem: &bazaar_platform::Problem| -> Vec<String> {
            problem.errors.iter().map(|e| e.field.clone()).collect()
        };

        let everything_wrong = json!({
            "items": [{"product_id": "not-a-uuid", "quantity": 0}, {"product_id": teapot.to_string(), "quantity": 100}],
            "payment": {"card_number": "4242 4242", "exp_month": 0, "exp_year": 99, "cvc": "1"},
            "shipping_address": {"name": " ", "line1": "x".repeat(201), "city": "London", "postal_code": "SW1", "country": "GBR"}
        });
        let res = fleet
            .place(&buyer, key().as_deref(), &everything_wrong)
            .await;
        let problem = bazaar_testkit::problem(res, 422).await;
        assert_eq!(
            fields(&problem),
            [
                "items[0].product_id",
                "items[0].quantity",
                "items[1].quantity",
                "payment.card_number",
                "payment.exp_month",
                "payment.exp_year",
                "payment.cvc",
                "shipping_address.name",
                "shipping_address.line1",
                "shipping_address.country"
            ],
            "on {}",
            fleet.on()
        );

        let many: Vec<(Uuid, i64)> = (0..51).map(|_| (Uuid::now_v7(), 1)).collect();
        let cases: Vec<(Value, &str)> = vec![
            (order(Some(&many), GOOD_CARD), "items"),
            (order(Some(&[]), GOOD_CARD), "items"),
            (
                order(Some(&[(teapot, 60), (teapot, 40)]), GOOD_CARD),
                "items[1].quantity",
            ),
            (
                order(Some(&[(teapot, 1)]), "4242 4242 4242 424x"),
                "payment.card_number",
            ),
            (
                json!({"items": [{"product_id": teapot.to_string(), "quantity": 1}]}),
                "payment",
            ),
        ];
        for (body, field) in cases {
            let problem =
                bazaar_testkit::problem(fleet.place(&buyer, key().as_deref(), &body).await, 422)
                    .await;
            assert_eq!(problem.errors[0].field, field, "{body}");
        }
        // The wrong JSON type is a 422 too; broken JSON a 400.
        let wrong_type = json!({"items": [{"product_id": teapot.to_string(), "quantity": "two"}]});
        bazaar_testkit::problem(
            fleet.place(&buyer, key().as_deref(), &wrong_type).await,
            422,
        )
        .await;
        let res = fleet
            .http
            .post(fleet.orders().url("/api/v1/orders"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "broken")
            .header("content-type", "application/json")
            .body("{\"items\": [")
            .send()
            .await
            .expect("POST");
        bazaar_testkit::problem(res, 400).await;

        let page = fleet.list(&buyer, "").await;
        assert_eq!(page["total"], 0, "nothing stored on {}", fleet.on());
        assert_eq!(fleet.stock(teapot).await, Some((5, 0)));
        fleet.stop().await;
    }
}

#[tokio::test]
async fn an_order_is_only_its_buyers() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let other = fleet.customer().await;
        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 1)]), GOOD_CARD))
            .await;
        let id = accepted["id"].as_str().expect("id");

        bazaar_testkit::problem(fleet.get(&other, id).await, 404).await;
        bazaar_testkit::problem(fleet.get(&buyer, "not-a-uuid").await, 404).await;
        bazaar_testkit::problem(fleet.get(&buyer, &Uuid::now_v7().to_string()).await, 404).await;
        assert_eq!(fleet.list(&other, "").await["total"], 0);
        assert_eq!(fleet.order(&buyer, id).await["id"], id, "on {}", fleet.on());
        fleet.stop().await;
    }
}

#[tokio::test]
async fn orders_are_listed_newest_first_a_page_at_a_time() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let accepted = fleet
                .accepted(&buyer, &order(Some(&[(teapot, 1)]), GOOD_CARD))
                .await;
            ids.push(accepted["id"].as_str().expect("id").to_owned());
        }
        let first = fleet.list(&buyer, "?page=1&limit=2").await;
        assert_eq!(first["total"], 3);
        assert_eq!(first["page"], 1);
        assert_eq!(first["limit"], 2);
        let got: Vec<&str> = first["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| o["id"].as_str().expect("id"))
            .collect();
        assert_eq!(got, [ids[2].as_str(), ids[1].as_str()], "on {}", fleet.on());
        assert!(first["items"][0]["timeline"].is_array());
        let second = fleet.list(&buyer, "?page=2&limit=2").await;
        assert_eq!(second["items"][0]["id"], ids[0].as_str());
        assert_eq!(
            fleet.list(&buyer, "?page=3&limit=2").await["items"],
            json!([])
        );
        let res = fleet
            .http
            .get(fleet.orders().url("/api/v1/orders?limit=101&page=0"))
            .bearer_auth(&buyer.token)
            .send()
            .await
            .expect("GET");
        let problem = bazaar_testkit::problem(res, 422).await;
        assert_eq!(problem.errors.len(), 2);
        fleet.stop().await;
    }
}

#[tokio::test]
async fn an_empty_cart_is_refused() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let buyer = fleet.customer().await;
        let res = fleet
            .place(&buyer, Some("empty"), &order(None, GOOD_CARD))
            .await;
        let problem = bazaar_testkit::problem(res, 422).await;
        assert_eq!(problem.errors[0].field, "items");
        assert!(problem.errors[0].message.contains("your cart is empty"));
        assert_eq!(
            fleet.list(&buyer, "").await["total"],
            0,
            "on {}",
            fleet.on()
        );
        fleet.stop().await;
    }
}

#[tokio::test]
async fn an_unreachable_cart_is_503_but_named_items_still_sell() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet_with::<Orders<QUICK>, Payments<0>>(engine, Up::Yes, Up::No).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let res = fleet
            .place(&buyer, Some("cart"), &order(None, GOOD_CARD))
            .await;
        let problem = bazaar_testkit::problem(res, 503).await;
        assert!(problem.detail.contains("cart"), "{}", problem.detail);
        assert_eq!(fleet.list(&buyer, "").await["total"], 0);

        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 1)]), GOOD_CARD))
            .await;
        let done = fleet
            .settled(&buyer, accepted["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["status"], "confirmed", "on {}", fleet.on());
        fleet.stop().await;
    }
}
