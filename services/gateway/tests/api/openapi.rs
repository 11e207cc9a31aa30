//! `GET /api/v1/openapi.json`: the gateway's description merged with the
//! services'.

use axum::Router;
use bazaar_gateway::Settings;
use serde_json::Value;

use crate::{client, serve, start_gateway, upstreams};

#[tokio::test]
async fn the_public_description_merges_every_service() {
    let catalog = upstreams(2).await;
    let catalog_urls: Vec<url::Url> = catalog.iter().map(|r| r.base.parse().unwrap()).collect();
    // A service that describes nothing yet, and one that is down.
    let orders = serve(Router::new()).await;
    let down = bazaar_testkit::refused_url("http");
    let gw = start_gateway(Settings::default(), move |c| {
        c.upstreams.insert("catalog".into(), catalog_urls);
        c.upstreams.insert("orders".into(), vec![orders]);
        c.upstreams.insert("payments".into(), vec![down]);
    })
    .await;

    let res = client()
        .get(format!("{}/api/v1/openapi.json", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let spec: Value = res.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{spec}"
    );
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/status"), "the gateway's own");
    assert!(paths.contains_key("/api/v1/openapi.json"));
    assert_eq!(
        spec["paths"]["/api/v1/products"]["get"]["operationId"], "list_products",
        "the catalog's, as it describes it"
    );
    assert!(
        !paths.contains_key("/internal/reindex"),
        "only what the gateway routes to the service is public"
    );
    assert!(spec["components"]["schemas"]["Product"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Served again from the cache, the same document.
    let again: Value = client()
        .get(format!("{}/api/v1/openapi.json", gw.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, spec);
}
