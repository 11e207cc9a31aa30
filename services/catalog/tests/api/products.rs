//! Creating, reading, editing and deleting products: who may, what is
//! refused, what is announced.

use reqwest::Method;
use serde_json::json;

use crate::support::{apps, problem, product};

#[tokio::test]
async fn a_seller_creates_edits_and_deletes_their_product() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let created = app
            .create(&seller, &product("Steel kettle", "home-kitchen", 2999))
            .await;
        let id = created["id"].as_str().expect("id").to_owned();
        assert_eq!(created["seller_id"], seller.id.as_str());
        assert_eq!(created["price"], json!({"amount": 2999, "currency": "EUR"}));
        assert_eq!(created["category"], "home-kitchen");
        assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

        let path = format!("/api/v1/products/{id}");
        assert_eq!(app.ok(&path).await, created, "{}", app.on());

        let res = app
            .call(
                Method::PATCH,
                &path,
                Some(&seller.token),
                Some(&json!({"title": "Copper kettle", "price": {"amount": 3999, "currency": "USD"}})),
            )
            .await;
        assert_eq!(res.status(), 200, "{}", app.on());
        let updated: serde_json::Value = res.json().await.unwrap();
        assert_eq!(updated["title"], "Copper kettle");
        assert_eq!(updated["description"], created["description"]);
        assert_eq!(updated["price"], json!({"amount": 3999, "currency": "USD"}));
        // The instance that made the change never answers the old state.
        assert_eq!(app.ok(&path).await["title"], "Copper kettle");

        let res = app
            .call(Method::DELETE, &path, Some(&seller.token), None)
            .await;
        assert_eq!(res.status(), 204, "{}", app.on());
        problem(app.get(&path).await, 404).await;
        let again = app
            .call(Method::DELETE, &path, Some(&seller.token), None)
            .await;
        problem(again, 404).await;
        let listed = app
            .ok(&format!("/api/v1/products?seller_id={}", seller.id))
            .await;
        assert_eq!(listed["total"], 0, "{}", app.on());

        // Create, update and delete were announced, in order, with the
        // initial stock only on create.
        let events = app
            .events(
                &[
                    "catalog.product.created",
                    "catalog.product.updated",
                    "catalog.product.deleted",
                ],
                |seen| seen.len() >= 3,
            )
            .await;
        let types: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
        assert_eq!(
            types,
            [
                "catalog.product.created",
                "catalog.product.updated",
                "catalog.product.deleted"
            ],
            "{}",
            app.on()
        );
        assert!(
            events
                .iter()
                .all(|e| e.subject.as_deref() == Some(id.as_str()))
        );
        assert_eq!(events[0].data["initial_stock"], 0);
        assert_eq!(events[1].data["price_amount"], 3999);
        assert_eq!(
            events[2].data,
            json!({"product_id": id, "seller_id": seller.id})
        );
    }
}

#[tokio::test]
async fn initial_stock_reaches_the_created_event() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let mut body = product("Trail shoes", "sports-outdoors", 8900);
        body["initial_stock"] = json!(7);
        let created = app.create(&seller, &body).await;
        let events = app
            .events(&["catalog.product.created"], |seen| !seen.is_empty())
            .await;
        assert_eq!(events.len(), 1, "{}", app.on());
        assert_eq!(
            events[0].data,
            json!({
                "product_id": created["id"],
                "seller_id": seller.id,
                "title": "Trail shoes",
                "price_amount": 8900,
                "currency": "EUR",
                "category": "sports-outdoors",
                "initial_stock": 7,
            })
        );
        // Stock is inventory's: the product itself does not carry it.
        assert!(created.get("initial_stock").is_none());
    }
}

