//! `payments.payment.*`: announced through the outbox with the documented
//! payload, subject the order id.

use bazaar_bus::Envelope;
use bazaar_events::payments::{
    PaymentAuthorized, PaymentCaptured, PaymentChanged, PaymentDeclined, PaymentRefunded,
    PaymentVoided,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{APPROVED, NO_FUNDS, apps};

fn find<'a>(events: &'a [Envelope], topic: &str, order: Uuid) -> &'a Envelope {
    let subject = order.to_string();
    let found: Vec<&Envelope> = events
        .iter()
        .filter(|e| e.topic == topic && e.subject.as_deref() == Some(subject.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "{topic} of {order}: {events:?}");
    found[0]
}

#[tokio::test]
async fn every_change_is_announced_with_its_payload() {
    for app in apps().await {
        let on = app.on();
        let user = Uuid::now_v7();
        let (paid, voided, declined) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let p = app.authorize(paid, user, 2999, APPROVED).await.unwrap();
        app.capture(paid).await.unwrap();
        app.refund(paid).await.unwrap();
        let v = app.authorize(voided, user, 1250, APPROVED).await.unwrap();
        app.void(voided).await.unwrap();
        let d = app.authorize(declined, user, 5000, NO_FUNDS).await.unwrap();

        let events = app.published().await;
        let payload = |id: &str, order: Uuid, amount: i64, status: &str| {
            json!({
                "payment_id": id,
                "order_id": order.to_string(),
                "user_id": user.to_string(),
                "amount": amount,
                "currency": "EUR",
                "status": status,
            })
        };
        for (topic, status) in [
            ("payments.payment.authorized", "authorized"),
            ("payments.payment.captured", "captured"),
            ("payments.payment.refunded", "refunded"),
        ] {
            let e = find(&events, topic, paid);
            assert_eq!(
                e.data,
                payload(&p.id, paid, 2999, status),
                "{topic} on {on}"
            );
            assert_eq!(e.source, "/bazaar/payments");
            assert_eq!(e.dataschema, format!("urn:bazaar:event:{topic}:v1"));
        }
        let e = find(&events, "payments.payment.voided", voided);
        assert_eq!(e.data, payload(&v.id, voided, 1250, "voided"), "{on}");
        let e = find(&events, "payments.payment.declined", declined);
        let mut expected = payload(&d.id, declined, 5000, "declined");
        expected["decline_reason"] = json!("insufficient_funds");
        assert_eq!(e.data, expected, "{on}");

        // And they decode as the contracts.
        let changed: PaymentChanged = find(&events, "payments.payment.declined", declined)
            .decode::<PaymentDeclined>()
            .unwrap()
            .0;
        assert_eq!(
            changed.decline_reason.as_deref(),
            Some("insufficient_funds")
        );
        find(&events, "payments.payment.authorized", paid)
            .decode::<PaymentAuthorized>()
            .unwrap();
        find(&events, "payments.payment.captured", paid)
            .decode::<PaymentCaptured>()
            .unwrap();
        find(&events, "payments.payment.refunded", paid)
            .decode::<PaymentRefunded>()
            .unwrap();
        find(&events, "payments.payment.voided", voided)
            .decode::<PaymentVoided>()
            .unwrap();
        // Nothing else was published.
        assert_eq!(events.len(), 6, "{on}: {events:?}");
        // Each carries the trace of the call that caused it.
        for e in &events {
            let traceparent = e.traceparent.as_deref().unwrap_or_default();
            assert!(
                traceparent.starts_with("00-"),
                "{} on {on}: {traceparent:?}",
                e.topic
            );
        }
        app.stop().await;
    }
}
