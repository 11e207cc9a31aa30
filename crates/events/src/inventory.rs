//! What the inventory service announces: a product's stock ran low.

use bazaar_bus::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `inventory.stock.low`: after a commit or a change of the units on hand,
/// a product's available units (on hand minus reserved) fell below the low
/// stock threshold. Announced once per crossing: not again until the
/// product has been at or above the threshold. The subject is the
/// product's id. Notifications tells the seller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLow {
    /// The product.
    pub product_id: Uuid,
    /// The seller who owns it.
    pub seller_id: Uuid,
    /// Units available for new orders when it was announced.
    pub available: i64,
}

impl Event for StockLow {
    const TOPIC: &'static str = "inventory.stock.low";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use bazaar_bus::Envelope;
    use serde_json::json;

    use super::*;

    /// The JSON is the contract.
    #[test]
    fn stock_low_has_its_documented_shape() {
        let (product, seller) = (Uuid::now_v7(), Uuid::now_v7());
        let event = StockLow {
            product_id: product,
            seller_id: seller,
            available: 3,
        };
        assert!(bazaar_bus::envelope::validate_topic(StockLow::TOPIC).is_ok());
        let envelope = Envelope::new("inventory", Some(&product.to_string()), &event).unwrap();
        assert_eq!(
            envelope.data,
            json!({"product_id": product.to_string(), "seller_id": seller.to_string(), "available": 3})
        );
        assert_eq!(
            envelope.dataschema,
            "urn:bazaar:event:inventory.stock.low:v1"
        );
        assert_eq!(envelope.decode::<StockLow>().unwrap(), event);
    }
}
