//! The REST API: who may read and set stock, and what is refused.

use serde_json::json;
use uuid::Uuid;

use crate::support::{apps, problem};

#[tokio::test]
async fn stock_is_created_from_catalog_events_and_readable_by_anyone() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 12).await;
        assert_eq!(app.stock(product).await, (12, 0), "{}", app.on());
        app.stop().await;
    }
}

#[tokio::test]
async fn unknown_products_are_404_problems() {
    for app in apps().await {
        let p = problem(app.get(Uuid::now_v7()).await, 404).await;
        assert_eq!(p.status, 404);
        problem(app.get("not-a-uuid").await, 404).await;
        let seller = app.user("seller").await;
        let body = json!({"on_hand": 3});
        problem(app.put(Uuid::now_v7(), &body, Some(&seller)).await, 404).await;
        problem(app.put("not-a-uuid", &body, Some(&seller)).await, 404).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn only_the_owning_seller_sets_on_hand() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 4).await;
        let body = json!({"on_hand": 9});

        problem(app.put(product, &body, None).await, 401).await;
        let mut forged = seller.clone();
        forged.token.push('x');
        problem(app.put(product, &body, Some(&forged)).await, 401).await;
        let customer = app.user("customer").await;
        problem(app.put(product, &body, Some(&customer)).await, 403).await;
        let other_seller = app.user("seller").await;
        problem(app.put(product, &body, Some(&other_seller)).await, 403).await;
        assert_eq!(
            app.stock(product).await,
            (4, 0),
            "refused PUTs change nothing"
        );

        let res = app.put(product, &body, Some(&seller)).await;
        assert_eq!(res.status(), 200, "{}", app.on());
        let answer: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            answer,
            json!({"product_id": product.to_string(), "available": 9, "reserved": 0})
        );
        assert_eq!(app.stock(product).await, (9, 0));
        app.stop().await;
    }
}

#[tokio::test]
async fn on_hand_must_be_a_whole_number_not_below_reserved() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 10).await;
        for bad in [
            json!({"on_hand": -1}),
            json!({"on_hand": 1.5}),
            json!({"on_hand": "3"}),
            json!({}),
        ] {
            let p = problem(app.put(product, &bad, Some(&seller)).await, 422).await;
            assert!(!p.errors.is_empty(), "{bad}: {p:?}");
        }
        app.reserve(Uuid::now_v7(), &[(product, 3)]).await.unwrap();
        let p = problem(
            app.put(product, &json!({"on_hand": 2}), Some(&seller))
                .await,
            409,
        )
        .await;
        assert!(p.detail.contains('3'), "{p:?}");
        let res = app
            .put(product, &json!({"on_hand": 3}), Some(&seller))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.stock(product).await, (0, 3), "{}", app.on());
        app.stop().await;
    }
}

#[tokio::test]
async fn deleted_products_disappear() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 5).await;
        app.delete_product(&seller, product).await;
        app.eventually("deleted product gone", || async {
            app.get(product).await.status() == 404
        })
        .await;
        let status = app
            .reserve(Uuid::now_v7(), &[(product, 1)])
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        problem(
            app.put(product, &json!({"on_hand": 1}), Some(&seller))
                .await,
            404,
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn openapi_describes_both_operations() {
    for app in apps().await {
        let spec: serde_json::Value = app
            .http
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let path = &spec["paths"]["/api/v1/inventory/{product_id}"];
        assert!(path["get"].is_object(), "{spec}");
        assert!(path["put"]["security"].is_array(), "{spec}");
        app.stop().await;
    }
}
