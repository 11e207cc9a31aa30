//! The REST API through a real socket, on every backend: what a customer
//! can do to their cart, and what is refused.

use bazaar_testkit::problem;
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{App, apps, items};

#[tokio::test]
async fn every_route_needs_a_user_token() {
    for app in apps().await {
        let user = app.user().await;
        let product = Uuid::now_v7();
        app.add(&user, product, 1).await;
        let body = json!({"quantity": 2});

        problem(app.get(None).await, 401).await;
        problem(app.put(None, product, &body).await, 401).await;
        problem(app.remove(None, product).await, 401).await;
        problem(app.clear(None).await, 401).await;
        let mut forged = user.clone();
        forged.token.push('x');
        problem(app.get(Some(&forged)).await, 401).await;
        problem(app.put(Some(&forged), product, &body).await, 401).await;
        problem(app.clear(Some(&forged)).await, 401).await;
        // Refused before the body is even read.
        let res = app
            .http
            .put(app.url(&format!("/api/v1/cart/items/{product}")))
            .body("{not json")
            .send()
            .await
            .unwrap();
        problem(res, 401).await;

        assert_eq!(app.items(&user).await, vec![(product, 1)], "{}", app.on);
        app.stop().await;
    }
}

#[tokio::test]
async fn put_get_remove_and_clear_keep_first_added_order() {
    for app in apps().await {
        let user = app.user().await;
        assert_eq!(app.items(&user).await, vec![], "no cart yet: {}", app.on);
        let res = app.get(Some(&user)).await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"items": []}));

        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        app.add(&user, c, 1).await;
        app.add(&user, a, 2).await;
        let res = app.put(Some(&user), b, &json!({"quantity": 3})).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"items": [
                {"product_id": c.to_string(), "quantity": 1},
                {"product_id": a.to_string(), "quantity": 2},
                {"product_id": b.to_string(), "quantity": 3},
            ]}),
            "{}",
            app.on
        );
        // Setting a quantity replaces it and keeps the line's place.
        assert_eq!(app.add(&user, c, 99).await, vec![(c, 99), (a, 2), (b, 3)]);
        assert_eq!(app.items(&user).await, vec![(c, 99), (a, 2), (b, 3)]);

        let res = app.remove(Some(&user), a).await;
        assert_eq!(res.status(), 200, "{}", app.on);
        assert_eq!(items(res).await, vec![(c, 99), (b, 3)]);
        // Removing an absent line is fine.
        let res = app.remove(Some(&user), a).await;
        assert_eq!(res.status(), 200);
        assert_eq!(items(res).await, vec![(c, 99), (b, 3)]);
        // Added again, it goes last.
        assert_eq!(app.add(&user, a, 1).await, vec![(c, 99), (b, 3), (a, 1)]);

        let res = app.clear(Some(&user)).await;
        assert_eq!(res.status(), 204, "{}", app.on);
        assert!(res.bytes().await.unwrap().is_empty());
        assert_eq!(app.items(&user).await, vec![]);
        assert_eq!(app.clear(Some(&user)).await.status(), 204, "again");
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_and_changes_nothing() {
    for app in apps().await {
        let user = app.user().await;
        let product = Uuid::now_v7();
        app.add(&user, product, 5).await;
        let before = vec![(product, 5)];

        for (bad, field) in [
            (json!({"quantity": 0}), "quantity"),
            (json!({"quantity": 100}), "quantity"),
            (json!({"quantity": -1}), "quantity"),
            (json!({"quantity": 1.5}), "quantity"),
            (json!({"quantity": "3"}), "quantity"),
            (json!({"quantity": null}), "quantity"),
            (json!({}), "body"),
            (json!([]), "body"),
        ] {
            let p = problem(app.put(Some(&user), product, &bad).await, 422).await;
            assert_eq!(p.errors.len(), 1, "{bad} on {}: {p:?}", app.on);
            if field == "quantity" {
                assert_eq!(p.errors[0].field, "quantity", "{bad}: {p:?}");
            }
        }
        // A bad product id and a bad quantity: both named at once.
        let p = problem(
            app.put(Some(&user), "not-a-uuid", &json!({"quantity": 0}))
                .await,
            422,
        )
        .await;
        let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["product_id", "quantity"], "{p:?}");
        let p = problem(
            app.put(Some(&user), "not-a-uuid", &json!({"quantity": 1}))
                .await,
            422,
        )
        .await;
        assert_eq!(p.errors[0].field, "product_id");
        let p = problem(app.remove(Some(&user), "not-a-uuid").await, 422).await;
        assert_eq!(p.errors[0].field, "product_id");

        // Not JSON at all, or not said to be JSON.
        let url = app.url(&format!("/api/v1/cart/items/{product}"));
        let broken = app
            .http
            .put(&url)
            .bearer_auth(&user.token)
            .header("content-type", "application/json")
            .body("{\"quantity\":")
            .send()
            .await
            .unwrap();
        problem(broken, 400).await;
        let untyped = app
            .http
            .put(&url)
            .bearer_auth(&user.token)
            .body("{\"quantity\":1}")
            .send()
            .await
            .unwrap();
        problem(untyped, 415).await;
        let empty = app
            .http
            .put(&url)
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        problem(empty, 415).await;

        assert_eq!(app.items(&user).await, before, "on {}", app.on);
        // The bounds themselves are fine.
        assert_eq!(app.add(&user, product, 1).await, vec![(product, 1)]);
        assert_eq!(app.add(&user, product, 99).await, vec![(product, 99)]);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_cart_holds_at_most_fifty_lines() {
    for app in apps().await {
        let user = app.user().await;
        let products: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
        for product in &products {
            app.add(&user, *product, 1).await;
        }
        let full: Vec<(Uuid, i64)> = products.iter().map(|p| (*p, 1)).collect();

        let p = problem(
            app.put(Some(&user), Uuid::now_v7(), &json!({"quantity": 1}))
                .await,
            409,
        )
        .await;
        assert_eq!(p.kind, "urn:bazaar:problem:cart-full", "{p:?}");
        assert!(p.detail.contains("50"), "{p:?}");
        assert_eq!(app.items(&user).await, full, "on {}", app.on);

        // Lines already there can still change; with room, new ones fit.
        assert_eq!(app.add(&user, products[49], 3).await.len(), 50);
        app.remove(Some(&user), products[0]).await;
        let extra = Uuid::now_v7();
        let after = app.add(&user, extra, 2).await;
        assert_eq!(after.len(), 50);
        assert_eq!(after[49], (extra, 2));
        app.stop().await;
    }
}

#[tokio::test]
async fn users_see_and_change_only_their_own_carts() {
    for app in apps().await {
        let (alice, bob) = (app.user().await, app.user().await);
        let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
        app.add(&alice, x, 1).await;
        assert_eq!(app.items(&bob).await, vec![], "on {}", app.on);
        assert_eq!(app.add(&bob, y, 2).await, vec![(y, 2)]);
        assert_eq!(items(app.remove(Some(&bob), x).await).await, vec![(y, 2)]);
        app.clear(Some(&bob)).await;
        assert_eq!(app.items(&alice).await, vec![(x, 1)], "on {}", app.on);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_additions_never_pass_fifty_lines() {
    for app in apps().await {
        let user = app.user().await;
        for _ in 0..40 {
            app.add(&user, Uuid::now_v7(), 1).await;
        }
        let body = json!({"quantity": 2});
        let answers = join_all((0..20).map(|_| app.put(Some(&user), Uuid::now_v7(), &body))).await;
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [[200; 10], [409; 10]].concat(), "on {}", app.on);
        assert_eq!(app.items(&user).await.len(), 50, "on {}", app.on);
        app.stop().await;
    }
}

#[tokio::test]
async fn ready_described_and_counted() {
    for app in apps().await {
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "on {}", app.on);
        let checks: Value = ready.json().await.unwrap();
        let names: Vec<&str> = checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names.contains(&"redis"),
            app.redis.is_some(),
            "a Redis check exactly when carts are in Redis: {names:?}"
        );

        let spec: Value = app
            .http
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(spec["paths"]["/api/v1/cart"]["get"].is_object(), "{spec}");
        assert!(spec["paths"]["/api/v1/cart/items/{product_id}"]["put"].is_object());

        let user = app.user().await;
        app.add(&user, Uuid::now_v7(), 1).await;
        app.items(&user).await;
        assert!(counted(&app, "put", "ok").await >= 1.0, "on {}", app.on);
        assert!(counted(&app, "get", "ok").await >= 1.0);
        app.stop().await;
    }
}

