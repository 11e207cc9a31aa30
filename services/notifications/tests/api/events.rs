//! What each event makes, once: the welcome, orders, low stock and new
//! products for followers, whatever order the events come in and however
//! often they are delivered.

use std::time::Duration;

use bazaar_testkit::{PATIENCE, engines};
use uuid::Uuid;

use crate::support::{
    BrokerKind, World, all, brokers, cancelled, confirmed, followed, of_kind, product_created,
    registered, stock_low, unfollowed, wait_for,
};

#[tokio::test]
async fn each_event_makes_its_notification() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let ann = world.user("customer").await;
        let seller = world.user("seller").await;
        let (order, other_order, product) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        world.bus.publish(&registered(&ann, "Ann")).await;
        world.bus.publish(&confirmed(order, ann.uuid())).await;
        world
            .bus
            .publish(&cancelled(
                other_order,
                ann.uuid(),
                "The card was declined.",
            ))
            .await;
        world
            .bus
            .publish(&product_created(product, seller.uuid(), "Copper kettle"))
            .await;
        world
            .bus
            .publish(&stock_low(product, seller.uuid(), 3))
            .await;

        let mine = wait_for(http, &app.base, &ann, "ann's three", PATIENCE, |i| {
            i.len() == 3
        })
        .await;
        let welcome = of_kind(&mine, "welcome");
        assert_eq!(welcome.len(), 1, "{}: {mine:?}", world.name());
        assert_eq!(welcome[0]["title"], "Welcome to Bazaar, Ann");
        assert_eq!(welcome[0]["link"], "/");
        let ok = of_kind(&mine, "order_confirmed");
        assert_eq!(ok[0]["link"], format!("/orders/{order}"));
        let no = of_kind(&mine, "order_cancelled");
        assert_eq!(no[0]["link"], format!("/orders/{other_order}"));
        assert!(
            no[0]["body"]
                .as_str()
                .unwrap()
                .ends_with("The card was declined."),
            "{}",
            no[0]
        );

        let theirs = wait_for(http, &app.base, &seller, "the warning", PATIENCE, |i| {
            !i.is_empty()
        })
        .await;
        assert_eq!(
            theirs.len(),
            1,
            "no follower, so only the warning: {theirs:?}"
        );
        assert_eq!(theirs[0]["kind"], "stock_low");
        assert_eq!(
            theirs[0]["body"],
            "Only 3 units of Copper kettle left for new orders."
        );
        assert_eq!(theirs[0]["link"], format!("/products/{product}"));
        app.stop().await;
    }
}

/// The inbox drops a redelivered event; `UNIQUE (source_event_id,
/// user_id)` would too. Either way: one notification, one e-mail.
#[tokio::test]
async fn one_notification_per_event_even_when_delivered_three_times() {
    for engine in engines() {
        for broker in brokers() {
            let world = World::new(engine.clone(), broker).await;
            let app = world.start().await;
            let http = &world.http;
            let ann = world.user("customer").await;
            let seller = world.user("seller").await;
            let events = [
                registered(&ann, "Ann"),
                confirmed(Uuid::now_v7(), ann.uuid()),
                cancelled(Uuid::now_v7(), ann.uuid(), "Out of stock."),
                stock_low(Uuid::now_v7(), seller.uuid(), 1),
            ];
            for _ in 0..3 {
                for event in &events {
                    world.bus.publish(event).await;
                }
            }
            // Markers, one per topic, published after every copy: once
            // they are all there, every copy before them has been handled
            // (each topic is delivered in order, by either broker).
            let marker = world.user("customer").await;
            for event in [
                registered(&marker, "Marker"),
                confirmed(Uuid::now_v7(), marker.uuid()),
                cancelled(Uuid::now_v7(), marker.uuid(), "Marker."),
                stock_low(Uuid::now_v7(), marker.uuid(), 0),
            ] {
                world.bus.publish(&event).await;
            }
            wait_for(http, &app.base, &marker, "the markers", PATIENCE, |i| {
                i.len() == 4
            })
            .await;
            let name = world.name();
            let mine = all(http, &app.base, &ann).await;
            assert_eq!(mine.len(), 3, "{name}: {mine:#?}");
            for kind in ["welcome", "order_confirmed", "order_cancelled"] {
                assert_eq!(of_kind(&mine, kind).len(), 1, "{name}: {kind}");
            }
            let theirs = all(http, &app.base, &seller).await;
            assert_eq!(theirs.len(), 1, "{name}: {theirs:#?}");

            // One e-mail per order: four files (two of them the markers'),
            // whatever was redelivered; the worker has sent them all once
            // the markers' are there.
            let dir = world.mail_dir();
            bazaar_testkit::eventually("the four e-mails", || async { eml_files(&dir).len() >= 4 })
                .await;
            assert_eq!(eml_files(&dir).len(), 4, "{name}");
            app.stop().await;
        }
    }
}

