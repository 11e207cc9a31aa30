//! `inventory.stock.low`: announced through the outbox once per crossing.

use bazaar_events::inventory::StockLow;
use serde_json::json;
use uuid::Uuid;

use crate::support::apps;

#[tokio::test]
async fn low_stock_is_announced_once_per_crossing() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 10).await;

        // 10 → 4 available by a commit: below 5, announced.
        let order = Uuid::now_v7();
        app.reserve(order, &[(product, 6)]).await.unwrap();
        app.commit(order).await.unwrap();
        // Still low after another commit: not announced again.
        let order = Uuid::now_v7();
        app.reserve(order, &[(product, 1)]).await.unwrap();
        app.commit(order).await.unwrap();
        assert_eq!(app.stock(product).await, (3, 0));
        // Back up, then down again by the seller: the second crossing.
        let up = app
            .put(product, &json!({"on_hand": 20}), Some(&seller))
            .await;
        assert_eq!(up.status(), 200);
        let down = app
            .put(product, &json!({"on_hand": 2}), Some(&seller))
            .await;
        assert_eq!(down.status(), 200);

        let subject = product.to_string();
        let seen = app
            .events("inventory.stock.low", &subject, |seen| {
                seen.iter().any(|e| e.data["available"] == 2)
            })
            .await;
        let events: Vec<StockLow> = seen
            .iter()
            .map(|e| e.decode::<StockLow>().expect("a StockLow"))
            .collect();
        let seller_id = Uuid::parse_str(&seller.id).unwrap();
        assert_eq!(
            events,
            vec![
                StockLow {
                    product_id: product,
                    seller_id,
                    available: 4
                },
                StockLow {
                    product_id: product,
                    seller_id,
                    available: 2
                },
            ],
            "on {}",
            app.on()
        );
        app.stop().await;
    }
}
