//! Reserve, Commit and Release over gRPC: all or nothing, idempotent by
//! order id, never overselling however many ask at once, expiring.

use std::time::Duration;

use bazaar_proto::inventory::v1 as pb;
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

use crate::support::{Standard, Tuned, apps, apps_of, apps_on_manual_clocks};

fn state(r: &pb::Reservation) -> pb::ReservationState {
    pb::ReservationState::try_from(r.state).expect("a known state")
}

#[tokio::test]
async fn reserve_is_all_or_nothing_and_says_what_is_short() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let plenty = app.product(&seller, 5).await;
        let scarce = app.product(&seller, 1).await;

        let status = app
            .reserve(Uuid::now_v7(), &[(plenty, 2), (scarce, 2)])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains(&scarce.to_string()), "{status:?}");
        let failure = pb::ReserveFailure::decode(status.details()).expect("details");
        assert_eq!(failure.reason(), pb::reserve_failure::Reason::OutOfStock);
        assert_eq!(
            failure.products,
            vec![pb::Shortage {
                product_id: scarce.to_string(),
                requested: 2,
                available: 1
            }]
        );
        assert_eq!(
            app.stock(plenty).await,
            (5, 0),
            "nothing held on {}",
            app.on()
        );
        assert_eq!(app.stock(scarce).await, (1, 0));

        let unknown = Uuid::now_v7();
        let status = app
            .reserve(Uuid::now_v7(), &[(plenty, 1), (unknown, 1)])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let failure = pb::ReserveFailure::decode(status.details()).expect("details");
        assert_eq!(
            failure.reason(),
            pb::reserve_failure::Reason::UnknownProduct
        );
        assert_eq!(failure.products[0].product_id, unknown.to_string());
        assert_eq!(app.stock(plenty).await, (5, 0));
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_calls_are_invalid_arguments() {
    for app in apps().await {
        let product = Uuid::now_v7();
        let cases = [
            app.reserve(Uuid::now_v7(), &[]).await,
            app.reserve(Uuid::now_v7(), &[(product, 0)]).await,
            app.reserve(Uuid::now_v7(), &[(product, -2)]).await,
        ];
        for case in cases {
            assert_eq!(case.unwrap_err().code(), Code::InvalidArgument);
        }
        let status = app
            .grpc
            .clone()
            .commit(pb::CommitRequest {
                order_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            app.commit(Uuid::now_v7()).await.unwrap_err().code(),
            Code::NotFound
        );
        assert_eq!(
            app.release(Uuid::now_v7()).await.unwrap_err().code(),
            Code::NotFound
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn reserve_then_commit_takes_stock_once() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let a = app.product(&seller, 20).await;
        let b = app.product(&seller, 20).await;
        let order = Uuid::now_v7();

        // The same product twice counts as the sum.
        let first = app.reserve(order, &[(b, 1), (a, 2), (b, 2)]).await.unwrap();
        assert_eq!(state(&first), pb::ReservationState::Reserved);
        assert_eq!(first.items.len(), 2);
        assert_eq!(app.stock(a).await, (18, 2), "{}", app.on());
        assert_eq!(app.stock(b).await, (17, 3));

        // Repeated: the first answer, nothing held twice.
        let again = app.reserve(order, &[(a, 2), (b, 3)]).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(app.stock(a).await, (18, 2));
        let other = app.reserve(order, &[(a, 1)]).await.unwrap_err();
        assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");

        let committed = app.commit(order).await.unwrap();
        assert_eq!(state(&committed), pb::ReservationState::Committed);
        assert_eq!(app.stock(a).await, (18, 0), "units left on_hand");
        assert_eq!(app.stock(b).await, (17, 0));
        let again = app.commit(order).await.unwrap();
        assert_eq!(state(&again), pb::ReservationState::Committed);
        assert_eq!(
            app.stock(a).await,
            (18, 0),
            "a repeated commit takes nothing"
        );
        let reserved_again = app.reserve(order, &[(a, 2), (b, 3)]).await.unwrap();
        assert_eq!(state(&reserved_again), pb::ReservationState::Committed);

        let status = app.release(order).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(app.stock(a).await, (18, 0));
        app.stop().await;
    }
}

#[tokio::test]
async fn release_gives_units_back_once() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 6).await;
        let order = Uuid::now_v7();
        app.reserve(order, &[(product, 4)]).await.unwrap();
        assert_eq!(app.stock(product).await, (2, 4));

        let released = app.release(order).await.unwrap();
        assert_eq!(state(&released), pb::ReservationState::Released);
        assert_eq!(app.stock(product).await, (6, 0), "{}", app.on());
        let again = app.release(order).await.unwrap();
        assert_eq!(state(&again), pb::ReservationState::Released);
        assert_eq!(
            app.stock(product).await,
            (6, 0),
            "a repeated release gives nothing"
        );

        let status = app.commit(order).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let status = app.reserve(order, &[(product, 4)]).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(app.stock(product).await, (6, 0));
        app.stop().await;
    }
}

