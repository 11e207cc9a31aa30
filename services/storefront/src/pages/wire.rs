//! What the storefront reads from the services' REST APIs (shared/API.md):
//! only the fields the pages show, so a field added upstream changes
//! nothing here.

use serde::Deserialize;

/// A page of anything: `{items, page, limit, total}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Its number (1-based).
    #[serde(default = "one")]
    pub page: i64,
    /// Items per page.
    #[serde(default = "one")]
    pub limit: i64,
    /// Items over all pages.
    #[serde(default)]
    pub total: i64,
    /// Notifications only: how many are unread, over all pages.
    #[serde(default)]
    pub unread: Option<i64>,
}

fn one() -> i64 {
    1
}

/// An amount of money in minor units.
pub use bazaar_events::money::Money;

/// A product on sale.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: String,
    /// Who sells it.
    pub seller_id: String,
    /// Its title.
    pub title: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Its price.
    pub price: Money,
    /// Its category's slug.
    #[serde(default)]
    pub category: String,
}

/// A category with its number of products.
#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    /// Its slug (the filter's value).
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Products on sale in it.
    #[serde(default)]
    pub product_count: i64,
}

/// A product's stock.
#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    /// Units that can be ordered.
    pub available: i64,
}

/// A user's cart.
#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    /// Its lines.
    #[serde(default)]
    pub items: Vec<CartLine>,
}

/// One line of a cart.
#[derive(Debug, Clone, Deserialize)]
pub struct CartLine {
    /// The product.
    pub product_id: String,
    /// How many.
    pub quantity: i64,
}

/// An order.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: String,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    /// Its lines.
    #[serde(default)]
    pub items: Vec<OrderLine>,
    /// Its total, once priced.
    #[serde(default)]
    pub total: Option<Money>,
    /// Why it was cancelled.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// The checkout's steps, oldest first.
    #[serde(default)]
    pub timeline: Vec<Step>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

/// One line of an order.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: String,
    /// Its title, once priced.
    #[serde(default)]
    pub title: Option<String>,
    /// How many.
    pub quantity: i64,
    /// Price of one, once priced.
    #[serde(default)]
    pub unit_price: Option<Money>,
}

/// One step of an order's checkout.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// RFC 3339.
    pub at: String,
    /// Its name.
    pub step: String,
    /// What happened.
    #[serde(default)]
    pub detail: String,
}

/// Just an id (what a create answers with, among other fields).
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    /// The new thing's id.
    pub id: String,
}

/// A notification.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    /// Its id (UUIDv7: ids grow over time).
    pub id: String,
    /// What it is about.
    #[serde(default)]
    pub kind: String,
    /// Its title.
    pub title: String,
    /// Its text.
    #[serde(default)]
    pub body: String,
    /// The storefront path it is about.
    #[serde(default)]
    pub link: String,
    /// Whether it was marked read.
    #[serde(default)]
    pub read: bool,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

/// The signed-in user, as identity describes them.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// Their display name.
    pub name: String,
}

/// RFC 3339 shortened for people: `2025-01-31 09:30` (UTC).
pub fn when(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    let time: String = rest.chars().take(5).collect();
    if time.is_empty() {
        date.to_owned()
    } else {
        format!("{date} {time} UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shortened() {
        assert_eq!(when("2025-01-31T09:30:12.123Z"), "2025-01-31 09:30 UTC");
        assert_eq!(when(""), "");
    }

    #[test]
    fn the_unread_count_is_optional() {
        let page: Page<Notification> =
            serde_json::from_str(r#"{"items":[],"page":1,"limit":1,"total":0}"#).unwrap();
        assert_eq!(page.unread, None);
        let page: Page<Notification> =
            serde_json::from_str(r#"{"items":[],"page":1,"limit":1,"total":4,"unread":2}"#)
                .unwrap();
        assert_eq!(page.unread, Some(2));
    }
}
