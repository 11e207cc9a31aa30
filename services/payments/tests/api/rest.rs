//! `GET /api/v1/payments?order_id=`: the buyer sees the order's payments;
//! anyone else sees nothing, not even that they exist.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{APPROVED, DECLINED, apps};

#[tokio::test]
async fn the_buyer_sees_the_payment_and_no_one_else_does() {
    for app in apps().await {
        let on = app.on();
        let buyer = app.user().await;
        let order = Uuid::now_v7();
        let p = app
            .authorize(order, buyer.uuid(), 2999, APPROVED)
            .await
            .unwrap();
        app.capture(order).await.unwrap();

        let query = format!("?order_id={order}");
        let res = app.list(&query, Some(&buyer)).await;
        assert_eq!(res.status(), 200, "{on}");
        let body: Value = res.json().await.unwrap();
        let created_at = body[0]["created_at"]
            .as_str()
            .expect("created_at")
            .to_owned();
        assert!(
            time::OffsetDateTime::parse(
                &created_at,
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "{created_at}"
        );
        assert_eq!(
            body,
            json!([{
                "id": p.id,
                "order_id": order.to_string(),
                "status": "captured",
                "amount": 2999,
                "currency": "EUR",
                "card_last4": "4242",
                "created_at": created_at,
            }]),
            "{on}"
        );

        // Another user: an empty list, as for an order without payments.
        let other = app.user().await;
        let res = app.list(&query, Some(&other)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap(), json!([]), "{on}");
        let res = app
            .list(&format!("?order_id={}", Uuid::now_v7()), Some(&buyer))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap(), json!([]));

        // A declined payment is listed as such.
        let declined = Uuid::now_v7();
        app.authorize(declined, buyer.uuid(), 100, DECLINED)
            .await
            .unwrap();
        let res = app
            .list(&format!("?order_id={declined}"), Some(&buyer))
            .await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body[0]["status"], "declined", "{on}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_token_is_needed_and_the_query_is_checked() {
    for app in apps().await {
        let on = app.on();
        let buyer = app.user().await;
        let order = Uuid::now_v7();
        app.authorize(order, buyer.uuid(), 2999, APPROVED)
            .await
            .unwrap();
        let query = format!("?order_id={order}");

        bazaar_testkit::problem(app.list(&query, None).await, 401).await;
        let mut forged = buyer.clone();
        forged.token.push('x');
        bazaar_testkit::problem(app.list(&query, Some(&forged)).await, 401).await;
        // Without a token, a bad query is still a 401: nothing is said.
        bazaar_testkit::problem(app.list("?order_id=nope", None).await, 401).await;

        for (query, field) in [
            ("", "order_id"),
            ("?order_id=", "order_id"),
            ("?order_id=nope", "order_id"),
            ("?order_id=123", "order_id"),
            ("?order=x", "order_id"),
        ] {
            let p = bazaar_testkit::problem(app.list(query, Some(&buyer)).await, 422).await;
            assert_eq!(p.errors.len(), 1, "{query:?} on {on}");
            assert_eq!(p.errors[0].field, field, "{query:?}");
        }
        let twice = format!("?order_id={order}&order_id={order}");
        let p = bazaar_testkit::problem(app.list(&twice, Some(&buyer)).await, 422).await;
        assert_eq!(p.errors[0].field, "query");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_api_is_described() {
    for app in apps().await {
        let res = app
            .http
            .get(app.payments.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let spec: Value = res.json().await.unwrap();
        let get = &spec["paths"]["/api/v1/payments"]["get"];
        assert!(get["responses"]["200"].is_object(), "{spec}");
        assert!(get["responses"]["401"].is_object());
        assert!(get["responses"]["422"].is_object());
        assert_eq!(get["parameters"][0]["name"], "order_id");
        assert!(spec["components"]["schemas"]["Payment"].is_object());
        app.stop().await;
    }
}