async fn counted(app: &App, op: &str, outcome: &str) -> f64 {
    bazaar_testkit::scrape(&app.http, &app.cart.base)
        .await
        .sum("cart_operations_total", &[("op", op), ("outcome", outcome)])
}

#[tokio::test]
async fn with_redis_configured_carts_live_in_redis() {
    let Some(url) = bazaar_testkit::redis_url() else {
        return;
    };
    let app = crate::support::spawn(crate::support::Backend::Redis(url)).await;
    let keys = app.redis.as_ref().unwrap();
    let user = app.user().await;
    let product = Uuid::now_v7();
    app.add(&user, product, 2).await;
    let key = format!("{}{}", keys.prefix, user.id);
    let hash = keys.hash(&key).await;
    assert_eq!(
        hash.get(&product.to_string()).map(String::as_str),
        Some("1:2")
    );
    assert!(keys.ttl(&key).await > 29 * 24 * 3600, "a month to live");
    app.clear(Some(&user)).await;
    assert_eq!(keys.ttl(&key).await, -2, "cleared: no key");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_start() {
    // A port that was free a moment ago: nothing answers there.
    let redis = bazaar_testkit::refused_url("redis");
    let port = redis.port().expect("a port");
    let dir = tempfile::tempdir().unwrap();
    let mut config = bazaar_testkit::config("cart", dir.path(), &bazaar_testkit::Engine::Sqlite);
    config.upstreams.insert(
        "identity".to_owned(),
        vec!["http://127.0.0.1:1".parse().unwrap()],
    );
    config.redis_url = Some(bazaar_platform::config::Secret::new(redis));
    let error = bazaar_platform::Server::build::<bazaar_cart::Cart>(config)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains(&format!("cannot connect to Redis at 127.0.0.1:{port}")),
        "{error:#}"
    );
}