/// The point of the conditional UPDATE: 50 orders race for 10 units.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_reservations_never_oversell() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 10).await;
        let calls = (0..50).map(|_| {
            let mut grpc = app.grpc.clone();
            let request = pb::ReserveRequest {
                order_id: Uuid::now_v7().to_string(),
                items: vec![pb::Item {
                    product_id: product.to_string(),
                    quantity: 1,
                }],
            };
            tokio::spawn(
                async move { grpc.reserve(request).await.map(tonic::Response::into_inner) },
            )
        });
        let results = futures_util::future::join_all(calls).await;
        let mut granted = 0;
        for result in results {
            let result = result.expect("the call's task");
            match result {
                Ok(r) => {
                    assert_eq!(state(&r), pb::ReservationState::Reserved);
                    granted += 1;
                }
                Err(status) => {
                    assert_eq!(
                        status.code(),
                        Code::FailedPrecondition,
                        "{status:?} on {}",
                        app.on()
                    );
                }
            }
        }
        assert_eq!(granted, 10, "exactly the units there were, on {}", app.on());
        assert_eq!(app.stock(product).await, (0, 10), "{}", app.on());
        assert_eq!(app.reservations_counted("reserved").await, 10);
        assert_eq!(app.reservations_counted("out_of_stock").await, 40);
        app.stop().await;
    }
}

#[tokio::test]
async fn forgotten_reservations_expire() {
    // Held for 1 s; the sweeper runs every 250 ms.
    for app in apps_of::<Tuned<1000>>().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 10).await;
        let swept = Uuid::now_v7();
        let late = Uuid::now_v7();
        let held = app.reserve(swept, &[(product, 3)]).await.unwrap();
        assert!(held.expires_at_ms > 0);
        app.reserve(late, &[(product, 2)]).await.unwrap();
        assert_eq!(app.stock(product).await, (5, 5));
        app.eventually("reservations expired", || async {
            app.stock(product).await == (10, 0)
        })
        .await;

        let status = app.commit(late).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let expired = app.release(swept).await.unwrap();
        assert_eq!(state(&expired), pb::ReservationState::Expired);
        assert_eq!(app.stock(product).await, (10, 0), "{}", app.on());
        app.stop().await;
    }
}

#[tokio::test]
async fn committing_after_expiry_is_refused_even_before_the_sweeper() {
    // Held 10 minutes, swept every 30 s of real time: moving inventory's
    // clock past the expiry and committing at once is surely before the
    // sweeper; the commit is refused and the units are back.
    for app in apps_on_manual_clocks::<Standard>().await {
        let seller = app.user("seller").await;
        let product = app.product(&seller, 4).await;
        let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
        app.reserve(early, &[(product, 2)]).await.unwrap();
        app.reserve(late, &[(product, 2)]).await.unwrap();
        app.config.clock.advance(Duration::from_secs(599));
        app.commit(early)
            .await
            .expect("held until the tenth minute");
        app.config.clock.advance(Duration::from_secs(1));
        let status = app.commit(late).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(app.stock(product).await, (2, 0), "{}", app.on());
        app.stop().await;
    }
}
