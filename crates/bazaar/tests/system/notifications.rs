//! Notifications through the gateway, as a shopper and a seller's follower
//! see them: a checkout puts the order in the shopper's feed, on their live
//! stream and in an e-mail (an `.eml` file in the fleet's data dir, without
//! SMTP); a followed seller's new product reaches the follower.

use bazaar_testkit::{Open, Sse};
use reqwest::Method;
use serde_json::Value;

use crate::api::{Api, CARD_DECLINED, CARD_OK, User, order_body};
use crate::harness::{EVENTUALLY, Fleet};

/// The notification of `user` linking to `link`, once there is one.
async fn notification(api: &Api<'_>, user: &User, kind: &str, link: &str) -> Value {
    api.until(&format!("a {kind} notification for {link}"), || async {
        let page = api.get("/api/v1/notifications?limit=100", Some(user)).await;
        page["items"]
            .as_array()?
            .iter()
            .find(|i| i["kind"] == kind && i["link"] == link)
            .cloned()
    })
    .await
}

/// The kinds of `user`'s notifications linking to `link`.
async fn kinds_linking(api: &Api<'_>, user: &User, link: &str) -> Vec<String> {
    let page = api.get("/api/v1/notifications?limit=100", Some(user)).await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["link"] == link)
        .map(|i| i["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_checkout_reaches_the_shoppers_feed_stream_and_mailbox() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let teapot = api.product(&seller, "Cast iron teapot", 2450, 10).await;
    let shopper = api.user("customer").await;

    // The welcome is there first (identity.user.registered).
    notification(&api, &shopper, "welcome", "/").await;

    // A browser's EventSource: the token in the query, through the gateway.
    // The fleet's client has a 10 s total timeout; a stream needs none.
    let streaming = reqwest::Client::new();
    let mut stream = Sse::open(
        &streaming,
        &format!("{}/api/v1/notifications/stream", fleet.base_url()),
        Open {
            query_token: Some(&shopper.token),
            ..Open::default()
        },
    )
    .await
    .unwrap_or_else(|res| panic!("{}: {}", res.status(), fleet.output()));

    let placed = api
        .place(&shopper, &order_body(Some(&[(&teapot, 2)]), CARD_OK))
        .await;
    let id = placed["id"].as_str().expect("order id").to_owned();
    let order = api.settled(&shopper, &id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let link = format!("/orders/{id}");

    // In the feed, once.
    let item = notification(&api, &shopper, "order_confirmed", &link).await;
    assert_eq!(item["title"], "Order confirmed");
    assert_eq!(item["read"], false);
    assert!(
        item["body"].as_str().unwrap().contains("Cast iron teapot"),
        "{item}"
    );
    assert_eq!(
        kinds_linking(&api, &shopper, &link).await,
        ["order_confirmed"]
    );

    // On the stream, as it happened.
    let mut seen = Vec::new();
    let arrived = tokio::time::timeout(EVENTUALLY, async {
        while let Some(frame) = stream.frame(EVENTUALLY).await {
            let done = frame.data.as_deref().is_some_and(|d| d.contains(&link));
            seen.push(frame);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        arrived,
        Ok(true),
        "the stream got: {seen:#?}\nfleet output:\n{}",
        fleet.output()
    );
    assert_eq!(seen[0].comments, ["connected"], "{seen:#?}");
    assert!(
        seen.iter().any(|f| f.id.as_deref() == item["id"].as_str()),
        "{seen:#?}"
    );
    drop(stream);

    // Read.
    let notification_id = item["id"].as_str().unwrap().to_owned();
    let response = api
        .send(
            Method::POST,
            &format!("/api/v1/notifications/{notification_id}/read"),
            Some(&shopper),
            None,
        )
        .await;
    api.expect(response, 204, "mark read").await;
    let response = api
        .send(
            Method::POST,
            &format!("/api/v1/notifications/{notification_id}/read"),
            Some(&seller),
            None,
        )
        .await;
    api.expect(response, 404, "someone else's").await;

    // Mailed: without SMTP, an .eml file under the fleet's data dir.
    let mail = fleet
        .data_dir()
        .join("notifications")
        .join("mail")
        .join(format!("{notification_id}.eml"));
    let eml = api
        .until(&format!("{} is written", mail.display()), || async {
            std::fs::read_to_string(&mail).ok()
        })
        .await;
    for needle in [
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain",
        "Content-Type: text/html",
        "@example.com",
        id.as_str(),
    ] {
        assert!(eml.contains(needle), "{needle} not in\n{eml}");
    }

    // A declined card: cancelled, with its notification and e-mail too.
    let placed = api
        .place(&shopper, &order_body(Some(&[(&teapot, 1)]), CARD_DECLINED))
        .await;
    let declined = placed["id"].as_str().expect("order id").to_owned();
    let order = api.settled(&shopper, &declined).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let item = notification(
        &api,
        &shopper,
        "order_cancelled",
        &format!("/orders/{declined}"),
    )
    .await;
    let mail = fleet
        .data_dir()
        .join("notifications")
        .join("mail")
        .join(format!("{}.eml", item["id"].as_str().unwrap()));
    api.until("the cancellation's e-mail", || async {
        std::fs::read_to_string(&mail)
            .ok()
            .filter(|eml| eml.contains(&declined))
    })
    .await;
}

#[tokio::test]
async fn a_followed_sellers_new_product_reaches_the_follower() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let fan = api.user("customer").await;
    let other_fan = api.user("customer").await;
    let stranger = api.user("customer").await;
    for user in [&fan, &other_fan] {
        let response = api
            .send(
                Method::PUT,
                &format!("/api/v1/users/{}/follow", seller.id),
                Some(user),
                None,
            )
            .await;
        api.expect(response, 204, "follow").await;
    }

    let kettle = api.product(&seller, "Copper kettle", 2999, 5).await;
    let link = format!("/products/{kettle}");
    let item = notification(&api, &fan, "new_product", &link).await;
    assert!(
        item["body"].as_str().unwrap().contains("Copper kettle"),
        "{item}"
    );
    notification(&api, &other_fan, "new_product", &link).await;
    assert!(kinds_linking(&api, &stranger, &link).await.is_empty());
    assert!(kinds_linking(&api, &seller, &link).await.is_empty());
}
