//! Values that can only be built valid: what a notification is about, where
//! it links, how its ids grow, and a page of the feed.

use bazaar_events::money::Money;
use uuid::Uuid;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A new account (`identity.user.registered`).
    Welcome,
    /// The user's order went through (`orders.order.confirmed`).
    OrderConfirmed,
    /// The user's order was cancelled (`orders.order.cancelled`).
    OrderCancelled,
    /// One of the seller's products is running out (`inventory.stock.low`).
    StockLow,
    /// A followed seller put a product on sale (`catalog.product.created`).
    NewProduct,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 5] = [
        Kind::Welcome,
        Kind::OrderConfirmed,
        Kind::OrderCancelled,
        Kind::StockLow,
        Kind::NewProduct,
    ];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Welcome => "welcome",
            Kind::OrderConfirmed => "order_confirmed",
            Kind::OrderCancelled => "order_cancelled",
            Kind::StockLow => "stock_low",
            Kind::NewProduct => "new_product",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The storefront path of what a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link(String);

impl Link {
    /// The storefront's front page.
    pub fn home() -> Self {
        Self("/".to_owned())
    }

    /// An order's page.
    pub fn order(id: Uuid) -> Self {
        Self(format!("/orders/{id}"))
    }

    /// A product's page.
    pub fn product(id: Uuid) -> Self {
        Self(format!("/products/{id}"))
    }

    /// A link read back from the database, which only ever stored valid ones.
    pub(crate) fn stored(path: String) -> Self {
        Self(path)
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a user's next notification: a fresh UUIDv7, unless the clock
/// says it would not come after `last` (the user's newest, maybe made by a
/// replica whose clock runs ahead); then the smallest UUIDv7 after `last`.
/// A user's ids therefore only grow, which is what makes "everything after
/// the id I saw last" a complete answer for a reconnecting stream.
pub fn next_id(last: Option<Uuid>) -> Uuid {
    let fresh = Uuid::now_v7();
    match last {
        Some(last) if fresh <= last => successor(last),
        _ => fresh,
    }
}

/// The smallest UUIDv7 after `id` (which should be one): its random bits
/// plus one, carrying into the milliseconds.
fn successor(id: Uuid) -> Uuid {
    const RAND_B_MAX: u128 = (1 << 62) - 1;
    let bits = id.as_u128();
    let millis = bits >> 80;
    let rand_a = (bits >> 64) & 0xfff;
    let rand_b = bits & RAND_B_MAX;
    let (millis, rand_a, rand_b) = if rand_b < RAND_B_MAX {
        (millis, rand_a, rand_b + 1)
    } else if rand_a < 0xfff {
        (millis, rand_a + 1, 0)
    } else {
        (millis + 1, 0, 0)
    };
    Uuid::from_u128((millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
}

/// Which page of a feed, and how long: `page` from 1, `limit` 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    page: i64,
    limit: i64,
}

/// Why a page was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    /// `page` or `limit`.
    pub field: &'static str,
    /// What a valid value is.
    pub message: &'static str,
}

impl Page {
    /// The largest page number accepted.
    pub const MAX_PAGE: i64 = 1_000_000;

    /// A page from query parameters; absent or empty ones take their
    /// defaults (page 1, 20 per page). Every bad field is reported.
    pub fn parse(page: Option<&str>, limit: Option<&str>) -> Result<Self, Vec<PageError>> {
        let mut errors = Vec::new();
        let mut number = |raw: Option<&str>, default: i64, max: i64, error: PageError| match raw
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => default,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    errors.push(error);
                    default
                }
            },
        };
        let page = number(
            page,
            1,
            Self::MAX_PAGE,
            PageError {
                field: "page",
                message: "must be a whole number from 1 to 1000000",
            },
        );
        let limit = number(
            limit,
            20,
            100,
            PageError {
                field: "limit",
                message: "must be a whole number from 1 to 100",
            },
        );
        if errors.is_empty() {
            Ok(Self { page, limit })
        } else {
            Err(errors)
        }
    }

    /// The page number, from 1.
    pub fn number(self) -> i64 {
        self.page
    }

    /// Items per page.
    pub fn limit(self) -> i64 {
        self.limit
    }

    /// Items before this page.
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.limit
    }
}

/// An amount of minor units as people write it: `24.50 EUR`, `1200 JPY`.
pub fn money(amount: i64, currency: &str) -> String {
    Money::new(amount, currency).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("spam"), None);
    }

    #[test]
    fn links_are_storefront_paths() {
        let id = Uuid::nil();
        assert_eq!(
            Link::order(id).as_str(),
            "/orders/00000000-0000-0000-0000-000000000000"
        );
        assert!(Link::product(id).as_str().starts_with("/products/"));
        assert_eq!(Link::home().as_str(), "/");
    }

    #[test]
    fn ids_grow_even_when_the_clock_is_behind() {
        let mut last = None;
        for _ in 0..1000 {
            let id = next_id(last);
            assert_eq!(id.get_version_num(), 7);
            if let Some(last) = last {
                assert!(id > last);
            }
            last = Some(id);
        }
        // A newest id from a clock an hour ahead: the next one still follows it.
        let ahead = Uuid::from_u128(Uuid::now_v7().as_u128() + (3_600_000_u128 << 80));
        let next = next_id(Some(ahead));
        assert!(next > ahead);
        assert_eq!(next.get_version_num(), 7);
        assert_eq!(next.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn successors_carry() {
        let top_b =
            Uuid::from_u128((5 << 80) | (0x7 << 76) | (3 << 64) | (0b10 << 62) | ((1 << 62) - 1));
        let next = successor(top_b);
        assert!(next > top_b);
        assert_eq!(next.as_u128() >> 80, 5);
        assert_eq!((next.as_u128() >> 64) & 0xfff, 4);
        let top_a = Uuid::from_u128(
            (5 << 80) | (0x7 << 76) | (0xfff << 64) | (0b10 << 62) | ((1 << 62) - 1),
        );
        let next = successor(top_a);
        assert!(next > top_a);
        assert_eq!(next.as_u128() >> 80, 6);
        assert_eq!(next.get_version_num(), 7);
        // The text form sorts as the ids do (the database compares text).
        assert!(next.to_string() > top_a.to_string());
    }

    #[test]
    fn pages_default_and_refuse_what_is_out_of_range() {
        let p = Page::parse(None, None).unwrap();
        assert_eq!((p.number(), p.limit(), p.offset()), (1, 20, 0));
        let p = Page::parse(Some("3"), Some("100")).unwrap();
        assert_eq!((p.number(), p.limit(), p.offset()), (3, 100, 200));
        let p = Page::parse(Some(" "), Some("")).unwrap();
        assert_eq!((p.number(), p.limit()), (1, 20));
        let e = Page::parse(Some("0"), Some("101")).unwrap_err();
        assert_eq!(
            e.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["page", "limit"]
        );
        assert_eq!(Page::parse(Some("x"), None).unwrap_err()[0].field, "page");
        assert_eq!(Page::parse(None, Some("0")).unwrap_err()[0].field, "limit");
    }

    #[test]
    fn money_is_written_with_its_decimals() {
        assert_eq!(money(2450, "EUR"), "24.50 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(1200, "JPY"), "1200 JPY");
        assert_eq!(money(-150, "GBP"), "-1.50 GBP");
    }
}
