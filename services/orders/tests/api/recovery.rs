//! Sagas survive a crash of orders, and none outlives its deadline before
//! the pivot.

use bazaar_bus::Event as _;
use bazaar_events::orders::OrderConfirmed;

use crate::support::{
    GOOD_CARD, Orders, Payments, QUICK, SHORT_DEADLINE, Up, fleet_with, order, steps,
};

#[tokio::test]
async fn a_saga_cut_off_by_a_crash_is_finished_by_the_next_orders() {
    for engine in bazaar_testkit::engines() {
        // Each processor call takes 1.5 s: time to crash orders mid-Authorize.
        let mut fleet = fleet_with::<Orders<QUICK>, Payments<1500>>(engine, Up::Yes, Up::Yes).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 2)]), GOOD_CARD))
            .await;
        let id = accepted["id"].as_str().expect("id").to_owned();
        let cut = fleet.reached(&buyer, &id, "reserved").await;
        assert_eq!(cut["status"], "pending");

        fleet.crash_orders();
        fleet.start_orders::<Orders<QUICK>>().await;

        let done = fleet.settled(&buyer, &id).await;
        assert_eq!(done["status"], "confirmed", "on {}: {done}", fleet.on());
        assert_eq!(
            steps(&done),
            [
                "accepted",
                "priced",
                "reserved",
                "authorized",
                "committed",
                "captured",
                "confirmed"
            ]
        );
        // The new process finished it (the crashed one's tasks died with it).
        assert_eq!(fleet.sagas_counted("confirmed").await, 1.0);
        let payments = fleet.payments_of(&buyer, &id).await;
        assert_eq!(payments.len(), 1, "charged once: {payments:?}");
        assert_eq!(payments[0]["status"], "captured");
        assert_eq!(fleet.stock(teapot).await, Some((3, 0)), "committed once");

        let later = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 1)]), GOOD_CARD))
            .await;
        let later_id = later["id"].as_str().expect("id").to_owned();
        let seen = fleet
            .events(OrderConfirmed::TOPIC, |seen| {
                seen.iter()
                    .any(|e| e.subject.as_deref() == Some(later_id.as_str()))
            })
            .await;
        let ours = seen
            .iter()
            .filter(|e| e.subject.as_deref() == Some(id.as_str()))
            .count();
        assert_eq!(ours, 1, "one confirmed event after the restart");
        fleet.stop().await;
    }
}

#[tokio::test]
async fn an_order_past_its_deadline_is_compensated_and_cancelled() {
    for engine in bazaar_testkit::engines() {
        // Payments is not running: Authorize is tried until the 1 s deadline.
        let fleet =
            fleet_with::<Orders<SHORT_DEADLINE>, Payments<0>>(engine, Up::No, Up::Yes).await;
        let teapot = fleet.product("Teapot", 1250, 5).await;
        let buyer = fleet.customer().await;
        let accepted = fleet
            .accepted(&buyer, &order(Some(&[(teapot, 2)]), GOOD_CARD))
            .await;
        let done = fleet
            .settled(&buyer, accepted["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["status"], "cancelled", "on {}: {done}", fleet.on());
        assert_eq!(done["cancel_code"], "timed_out");
        let steps = steps(&done);
        assert!(steps.iter().any(|s| s == "retrying"), "{steps:?}");
        // No Authorize ever reached payments: nothing to void, the stock is released.
        assert_eq!(
            steps[steps.len() - 4..],
            ["cancelling", "releasing", "released", "cancelled"]
        );
        assert_eq!(fleet.stock(teapot).await, Some((5, 0)));
        assert_eq!(fleet.sagas_counted("timed_out").await, 1.0);
        fleet.stop().await;
    }
}
