//! The live stream: what comes after a client connected, a resume with
//! `Last-Event-ID`, tokens in the query for `EventSource`, several
//! replicas, and the gateway in front.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bazaar_notifications::Settings;
use bazaar_testkit::{Engine, PATIENCE, engines, problem};
use uuid::Uuid;

use crate::support::{BrokerKind, Open, World, brokers, connect, settings, stock_low, wait_for};

#[tokio::test]
async fn a_stream_gets_what_comes_after_it_connected_and_resumes_after_a_reconnect() {
    for broker in brokers() {
        let world = World::new(Engine::Sqlite, broker).await;
        let name = world.name();
        let app = world.start().await;
        let http = &world.http;
        let seller = world.user("seller").await;
        let url = app.url("/api/v1/notifications/stream");
        let token = Open {
            token: Some(&seller.token),
            ..Open::default()
        };
        let link = |p: Uuid| format!("/products/{p}");

        // From before the stream: in the feed, never on the stream (even
        // if its live copy is still on its way).
        let before = Uuid::now_v7();
        world
            .bus
            .publish(&stock_low(before, seller.uuid(), 9))
            .await;
        wait_for(http, &app.base, &seller, "the first", PATIENCE, |i| {
            i.len() == 1
        })
        .await;

        let mut sse = connect(http, &url, token).await.expect("a stream");
        let p1 = Uuid::now_v7();
        world.bus.publish(&stock_low(p1, seller.uuid(), 8)).await;
        let e1 = sse.event(PATIENCE).await.expect("the new one");
        assert_eq!(e1.event.as_deref(), Some("notification"), "{name}");
        let body = e1.json();
        assert_eq!(body["link"], link(p1), "{name}: {body}");
        assert_eq!(body["kind"], "stock_low");
        assert_eq!(body["read"], false);
        assert_eq!(
            e1.id.as_deref(),
            body["id"].as_str(),
            "event id = notification id"
        );
        drop(sse);

        // Missed while away.
        let (p2, p3) = (Uuid::now_v7(), Uuid::now_v7());
        world.bus.publish(&stock_low(p2, seller.uuid(), 7)).await;
        world.bus.publish(&stock_low(p3, seller.uuid(), 6)).await;
        wait_for(http, &app.base, &seller, "four", PATIENCE, |i| i.len() == 4).await;

        let mut sse = connect(
            http,
            &url,
            Open {
                token: Some(&seller.token),
                last_event_id: e1.id.as_deref(),
                ..Open::default()
            },
        )
        .await
        .expect("a resumed stream");
        let e2 = sse.event(PATIENCE).await.expect("the first missed");
        let e3 = sse.event(PATIENCE).await.expect("the second missed");
        assert_eq!(e2.json()["link"], link(p2), "{name}");
        assert_eq!(e3.json()["link"], link(p3), "{name}");
        // Then live ones, and nothing twice.
        let p4 = Uuid::now_v7();
        world.bus.publish(&stock_low(p4, seller.uuid(), 5)).await;
        let e4 = sse
            .event(PATIENCE)
            .await
            .expect("a live one after the resume");
        assert_eq!(e4.json()["link"], link(p4), "{name}");
        let ids: Vec<String> = [&e1, &e2, &e3, &e4]
            .iter()
            .map(|e| e.id.clone().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: {ids:?}");
        drop(sse);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_stream_takes_its_token_from_the_query_too() {
    let world = World::new(Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world.start().await;
    let http = &world.http;
    let ann = world.user("customer").await;
    let url = app.url("/api/v1/notifications/stream");

    let refused = |how: Open<'static>| connect(http, &url, how);
    let res = refused(Open::default()).await.err().expect("no token: 401");
    problem(res, 401).await;
    let res = refused(Open {
        query_token: Some("forged"),
        ..Open::default()
    })
    .await
    .err()
    .expect("a forged token: 401");
    problem(res, 401).await;

    let mut sse = connect(
        http,
        &url,
        Open {
            query_token: Some(&ann.token),
            ..Open::default()
        },
    )
    .await
    .expect("?access_token= is accepted");
    let order = Uuid::now_v7();
    world
        .bus
        .publish(&crate::support::confirmed(order, ann.uuid()))
        .await;
    let event = sse.event(PATIENCE).await.expect("the order");
    assert_eq!(event.json()["link"], format!("/orders/{order}"));
    drop(sse);

    // The header wins over the query.
    connect(
        http,
        &url,
        Open {
            token: Some(&ann.token),
            query_token: Some("forged"),
            ..Open::default()
        },
    )
    .await
    .expect("the header's token is used");
    // A resume point that is no notification id.
    let res = connect(
        http,
        &url,
        Open {
            token: Some(&ann.token),
            last_event_id: Some("yesterday"),
            ..Open::default()
        },
    )
    .await
    .err()
    .expect("422");
    let p = problem(res, 422).await;
    assert_eq!(p.errors[0].field, "Last-Event-ID");
    // Other endpoints take no token from the query.
    let res = http
        .get(app.url(&format!("/api/v1/notifications?access_token={}", ann.token)))
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_on_one_replica_sees_what_another_handled() {
    for engine in engines() {
        for broker in brokers() {
            let world = World::new(engine.clone(), broker).await;
            let name = world.name();
            let http = &world.http;
            let a = world.start_with("notifications-0", settings()).await;
            let b = world.start_with("notifications-1", settings()).await;
            let seller = world.user("seller").await;
            let open = |base: &str| {
                let url = format!("{base}/api/v1/notifications/stream");
                let token = seller.token.clone();
                async move {
                    connect(
                        http,
                        &url,
                        Open {
                            token: Some(&token),
                            ..Open::default()
                        },
                    )
                    .await
                    .expect("a stream")
                }
            };
            let mut on_a = open(&a.base).await;
            let mut on_b = open(&b.base).await;

            // The replicas compete for events: publish until each has
            // handled some.
            let mut published = HashSet::new();
            let handled = |base: String| async move {
                bazaar_testkit::scrape(http, &base)
                    .await
                    .sum("notifications_created_total", &[("kind", "stock_low")])
            };
            let started = Instant::now();
            loop {
                for _ in 0..10 {
                    let product = Uuid::now_v7();
                    world
                        .bus
                        .publish(&stock_low(product, seller.uuid(), 1))
                        .await;
                    published.insert(format!("/products/{product}"));
                }
                wait_for(http, &a.base, &seller, "the batch", PATIENCE, |i| {
                    i.len() == published.len()
                })
                .await;
                let (by_a, by_b) = (handled(a.base.clone()).await, handled(b.base.clone()).await);
                if by_a > 0.0 && by_b > 0.0 {
                    break;
                }
                assert!(
                    started.elapsed() < PATIENCE,
                    "{name}: one replica handled everything ({by_a} / {by_b})"
                );
            }

            // Each client got every notification, whoever handled it.
            for (replica, sse) in [("a", &mut on_a), ("b", &mut on_b)] {
                let mut got = HashSet::new();
                while got.len() < published.len() {
                    let event = sse.event(PATIENCE).await.unwrap_or_else(|| {
                        panic!(
                            "{name}: the client on {replica} got {} of {}",
                            got.len(),
                            published.len()
                        )
                    });
                    let link = event.json()["link"].as_str().unwrap().to_owned();
                    assert!(got.insert(link), "{name}: twice on {replica}");
                }
                assert_eq!(got, published, "{name}: on {replica}");
            }
            drop((on_a, on_b));
            a.stop().await;
            b.stop().await;
        }
    }
}

/// The gateway proxies the stream as it comes, for longer than its 10 s
/// deadline for a call (which only bounds waiting for the answer's head),
/// and lets `?access_token=` through to notifications, which checks it.
#[tokio::test]
async fn streams_pass_through_the_gateway_for_as_long_as_they_last() {
    let world = World::new(Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world
        .start_with(
            "notifications-0",
            Settings {
                keep_alive: Duration::from_secs(1),
                ..settings()
            },
        )
        .await;
    let mut config = bazaar_testkit::config("gateway", world.dir.path(), &Engine::Sqlite);
    bazaar_testkit::upstream(&mut config, "identity", &world.identity);
    bazaar_testkit::upstream(&mut config, "notifications", &app);
    let gateway = bazaar_testkit::start::<bazaar_gateway::Gateway>(config).await;
    let http = &world.http;
    let seller = world.user("seller").await;
    let url = gateway.url("/api/v1/notifications/stream");

    let mut sse = connect(
        http,
        &url,
        Open {
            token: Some(&seller.token),
            ..Open::default()
        },
    )
    .await
    .expect("a stream through the gateway");
    let started = Instant::now();
    let mut keep_alives = 0;
    while started.elapsed() < Duration::from_secs(11) {
        let frame = sse
            .frame(Duration::from_secs(3))
            .await
            .expect("the stream stalled or was cut");
        if frame.comments == [""] {
            keep_alives += 1;
        }
    }
    assert!(keep_alives >= 8, "{keep_alives} keep-alives in 11 s");
    let product = Uuid::now_v7();
    world
        .bus
        .publish(&stock_low(product, seller.uuid(), 2))
        .await;
    let event = sse
        .event(PATIENCE)
        .await
        .expect("a notification after 11 s");
    assert_eq!(event.json()["link"], format!("/products/{product}"));
    drop(sse);

    // EventSource's way: the token in the query passes the edge (which
    // checks only headers) and notifications checks it.
    let mut sse = connect(
        http,
        &url,
        Open {
            query_token: Some(&seller.token),
            ..Open::default()
        },
    )
    .await
    .expect("?access_token= through the gateway");
    let product = Uuid::now_v7();
    world
        .bus
        .publish(&stock_low(product, seller.uuid(), 1))
        .await;
    let event = sse.event(PATIENCE).await.expect("a notification");
    assert_eq!(event.json()["link"], format!("/products/{product}"));
    drop(sse);
    let res = connect(
        http,
        &url,
        Open {
            query_token: Some("forged"),
            ..Open::default()
        },
    )
    .await
    .err()
    .expect("a forged query token is refused");
    problem(res, 401).await;
    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn live_streams_are_capped_per_user_and_a_closed_one_frees_its_place() {
    let world = World::new(Engine::Sqlite, BrokerKind::Embedded).await;
    let app = world
        .start_with(
            "notifications-0",
            Settings {
                max_streams_per_user: 2,
                max_streams: 3,
                // Frequent writes, so a closed connection is noticed soon.
                keep_alive: Duration::from_millis(100),
                ..settings()
            },
        )
        .await;
    let http = &world.http;
    let url = &app.url("/api/v1/notifications/stream");
    let (ann, bob, cy) = (
        world.user("customer").await,
        world.user("customer").await,
        world.user("customer").await,
    );
    let open = |token: &str| {
        let token = token.to_owned();
        async move {
            connect(
                http,
                url,
                Open {
                    token: Some(&token),
                    ..Open::default()
                },
            )
            .await
        }
    };
    let first = open(&ann.token).await.expect("ann's first stream");
    let _second = open(&ann.token).await.expect("ann's second stream");
    let refused = open(&ann.token).await.err().expect("ann's third: 429");
    let p = problem(refused, 429).await;
    assert!(p.detail.contains("2 live streams"), "{}", p.detail);
    // Others are not held to ann's count, but to the process's.
    let _bob = open(&bob.token).await.expect("bob's stream");
    let full = open(&cy.token)
        .await
        .err()
        .expect("the process is full: 503");
    problem(full, 503).await;

    // A stream that ends gives its place back.
    drop(first);
    let started = Instant::now();
    while open(&ann.token).await.is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "ann's closed stream still holds its place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
