//! The failure-rate knob: a processor that always fails makes every call
//! ABORTED and leaves nothing behind; the same call later succeeds.

use bazaar_proto::payments::v1 as pb;
use bazaar_proto::payments::v1::payments_client::PaymentsClient;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::{APPROVED, Broken, apps, counted_at, of_order, request, state};

fn order_ref(order: Uuid) -> pb::OrderRef {
    pb::OrderRef {
        order_id: order.to_string(),
    }
}

async fn expect_unavailable<T: std::fmt::Debug>(
    on: &str,
    what: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
) {
    let e = result.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{what} on {on}: {e:?}");
}

#[tokio::test]
async fn a_failure_rate_of_one_fails_every_call_and_records_nothing() {
    for app in apps().await {
        let on = app.on();
        // A replica on the same database whose processor always fails.
        let (broken, grpc) = app.replica::<Broken>().await;
        let mut grpc: PaymentsClient<Channel> = grpc;
        let user = Uuid::now_v7();

        let order = Uuid::now_v7();
        for _ in 0..3 {
            expect_unavailable(
                on,
                "authorize",
                grpc.authorize(request(order, user, 2000, APPROVED)).await,
            )
            .await;
        }
        assert_eq!(app.total("payments").await, 0, "{on}");
        assert_eq!(app.total("ledger").await, 0, "{on}");

        // Authorized by the healthy instance; the broken one can neither
        // capture nor void it, and the payment stays as it was.
        let held = Uuid::now_v7();
        app.authorize(held, user, 2000, APPROVED).await.unwrap();
        expect_unavailable(on, "capture", grpc.capture(order_ref(held)).await).await;
        expect_unavailable(on, "void", grpc.void(order_ref(held)).await).await;
        assert_eq!(app.ledger(held).await, ["authorize"], "{on}");
        let captured = app.capture(held).await.unwrap();
        assert_eq!(state(&captured), pb::PaymentState::Captured);
        expect_unavailable(on, "refund", grpc.refund(order_ref(held)).await).await;
        assert_eq!(app.ledger(held).await, ["authorize", "capture"], "{on}");

        // Replays are answered from the ledger, without the processor.
        let replay = grpc.capture(order_ref(held)).await.unwrap().into_inner();
        assert_eq!(replay, captured, "{on}");

        // What failed can be done again once the processor is back.
        let p = app.authorize(order, user, 2000, APPROVED).await.unwrap();
        assert_eq!(state(&p), pb::PaymentState::Authorized, "{on}");

        let events = app.published().await;
        assert_eq!(
            of_order(&events, held)
                .into_iter()
                .map(|(topic, _)| topic)
                .collect::<Vec<_>>(),
            ["payments.payment.authorized", "payments.payment.captured"],
            "{on}"
        );
        assert_eq!(of_order(&events, order).len(), 1, "{on}");

        assert_eq!(
            counted_at(&app.http, &broken.base, "authorize", "unavailable").await,
            3.0,
            "{on}"
        );
        assert_eq!(
            counted_at(&app.http, &broken.base, "capture", "repeated").await,
            1.0,
            "{on}"
        );
        broken.stop().await;
        app.stop().await;
    }
}
