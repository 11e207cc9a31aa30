//! Following sellers.

use bazaar_events::identity::{SellerFollowed, SellerUnfollowed};
use reqwest::Method;

use crate::support::{apps, problem};

#[tokio::test]
async fn following_a_seller_is_idempotent_and_announced_once() {
    for app in apps().await {
        let (seller, _) = app.user("seller").await;
        let (fan, fan_tokens) = app.user("customer").await;
        let path = format!("/api/v1/users/{seller}/follow");
        let token = Some(fan_tokens.access_token.as_str());
        for _ in 0..2 {
            let res = app.call(Method::PUT, &path, token).await;
            assert_eq!(res.status(), 204, "follow on {}", app.on());
        }
        for _ in 0..2 {
            let res = app.call(Method::DELETE, &path, token).await;
            assert_eq!(res.status(), 204, "unfollow on {}", app.on());
        }
        let topics = ["identity.seller.followed", "identity.seller.unfollowed"];
        // A marker after them: once it is out, everything before it is.
        let (marker, _) = app.user("customer").await;
        let mut events = app
            .events(
                &[
                    "identity.seller.followed",
                    "identity.seller.unfollowed",
                    "identity.user.registered",
                ],
                |seen| {
                    seen.iter()
                        .any(|e| e.subject.as_deref() == Some(marker.as_str()))
                },
            )
            .await;
        events.retain(|e| topics.contains(&e.topic.as_str()));
        assert_eq!(events.len(), 2, "on {}: {events:#?}", app.on());
        let followed: SellerFollowed = events[0].decode().expect("followed");
        assert_eq!(followed.follower_id.to_string(), fan);
        assert_eq!(followed.seller_id.to_string(), seller);
        assert_eq!(events[0].subject.as_deref(), Some(seller.as_str()));
        let unfollowed: SellerUnfollowed = events[1].decode().expect("unfollowed");
        assert_eq!(unfollowed.follower_id, followed.follower_id);
        assert_eq!(unfollowed.seller_id, followed.seller_id);
    }
}

#[tokio::test]
async fn only_sellers_can_be_followed_and_not_oneself() {
    for app in apps().await {
        let (seller, seller_tokens) = app.user("seller").await;
        let (customer, customer_tokens) = app.user("customer").await;
        let token = Some(customer_tokens.access_token.as_str());
        for method in [Method::PUT, Method::DELETE] {
            for target in [
                uuid::Uuid::now_v7().to_string(),
                "not-a-uuid".to_owned(),
                customer.clone(),
            ] {
                let path = format!("/api/v1/users/{target}/follow");
                let status = if target == customer { 422 } else { 404 };
                problem(app.call(method.clone(), &path, token).await, status).await;
            }
            // A seller following themselves.
            let own = format!("/api/v1/users/{seller}/follow");
            let p = problem(
                app.call(method.clone(), &own, Some(&seller_tokens.access_token))
                    .await,
                422,
            )
            .await;
            assert_eq!(p.errors[0].field, "seller_id", "on {}", app.on());
            // Nobody signed in.
            problem(app.call(method.clone(), &own, None).await, 401).await;
        }
        // A customer cannot be followed, even by a seller.
        let path = format!("/api/v1/users/{customer}/follow");
        problem(
            app.call(Method::PUT, &path, Some(&seller_tokens.access_token))
                .await,
            404,
        )
        .await;
    }
}
