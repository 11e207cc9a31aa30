//! `bazaar.cart.v1.Cart` against a running service, on every backend: what
//! orders reads and clears.

use tonic::Code;
use uuid::Uuid;

use crate::support::{apps, pairs};

#[tokio::test]
async fn get_cart_answers_the_users_cart_in_order() {
    for app in apps().await {
        let user = app.user().await;
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        app.add(&user, b, 3).await;
        app.add(&user, a, 1).await;
        let cart = app.get_cart(&user.id).await.unwrap();
        assert_eq!(cart.user_id, user.id);
        assert_eq!(pairs(&cart.items), vec![(b, 3), (a, 1)], "on {}", app.on);

        let nobody = Uuid::now_v7().to_string();
        let empty = app.get_cart(&nobody).await.unwrap();
        assert_eq!(empty.user_id, nobody);
        assert!(empty.items.is_empty());

        for bad in ["", "not-a-uuid"] {
            let status = app.get_cart(bad).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn clear_cart_empties_it_and_is_idempotent() {
    for app in apps().await {
        let (user, other) = (app.user().await, app.user().await);
        app.add(&user, Uuid::now_v7(), 1).await;
        app.add(&user, Uuid::now_v7(), 2).await;
        let kept = Uuid::now_v7();
        app.add(&other, kept, 4).await;

        app.clear_cart(&user.id, &[]).await.unwrap();
        assert_eq!(app.items(&user).await, vec![], "on {}", app.on);
        app.clear_cart(&user.id, &[]).await.unwrap();
        app.clear_cart(&Uuid::now_v7().to_string(), &[])
            .await
            .unwrap();
        assert_eq!(
            app.items(&other).await,
            vec![(kept, 4)],
            "others' carts stay"
        );

        let status = app.clear_cart("nope", &[]).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        app.stop().await;
    }
}

#[tokio::test]
async fn clear_cart_with_only_items_keeps_what_changed_meanwhile() {
    for app in apps().await {
        let user = app.user().await;
        let [a, b, c, d] = [(); 4].map(|()| Uuid::now_v7());
        app.add(&user, a, 2).await;
        app.add(&user, b, 1).await;
        app.add(&user, c, 3).await;
        // The order read a=2, b=1, c=3; then the customer raised b and
        // added d while the order ran.
        app.add(&user, b, 4).await;
        app.add(&user, d, 1).await;
        let (a_id, b_id, c_id) = (a.to_string(), b.to_string(), c.to_string());
        app.clear_cart(&user.id, &[(&a_id, 2), (&b_id, 1), (&c_id, 3)])
            .await
            .unwrap();
        assert_eq!(
            app.items(&user).await,
            vec![(b, 4), (d, 1)],
            "on {}",
            app.on
        );
        // Again: nothing more goes.
        app.clear_cart(&user.id, &[(&a_id, 2), (&b_id, 1), (&c_id, 3)])
            .await
            .unwrap();
        assert_eq!(app.items(&user).await, vec![(b, 4), (d, 1)]);

        // Bad items are refused whole: nothing is removed.
        let d_id = d.to_string();
        for bad in [
            vec![(d_id.as_str(), 1), ("not-a-uuid", 1)],
            vec![(d_id.as_str(), 0)],
            vec![(d_id.as_str(), 100)],
        ] {
            let status = app.clear_cart(&user.id, &bad).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        }
        assert_eq!(
            app.items(&user).await,
            vec![(b, 4), (d, 1)],
            "on {}",
            app.on
        );
        app.stop().await;
    }
}
