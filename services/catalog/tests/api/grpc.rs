//! `bazaar.catalog.v1.Catalog/GetProducts`, as orders calls it.

use bazaar_proto::catalog::v1::GetProductsRequest;
use bazaar_proto::catalog::v1::catalog_client::CatalogClient;
use reqwest::Method;

use crate::support::{apps, product};

#[tokio::test]
async fn get_products_tells_deleted_from_unknown() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let kept = app
            .create(&seller, &product("Chess set", "toys-games", 4500))
            .await;
        let gone = app
            .create(&seller, &product("Yo-yo", "toys-games", 300))
            .await;
        let gone_id = gone["id"].as_str().unwrap().to_owned();
        let res = app
            .call(
                Method::DELETE,
                &format!("/api/v1/products/{gone_id}"),
                Some(&seller.token),
                None,
            )
            .await;
        assert_eq!(res.status(), 204);

        let mut client = CatalogClient::connect(app.base.clone())
            .await
            .expect("gRPC");
        let unknown = uuid::Uuid::now_v7().to_string();
        let kept_id = kept["id"].as_str().unwrap().to_owned();
        let answer = client
            .get_products(GetProductsRequest {
                ids: vec![
                    kept_id.clone(),
                    gone_id.clone(),
                    unknown.clone(),
                    kept_id.clone(),
                ],
            })
            .await
            .expect("GetProducts")
            .into_inner();
        assert_eq!(answer.products.len(), 2, "{}", app.on());
        let first = &answer.products[0];
        assert_eq!(first.id, kept_id);
        assert_eq!(first.title, "Chess set");
        assert_eq!(first.seller_id, seller.id);
        let price = first.price.as_ref().expect("price");
        assert_eq!((price.amount, price.currency.as_str()), (4500, "EUR"));
        assert!(first.on_sale);
        assert_eq!(answer.products[1].id, gone_id);
        assert!(!answer.products[1].on_sale, "deleted is off sale");
        assert_eq!(answer.missing, [unknown]);

        let bad = client
            .get_products(GetProductsRequest {
                ids: vec!["not-a-uuid".to_owned()],
            })
            .await
            .expect_err("a bad id is refused");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let empty = client
            .get_products(GetProductsRequest { ids: vec![] })
            .await
            .expect("no ids")
            .into_inner();
        assert!(empty.products.is_empty() && empty.missing.is_empty());
    }
}
