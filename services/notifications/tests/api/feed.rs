//! The feed over REST: who may read it, what an item looks like, pages,
//! read marks.

use bazaar_testkit::{PATIENCE, engines, problem};
use serde_json::Value;
use uuid::Uuid;

use crate::support::{BrokerKind, World, all, confirmed, feed, stock_low, wait_for};

#[tokio::test]
async fn every_endpoint_needs_a_user() {
    let world = World::new(bazaar_testkit::Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world.start().await;
    let http = &world.http;
    let id = Uuid::now_v7();
    for token in [None, Some("not-a-token")] {
        let with = |req: reqwest::RequestBuilder| match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = with(http.get(app.url("/api/v1/notifications")))
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
        let res = with(http.post(app.url(&format!("/api/v1/notifications/{id}/read"))))
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
        let res = with(http.get(app.url("/api/v1/notifications/stream")))
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn each_user_reads_only_their_own_newest_first() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let (ann, bob) = (world.user("customer").await, world.user("seller").await);
        let order = Uuid::now_v7();
        world.bus.publish(&confirmed(order, ann.uuid())).await;
        let product = Uuid::now_v7();
        for available in [4, 3, 2] {
            world
                .bus
                .publish(&stock_low(product, bob.uuid(), available))
                .await;
        }
        let mine = wait_for(http, &app.base, &ann, "ann's order", PATIENCE, |items| {
            !items.is_empty()
        })
        .await;
        let theirs = wait_for(http, &app.base, &bob, "bob's three", PATIENCE, |items| {
            items.len() == 3
        })
        .await;

        assert_eq!(mine.len(), 1, "{}: {mine:?}", world.name());
        let item = &mine[0];
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            7,
            "id, kind, title, body, link, read, created_at: {item}"
        );
        assert_eq!(item["kind"], "order_confirmed");
        assert_eq!(item["title"], "Order confirmed");
        assert_eq!(
            item["body"],
            "Your order of 2 x Cast iron teapot is confirmed; 49.00 EUR was charged."
        );
        assert_eq!(item["link"], format!("/orders/{order}"));
        assert_eq!(item["read"], false);
        assert!(
            Uuid::parse_str(item["id"].as_str().unwrap()).is_ok_and(|id| id.get_version_num() == 7)
        );
        let created = item["created_at"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{created}"
        );
        assert!(created.ends_with('Z'), "{created}");

        // Newest first: the last published (2 left) comes first.
        let bodies: Vec<&str> = theirs.iter().map(|i| i["body"].as_str().unwrap()).collect();
        assert!(bodies[0].contains("only 2 units"), "{bodies:?}");
        assert!(bodies[2].contains("only 4 units"), "{bodies:?}");
        assert!(theirs.iter().all(|i| i["kind"] == "stock_low"));
        assert!(
            theirs
                .iter()
                .all(|i| i["link"] == format!("/products/{product}"))
        );
        let ids: Vec<&str> = theirs.iter().map(|i| i["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted, "ids descend");
        app.stop().await;
    }
}

#[tokio::test]
async fn pages_and_their_limits() {
    let world = World::new(bazaar_testkit::Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world.start().await;
    let http = &world.http;
    let seller = world.user("seller").await;
    for n in 0..5 {
        world
            .bus
            .publish(&stock_low(Uuid::now_v7(), seller.uuid(), n))
            .await;
    }
    let every = wait_for(http, &app.base, &seller, "five", PATIENCE, |i| i.len() == 5).await;

    let page = feed(http, &app.base, &seller, "?page=2&limit=2").await;
    assert_eq!(page["page"], 2);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["total"], 5);
    let ids = |items: &Value| -> Vec<Value> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(
        ids(&page["items"]),
        vec![every[2]["id"].clone(), every[3]["id"].clone()]
    );
    let default = feed(http, &app.base, &seller, "").await;
    assert_eq!(
        (default["page"].clone(), default["limit"].clone()),
        (1.into(), 20.into())
    );
    let beyond = feed(http, &app.base, &seller, "?page=9").await;
    assert_eq!(beyond["items"], Value::Array(vec![]));
    assert_eq!(beyond["total"], 5);

    for (query, fields) in [
        ("?limit=0", vec!["limit"]),
        ("?limit=101", vec!["limit"]),
        ("?page=0&limit=x", vec!["page", "limit"]),
        ("?page=-1", vec!["page"]),
    ] {
        let res = http
            .get(app.url(&format!("/api/v1/notifications{query}")))
            .bearer_auth(&seller.token)
            .send()
            .await
            .unwrap();
        let p = problem(res, 422).await;
        let named: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, fields, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn marking_read_is_for_the_owner_only() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let (ann, eve) = (world.user("customer").await, world.user("customer").await);
        world
            .bus
            .publish(&confirmed(Uuid::now_v7(), ann.uuid()))
            .await;
        let items = wait_for(http, &app.base, &ann, "ann's order", PATIENCE, |i| {
            !i.is_empty()
        })
        .await;
        let id = items[0]["id"].as_str().unwrap().to_owned();
        let read = |user: &bazaar_testkit::User, id: String| {
            http.post(app.url(&format!("/api/v1/notifications/{id}/read")))
                .bearer_auth(&user.token)
                .send()
        };

        // Someone else's, an unknown one, not an id: all the same 404.
        for (user, id) in [
            (&eve, id.clone()),
            (&ann, Uuid::now_v7().to_string()),
            (&ann, "not-an-id".to_owned()),
        ] {
            let p = problem(read(user, id.clone()).await.unwrap(), 404).await;
            assert_eq!(p.status, 404, "{id}");
        }
        assert_eq!(all(http, &app.base, &ann).await[0]["read"], false);

        let res = read(&ann, id.clone()).await.unwrap();
        assert_eq!(res.status(), 204, "{}", world.name());
        assert_eq!(all(http, &app.base, &ann).await[0]["read"], true);
        // Again: still 204.
        assert_eq!(read(&ann, id).await.unwrap().status(), 204);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_unread_count_drops_when_one_is_read() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let (ann, eve) = (world.user("customer").await, world.user("customer").await);
        for _ in 0..3 {
            world
                .bus
                .publish(&confirmed(Uuid::now_v7(), ann.uuid()))
                .await;
        }
        let items = wait_for(http, &app.base, &ann, "ann's three", PATIENCE, |i| {
            i.len() == 3
        })
        .await;
        // Counted over every page, not just the one asked for.
        let page = feed(http, &app.base, &ann, "?limit=1").await;
        assert_eq!(page["unread"], 3, "{}: {page}", world.name());
        assert_eq!(feed(http, &app.base, &eve, "").await["unread"], 0);

        let id = items[1]["id"].as_str().unwrap();
        let res = http
            .post(app.url(&format!("/api/v1/notifications/{id}/read")))
            .bearer_auth(&ann.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let page = feed(http, &app.base, &ann, "").await;
        assert_eq!(page["unread"], 2, "{}: {page}", world.name());
        assert_eq!(page["total"], 3);
        // Reading it again changes nothing.
        http.post(app.url(&format!("/api/v1/notifications/{id}/read")))
            .bearer_auth(&ann.token)
            .send()
            .await
            .unwrap();
        assert_eq!(feed(http, &app.base, &ann, "").await["unread"], 2);
        app.stop().await;
    }
}