#[tokio::test]
async fn only_the_owning_seller_may_change_a_product() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let other = app.user("seller").await;
        let customer = app.user("customer").await;
        let body = product("Desk lamp", "home-kitchen", 1999);

        let res = app
            .call(Method::POST, "/api/v1/products", None, Some(&body))
            .await;
        problem(res, 401).await;
        let res = app
            .call(
                Method::POST,
                "/api/v1/products",
                Some("not-a-token"),
                Some(&body),
            )
            .await;
        problem(res, 401).await;
        let res = app
            .call(
                Method::POST,
                "/api/v1/products",
                Some(&customer.token),
                Some(&body),
            )
            .await;
        problem(res, 403).await;

        let created = app.create(&seller, &body).await;
        let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let patch = json!({"title": "Mine now"});
        for token in [&other.token, &customer.token] {
            let res = app
                .call(Method::PATCH, &path, Some(token), Some(&patch))
                .await;
            problem(res, 403).await;
            let res = app.call(Method::DELETE, &path, Some(token), None).await;
            problem(res, 403).await;
        }
        let res = app.call(Method::PATCH, &path, None, Some(&patch)).await;
        problem(res, 401).await;
        let res = app.call(Method::DELETE, &path, None, None).await;
        problem(res, 401).await;
        assert_eq!(app.ok(&path).await["title"], "Desk lamp", "{}", app.on());
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let post = |body: serde_json::Value| {
            let app = &app;
            let token = seller.token.clone();
            async move {
                app.call(Method::POST, "/api/v1/products", Some(&token), Some(&body))
                    .await
            }
        };
        let cases = [
            (
                json!({"title": "", "price": {"amount": 100, "currency": "EUR"}, "category": "books"}),
                "title",
            ),
            (
                json!({"title": "A", "price": {"amount": -5, "currency": "EUR"}, "category": "books"}),
                "price.amount",
            ),
            (
                json!({"title": "A", "price": {"amount": 0, "currency": "EUR"}, "category": "books"}),
                "price.amount",
            ),
            (
                json!({"title": "A", "price": {"amount": 100, "currency": "XYZ"}, "category": "books"}),
                "price.currency",
            ),
            (
                json!({"title": "A", "price": {"amount": 100, "currency": "eur"}, "category": "books"}),
                "price.currency",
            ),
            (
                json!({"title": "A", "price": {"amount": 100, "currency": "EUR"}, "category": "nope"}),
                "category",
            ),
            (
                json!({"title": "A", "price": {"amount": 100, "currency": "EUR"}, "category": "books", "initial_stock": -1}),
                "initial_stock",
            ),
            (
                json!({"title": "x".repeat(201), "price": {"amount": 100, "currency": "EUR"}, "category": "books"}),
                "title",
            ),
        ];
        for (body, field) in cases {
            let p = problem(post(body.clone()).await, 422).await;
            let fields: Vec<&str> = p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{body} on {}: {p}", app.on());
        }
        // Wrong shapes and types are 422 too, never a 500.
        problem(post(json!({"title": "A"})).await, 422).await;
        problem(post(json!({"title": "A", "price": {"amount": "ten", "currency": "EUR"}, "category": "books"})).await, 422).await;

        // Ids that are not UUIDs are simply no product.
        for path in [
            "/api/v1/products/not-a-uuid",
            "/api/v1/products/1",
            "/api/v1/products/%27%3B%20DROP",
        ] {
            problem(app.get(path).await, 404).await;
            let res = app
                .call(
                    Method::PATCH,
                    path,
                    Some(&seller.token),
                    Some(&json!({"title": "B"})),
                )
                .await;
            problem(res, 404).await;
            let res = app
                .call(Method::DELETE, path, Some(&seller.token), None)
                .await;
            problem(res, 404).await;
        }
        let unknown = format!("/api/v1/products/{}", uuid::Uuid::now_v7());
        problem(app.get(&unknown).await, 404).await;

        // An edit checks its fields as a create does.
        let created = app
            .create(
                &seller,
                &crate::support::product("Mug", "home-kitchen", 500),
            )
            .await;
        let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        for patch in [
            json!({"title": "  "}),
            json!({"price": {"amount": -1, "currency": "EUR"}}),
            json!({"price": {"amount": 1, "currency": "ZZZ"}}),
            json!({"category": "nope"}),
        ] {
            let res = app
                .call(Method::PATCH, &path, Some(&seller.token), Some(&patch))
                .await;
            problem(res, 422).await;
        }
        assert_eq!(app.ok(&path).await, created);
    }
}

#[tokio::test]
async fn concurrent_edits_all_succeed() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let created = app
            .create(&seller, &product("Busy product", "books", 100))
            .await;
        let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let edits = (1..=10).map(|n| {
            let (app, path, token) = (&app, path.clone(), seller.token.clone());
            async move {
                let body = json!({"price": {"amount": 100 + n, "currency": "EUR"}});
                app.call(Method::PATCH, &path, Some(&token), Some(&body))
                    .await
                    .status()
            }
        });
        let statuses = futures_util::future::join_all(edits).await;
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{statuses:?} on {}",
            app.on()
        );
        let amount = app.ok(&path).await["price"]["amount"].as_i64().unwrap();
        assert!((101..=110).contains(&amount));
    }
}
