//! What the orders service announces: how a checkout ended.

use bazaar_bus::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::money::Money;

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Its seller.
    pub seller_id: Uuid,
    /// Its title when the order was priced.
    pub title: String,
    /// Units ordered.
    pub quantity: i64,
    /// Price of one unit when the order was priced.
    pub unit_price: Money,
}

/// `orders.order.confirmed`: stock is committed and the payment captured;
/// the order will be fulfilled. The subject is the order's id.
/// Notifications tells the buyer (and later shipping ships it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// What was bought.
    pub items: Vec<OrderLine>,
    /// What was charged.
    pub total: Money,
}

impl Event for OrderConfirmed {
    const TOPIC: &'static str = "orders.order.confirmed";
    const VERSION: u32 = 1;
}

/// `orders.order.cancelled`: the checkout failed and everything it had done
/// was undone (stock released, authorization voided). The subject is the
/// order's id. Notifications tells the buyer why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// A machine-readable cause: `out_of_stock`, `card_declined`,
    /// `insufficient_funds`, `invalid_card`, `payment_unavailable`,
    /// `not_on_sale`, `unknown_product`, `currency_mismatch`, `timed_out`.
    pub reason_code: String,
    /// The same cause in a sentence a person can read.
    pub reason: String,
}

impl Event for OrderCancelled {
    const TOPIC: &'static str = "orders.order.cancelled";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use bazaar_bus::Envelope;
    use serde_json::json;

    use super::*;

    /// The JSON is the contract.
    #[test]
    fn confirmed_and_cancelled_have_their_documented_shape() {
        let (order, user, product, seller) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let confirmed = OrderConfirmed {
            order_id: order,
            user_id: user,
            items: vec![OrderLine {
                product_id: product,
                seller_id: seller,
                title: "Teapot".into(),
                quantity: 2,
                unit_price: Money {
                    amount: 1250,
                    currency: "EUR".into(),
                },
            }],
            total: Money {
                amount: 2500,
                currency: "EUR".into(),
            },
        };
        assert!(bazaar_bus::envelope::validate_topic(OrderConfirmed::TOPIC).is_ok());
        let envelope = Envelope::new("orders", Some(&order.to_string()), &confirmed).unwrap();
        assert_eq!(
            envelope.data,
            json!({
                "order_id": order.to_string(),
                "user_id": user.to_string(),
                "items": [{
                    "product_id": product.to_string(),
                    "seller_id": seller.to_string(),
                    "title": "Teapot",
                    "quantity": 2,
                    "unit_price": {"amount": 1250, "currency": "EUR"},
                }],
                "total": {"amount": 2500, "currency": "EUR"},
            })
        );
        assert_eq!(envelope.decode::<OrderConfirmed>().unwrap(), confirmed);

        let cancelled = OrderCancelled {
            order_id: order,
            user_id: user,
            reason_code: "card_declined".into(),
            reason: "The card was declined.".into(),
        };
        assert!(bazaar_bus::envelope::validate_topic(OrderCancelled::TOPIC).is_ok());
        let envelope = Envelope::new("orders", Some(&order.to_string()), &cancelled).unwrap();
        assert_eq!(
            envelope.dataschema,
            "urn:bazaar:event:orders.order.cancelled:v1"
        );
        assert_eq!(envelope.decode::<OrderCancelled>().unwrap(), cancelled);
    }
}
