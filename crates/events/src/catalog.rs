//! What the catalog service announces: a product was created, changed or
//! deleted. Inventory keeps a stock row per product from them (its initial
//! stock arrives only through `catalog.product.created`); notifications tells
//! a seller's followers about new products.

use bazaar_bus::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `catalog.product.created`: a seller put a new product on sale. The
/// subject is the product's id, so one product's events stay in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCreated {
    /// The new product's id (UUIDv7).
    pub product_id: Uuid,
    /// The seller who owns it.
    pub seller_id: Uuid,
    /// Its title.
    pub title: String,
    /// Its price in minor units of `currency` (> 0).
    pub price_amount: i64,
    /// ISO 4217 code of the price.
    pub currency: String,
    /// The slug of its category.
    pub category: String,
    /// Units in stock to start with (≥ 0).
    pub initial_stock: i64,
}

impl Event for ProductCreated {
    const TOPIC: &'static str = "catalog.product.created";
    const VERSION: u32 = 1;
}

/// `catalog.product.updated`: a product's title, price or category may
/// have changed; the fields are its state after the change. The subject is
/// the product's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductUpdated {
    /// The product.
    pub product_id: Uuid,
    /// The seller who owns it.
    pub seller_id: Uuid,
    /// Its title now.
    pub title: String,
    /// Its price now, in minor units of `currency`.
    pub price_amount: i64,
    /// ISO 4217 code of the price.
    pub currency: String,
    /// The slug of its category now.
    pub category: String,
}

impl Event for ProductUpdated {
    const TOPIC: &'static str = "catalog.product.updated";
    const VERSION: u32 = 1;
}

/// `catalog.product.deleted`: the seller took a product off sale for good.
/// The subject is the product's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDeleted {
    /// The product.
    pub product_id: Uuid,
    /// The seller who owned it.
    pub seller_id: Uuid,
}

impl Event for ProductDeleted {
    const TOPIC: &'static str = "catalog.product.deleted";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use bazaar_bus::Envelope;
    use serde_json::json;

    use super::*;

    #[test]
    fn topics_are_valid_and_distinct() {
        let topics = [
            ProductCreated::TOPIC,
            ProductUpdated::TOPIC,
            ProductDeleted::TOPIC,
        ];
        for topic in topics {
            assert!(
                bazaar_bus::envelope::validate_topic(topic).is_ok(),
                "{topic}"
            );
            assert!(topic.starts_with("catalog.product."), "{topic}");
        }
        assert_ne!(topics[0], topics[1]);
        assert_ne!(topics[1], topics[2]);
    }

    /// The JSON is the contract.
    #[test]
    fn product_created_has_its_documented_shape() {
        let (product, seller) = (Uuid::now_v7(), Uuid::now_v7());
        let event = ProductCreated {
            product_id: product,
            seller_id: seller,
            title: "Kettle".into(),
            price_amount: 2999,
            currency: "EUR".into(),
            category: "home-kitchen".into(),
            initial_stock: 12,
        };
        let envelope = Envelope::new("catalog", Some(&product.to_string()), &event).unwrap();
        assert_eq!(
            envelope.data,
            json!({
                "product_id": product.to_string(),
                "seller_id": seller.to_string(),
                "title": "Kettle",
                "price_amount": 2999,
                "currency": "EUR",
                "category": "home-kitchen",
                "initial_stock": 12,
            })
        );
        assert_eq!(
            envelope.dataschema,
            "urn:bazaar:event:catalog.product.created:v1"
        );
        assert_eq!(envelope.decode::<ProductCreated>().unwrap(), event);
    }

    #[test]
    fn product_deleted_has_its_documented_shape() {
        let (product, seller) = (Uuid::now_v7(), Uuid::now_v7());
        let event = ProductDeleted {
            product_id: product,
            seller_id: seller,
        };
        let envelope = Envelope::new("catalog", Some(&product.to_string()), &event).unwrap();
        assert_eq!(
            envelope.data,
            json!({"product_id": product.to_string(), "seller_id": seller.to_string()})
        );
        assert_eq!(envelope.decode::<ProductDeleted>().unwrap(), event);
        assert!(envelope.decode::<ProductUpdated>().is_err());
    }
}
