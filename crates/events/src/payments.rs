//! What the payments service announces: money moved (or was refused).
//!
//! Every event carries the same [`PaymentChanged`] payload; the topic says
//! what happened. The subject is the order's id.

use bazaar_bus::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The payment after the change the topic names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentChanged {
    /// The payment.
    pub payment_id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// `authorized`, `captured`, `voided`, `refunded` or `declined`.
    pub status: String,
    /// Why the card was declined (`card_declined`, `insufficient_funds`,
    /// `invalid_card`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<String>,
}

macro_rules! payment_event {
    ($(#[$doc:meta])* $name:ident, $topic:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub PaymentChanged);

        impl Event for $name {
            const TOPIC: &'static str = $topic;
            const VERSION: u32 = 1;
        }
    };
}

payment_event!(
    /// `payments.payment.authorized`: the amount is held on the card.
    PaymentAuthorized,
    "payments.payment.authorized"
);
payment_event!(
    /// `payments.payment.captured`: the held amount was taken.
    PaymentCaptured,
    "payments.payment.captured"
);
payment_event!(
    /// `payments.payment.voided`: the hold was let go; nothing was charged.
    PaymentVoided,
    "payments.payment.voided"
);
payment_event!(
    /// `payments.payment.refunded`: a captured amount was given back.
    PaymentRefunded,
    "payments.payment.refunded"
);
payment_event!(
    /// `payments.payment.declined`: the processor refused the card.
    PaymentDeclined,
    "payments.payment.declined"
);

#[cfg(test)]
mod tests {
    use bazaar_bus::Envelope;
    use serde_json::json;

    use super::*;

    /// The JSON is the contract: the payload is flat, whatever the topic.
    #[test]
    fn payment_events_have_their_documented_shape() {
        let (payment, order, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let changed = PaymentChanged {
            payment_id: payment,
            order_id: order,
            user_id: user,
            amount: 2500,
            currency: "EUR".into(),
            status: "declined".into(),
            decline_reason: Some("card_declined".into()),
        };
        for topic in [
            PaymentAuthorized::TOPIC,
            PaymentCaptured::TOPIC,
            PaymentVoided::TOPIC,
            PaymentRefunded::TOPIC,
            PaymentDeclined::TOPIC,
        ] {
            assert!(
                bazaar_bus::envelope::validate_topic(topic).is_ok(),
                "{topic}"
            );
        }
        let event = PaymentDeclined(changed.clone());
        let envelope = Envelope::new("payments", Some(&order.to_string()), &event).unwrap();
        assert_eq!(
            envelope.data,
            json!({
                "payment_id": payment.to_string(),
                "order_id": order.to_string(),
                "user_id": user.to_string(),
                "amount": 2500,
                "currency": "EUR",
                "status": "declined",
                "decline_reason": "card_declined",
            })
        );
        assert_eq!(
            envelope.dataschema,
            "urn:bazaar:event:payments.payment.declined:v1"
        );
        assert_eq!(envelope.decode::<PaymentDeclined>().unwrap(), event);

        let captured = PaymentCaptured(PaymentChanged {
            status: "captured".into(),
            decline_reason: None,
            ..changed
        });
        let envelope = Envelope::new("payments", Some(&order.to_string()), &captured).unwrap();
        assert!(envelope.data.get("decline_reason").is_none());
    }
}