/// The `.eml` files in `dir`.
pub fn eml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn followers_hear_of_new_products() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let seller = world.user("seller").await;
        let fan = world.user("customer").await;
        let stranger = world.user("customer").await;
        world.bus.publish(&registered(&seller, "Tea House")).await;
        world
            .bus
            .publish(&followed(fan.uuid(), seller.uuid()))
            .await;
        // Following oneself notifies nobody.
        world
            .bus
            .publish(&followed(seller.uuid(), seller.uuid()))
            .await;
        let kettle = Uuid::now_v7();
        world
            .bus
            .publish(&product_created(kettle, seller.uuid(), "Copper kettle"))
            .await;
        let news = wait_for(http, &app.base, &fan, "the kettle", PATIENCE, |i| {
            !i.is_empty()
        })
        .await;
        assert_eq!(news.len(), 1, "{}: {news:?}", world.name());
        assert_eq!(news[0]["kind"], "new_product");
        assert_eq!(news[0]["title"], "New from Tea House");
        assert_eq!(news[0]["body"], "Copper kettle is on sale for 29.99 EUR.");
        assert_eq!(news[0]["link"], format!("/products/{kettle}"));

        // After an unfollow, nothing more.
        world
            .bus
            .publish(&unfollowed(fan.uuid(), seller.uuid()))
            .await;
        world
            .bus
            .publish(&product_created(Uuid::now_v7(), seller.uuid(), "Teapot"))
            .await;
        // A marker after it, to the stranger: once handled, so is the teapot.
        let marker = Uuid::now_v7();
        world
            .bus
            .publish(&stock_low(marker, stranger.uuid(), 1))
            .await;
        wait_for(http, &app.base, &stranger, "the marker", PATIENCE, |i| {
            !i.is_empty()
        })
        .await;
        assert_eq!(
            all(http, &app.base, &fan).await.len(),
            1,
            "{}",
            world.name()
        );
        assert_eq!(
            of_kind(&all(http, &app.base, &stranger).await, "new_product").len(),
            0
        );
        assert_eq!(
            of_kind(&all(http, &app.base, &seller).await, "new_product").len(),
            0
        );
        app.stop().await;
    }
}

/// Identity's and catalog's events come through different relays: a follow
/// can be handled after a product it predates. The follower still hears of
/// it, once; and an old follow delivered after a newer unfollow changes
/// nothing.
#[tokio::test]
async fn follows_do_not_depend_on_the_order_events_arrive_in() {
    for engine in engines() {
        let world = World::new(engine, BrokerKind::Embedded).await;
        let app = world.start().await;
        let http = &world.http;
        let seller = world.user("seller").await;
        let fan = world.user("customer").await;
        let late = world.user("customer").await;

        // Made in this order (a few milliseconds apart: events' times are
        // compared in milliseconds), delivered product first.
        let follow = followed(fan.uuid(), seller.uuid());
        let old_follow = followed(late.uuid(), seller.uuid());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let unfollow = unfollowed(late.uuid(), seller.uuid());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mug = Uuid::now_v7();
        let created = product_created(mug, seller.uuid(), "Mug");
        world.bus.publish(&created).await;
        world.bus.publish(&follow).await;
        // Redelivered in the other order too.
        world.bus.publish(&created).await;
        world.bus.publish(&follow).await;
        // late: unfollowed after following, but the follow arrives last.
        world.bus.publish(&unfollow).await;
        world.bus.publish(&old_follow).await;

        let news = wait_for(http, &app.base, &fan, "the mug", PATIENCE, |i| {
            !i.is_empty()
        })
        .await;
        let marker = Uuid::now_v7();
        world.bus.publish(&stock_low(marker, fan.uuid(), 1)).await;
        wait_for(http, &app.base, &fan, "the marker", PATIENCE, |i| {
            i.len() == 2
        })
        .await;
        assert_eq!(
            news[0]["link"],
            format!("/products/{mug}"),
            "{}",
            world.name()
        );
        let fans = all(http, &app.base, &fan).await;
        assert_eq!(of_kind(&fans, "new_product").len(), 1, "{fans:#?}");

        // The stale follow did not come back: a new product reaches no one
        // but fan.
        let cup = Uuid::now_v7();
        world
            .bus
            .publish(&product_created(cup, seller.uuid(), "Cup"))
            .await;
        wait_for(http, &app.base, &fan, "the cup", PATIENCE, |i| i.len() == 3).await;
        assert!(
            of_kind(&all(http, &app.base, &late).await, "new_product").is_empty(),
            "{}",
            world.name()
        );
        app.stop().await;
    }
}
