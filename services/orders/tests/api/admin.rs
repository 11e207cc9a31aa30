//! What an admin may read: every user's orders (`?all=true`), newest
//! first and paginated, with their timelines, and any order by id. Nobody
//! else may ask for `all`.

use serde_json::Value;
use uuid::Uuid;

use crate::support::{GOOD_CARD, fleet, order, steps};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn an_admin_lists_every_users_orders_newest_first_with_their_timelines() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 10).await;
        let body = order(Some(&[(teapot, 1)]), GOOD_CARD);
        let (ann, bo) = (fleet.customer().await, fleet.customer().await);
        let admin = fleet.admin().await;
        let mut placed = Vec::new();
        for buyer in [&ann, &bo, &ann] {
            let accepted = fleet.accepted(buyer, &body).await;
            placed.push(accepted["id"].as_str().expect("id").to_owned());
        }
        for (buyer, id) in [(&ann, &placed[0]), (&bo, &placed[1]), (&ann, &placed[2])] {
            fleet.settled(buyer, id).await;
        }
        let newest_first: Vec<String> = placed.iter().rev().cloned().collect();

        let first = fleet.list(&admin, "?all=true&limit=2").await;
        assert_eq!(first["total"], 3, "{first} on {}", fleet.on());
        assert_eq!(
            (first["page"].as_i64(), first["limit"].as_i64()),
            (Some(1), Some(2))
        );
        let second = fleet.list(&admin, "?all=true&limit=2&page=2").await;
        assert_eq!(
            [ids(&first), ids(&second)].concat(),
            newest_first,
            "on {}",
            fleet.on()
        );
        for item in first["items"].as_array().expect("items") {
            assert_eq!(item["status"], "confirmed", "{item}");
            assert!(steps(item).contains(&"confirmed".to_owned()), "{item}");
            assert!(
                item["user_id"].is_string() && item["total"].is_object(),
                "{item}"
            );
        }
        assert_eq!(first["items"][0]["user_id"].as_str(), Some(ann.id.as_str()));
        assert_eq!(first["items"][1]["user_id"].as_str(), Some(bo.id.as_str()));

        // Without all=true an admin lists their own orders, like anyone.
        assert_eq!(fleet.list(&admin, "").await["total"], 0);
        assert_eq!(fleet.list(&admin, "?all=false").await["total"], 0);
        let anns = fleet.list(&ann, "").await;
        assert_eq!(anns["total"], 2);
        assert!(
            anns["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|o| o["user_id"].as_str() == Some(ann.id.as_str()))
        );
        let bad = bazaar_testkit::problem(fleet.list_raw(&admin, "?all=yes").await, 422).await;
        assert_eq!(bad.errors[0].field, "all");
        fleet.stop().await;
    }
}

#[tokio::test]
async fn only_admins_may_list_all_and_read_others_orders() {
    for engine in bazaar_testkit::engines() {
        let fleet = fleet(engine).await;
        let teapot = fleet.product("Teapot", 1250, 10).await;
        let (ann, bo) = (fleet.customer().await, fleet.customer().await);
        let admin = fleet.admin().await;
        let anns = fleet
            .accepted(&ann, &order(Some(&[(teapot, 1)]), GOOD_CARD))
            .await;
        let id = anns["id"].as_str().expect("id");

        for who in [&ann, &bo, &fleet.seller] {
            let problem =
                bazaar_testkit::problem(fleet.list_raw(who, "?all=true").await, 403).await;
            assert_eq!(problem.kind, "urn:bazaar:problem:admin-only", "{problem:?}");
        }
        // Someone else's order is still 404 to anyone but an admin.
        bazaar_testkit::problem(fleet.get(&bo, id).await, 404).await;
        let seen = fleet.order(&admin, id).await;
        assert_eq!(seen["id"], id);
        assert_eq!(seen["user_id"].as_str(), Some(ann.id.as_str()));
        assert!(!steps(&seen).is_empty());
        bazaar_testkit::problem(fleet.get(&admin, &Uuid::now_v7().to_string()).await, 404).await;
        fleet.stop().await;
    }
}
