//! Values that can only be built valid: what an order asks for, the card
//! that pays for it and where it goes. Only the wire layer (`http.rs`,
//! gRPC, events) serializes; these types convert into it explicitly.

use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// Most lines an order may have.
pub const MAX_LINES: usize = 50;
/// Most units of one product an order may ask for.
pub const MAX_QUANTITY: i64 = 99;
/// Longest `Idempotency-Key`, in characters.
pub const MAX_KEY_LEN: usize = 200;

/// Why a value was refused, in words for the field it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// One refused field: its path in the request and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// E.g. `items[2].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: &'static str,
}

impl FieldIssue {
    fn new(field: impl Into<String>, message: &'static str) -> Self {
        Self {
            field: field.into(),
            message,
        }
    }
}

/// Units of one product: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// `n` units, if `n` is 1 to [`MAX_QUANTITY`].
    pub fn new(n: i64) -> Option<Self> {
        (1..=MAX_QUANTITY).contains(&n).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// What an order asks for: 1 to [`MAX_LINES`] products, each once, in the
/// order they were first named. The same product named twice is one line
/// of their summed quantity (which must still be at most [`MAX_QUANTITY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<(Uuid, Quantity)>);

impl Lines {
    /// Items as `(product_id, quantity)`, either possibly missing; issues
    /// are named `{prefix}[i].product_id`, `{prefix}[i].quantity` or
    /// `{prefix}` for the list itself.
    ///
    /// # Errors
    /// Every issue found, not just the first.
    pub fn parse(
        prefix: &str,
        items: &[(Option<&str>, Option<i64>)],
    ) -> Result<Self, Vec<FieldIssue>> {
        let mut issues = Vec::new();
        if items.is_empty() {
            issues.push(FieldIssue::new(prefix, "must have at least one item"));
        }
        if items.len() > MAX_LINES {
            issues.push(FieldIssue::new(prefix, "must have at most 50 items"));
        }
        let mut lines: Vec<(Uuid, Quantity)> = Vec::new();
        for (i, (product, quantity)) in items.iter().enumerate() {
            let product = match product.map(|p| Uuid::parse_str(p.trim())) {
                Some(Ok(id)) => Some(id),
                Some(Err(_)) => {
                    issues.push(FieldIssue::new(
                        format!("{prefix}[{i}].product_id"),
                        "must be a product id (UUID)",
                    ));
                    None
                }
                None => {
                    issues.push(FieldIssue::new(
                        format!("{prefix}[{i}].product_id"),
                        "is required",
                    ));
                    None
                }
            };
            let quantity = match quantity {
                Some(n) => {
                    let q = Quantity::new(*n);
                    if q.is_none() {
                        issues.push(FieldIssue::new(
                            format!("{prefix}[{i}].quantity"),
                            "must be a whole number from 1 to 99",
                        ));
                    }
                    q
                }
                None => {
                    issues.push(FieldIssue::new(
                        format!("{prefix}[{i}].quantity"),
                        "is required",
                    ));
                    None
                }
            };
            let (Some(product), Some(quantity)) = (product, quantity) else {
                continue;
            };
            match lines.iter_mut().find(|(p, _)| *p == product) {
                Some((_, before)) => match Quantity::new(before.get() + quantity.get()) {
                    Some(sum) => *before = sum,
                    None => issues.push(FieldIssue::new(
                        format!("{prefix}[{i}].quantity"),
                        "names a product already ordered; together that is more than 99 units",
                    )),
                },
                None => lines.push((product, quantity)),
            }
        }
        if issues.is_empty() {
            Ok(Self(lines))
        } else {
            Err(issues)
        }
    }

    /// Lines as they were stored, already valid.
    pub(crate) fn from_stored(lines: Vec<(Uuid, Quantity)>) -> Self {
        Self(lines)
    }

    /// Lines of `(product, quantity)` pairs as a request would give them,
    /// for tests; panics when they are not valid.
    #[cfg(test)]
    pub(crate) fn of(items: &[(Uuid, i64)]) -> Self {
        let ids: Vec<String> = items.iter().map(|(p, _)| p.to_string()).collect();
        let raw: Vec<(Option<&str>, Option<i64>)> = ids
            .iter()
            .zip(items)
            .map(|(id, (_, q))| (Some(id.as_str()), Some(*q)))
            .collect();
        Self::parse("items", &raw).expect("valid lines")
    }

    /// Each product and its quantity, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, Quantity)> + '_ {
        self.0.iter().copied()
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for parsed lines; here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Units over all lines.
    pub fn units(&self) -> i64 {
        self.0.iter().map(|(_, q)| q.get()).sum()
    }
}

/// The card that pays for an order: the payments contract's rule, held
/// only until Authorize answers.
pub use bazaar_proto::payments::card::{Card, CardError, CardNumber, Cvc, Expiry};

/// A line of text in an address: trimmed, 1 to `max` characters, no
/// control characters.
fn text(raw: &str, max: usize) -> Result<String, Invalid> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(Invalid("must not be empty"));
    }
    if t.chars().count() > max {
        return Err(match max {
            20 => Invalid("must be at most 20 characters"),
            100 => Invalid("must be at most 100 characters"),
            _ => Invalid("must be at most 200 characters"),
        });
    }
    if t.chars().any(char::is_control) {
        return Err(Invalid("must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Who receives it (1..100 characters).
    pub name: String,
    /// Street and number (1..200).
    pub line1: String,
    /// City (1..100).
    pub city: String,
    /// Postal code (1..20).
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

impl Address {
    /// Checks every field; `fields` gives each raw value (absent = `None`).
    ///
    /// # Errors
    /// Every issue found, named `{prefix}.{field}`.
    pub fn parse(
        prefix: &str,
        name: Option<&str>,
        line1: Option<&str>,
        city: Option<&str>,
        postal_code: Option<&str>,
        country: Option<&str>,
    ) -> Result<Self, Vec<FieldIssue>> {
        let mut issues = Vec::new();
        let mut take =
            |field: &str, raw: Option<&str>, check: &dyn Fn(&str) -> Result<String, Invalid>| {
                match raw.map(check) {
                    Some(Ok(v)) => Some(v),
                    Some(Err(Invalid(m))) => {
                        issues.push(FieldIssue::new(format!("{prefix}.{field}"), m));
                        None
                    }
                    None => {
                        issues.push(FieldIssue::new(format!("{prefix}.{field}"), "is required"));
                        None
                    }
                }
            };
        let name = take("name", name, &|r| text(r, 100));
        let line1 = take("line1", line1, &|r| text(r, 200));
        let city = take("city", city, &|r| text(r, 100));
        let postal_code = take("postal_code", postal_code, &|r| text(r, 20));
        let country = take("country", country, &|r| {
            let c = r.trim();
            if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                Ok(c.to_ascii_uppercase())
            } else {
                Err(Invalid("must be a two-letter country code (ISO 3166-1)"))
            }
        });
        match (name, line1, city, postal_code, country) {
            (Some(name), Some(line1), Some(city), Some(postal_code), Some(country))
                if issues.is_empty() =>
            {
                Ok(Self {
                    name,
                    line1,
                    city,
                    postal_code,
                    country,
                })
            }
            _ => Err(issues),
        }
    }
}

/// A client's `Idempotency-Key`: 1 to [`MAX_KEY_LEN`] visible ASCII
/// characters. Keys are per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in a header value.
    ///
    /// # Errors
    /// Empty, too long, or not visible ASCII.
    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(Invalid("must be visible ASCII characters"));
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if text.len() > MAX_KEY_LEN {
            return Err(Invalid("must be at most 200 characters"));
        }
        if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(Invalid("must be visible ASCII characters"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount in minor units of an ISO 4217 currency.
pub use bazaar_events::money::Money;

/// Everything a checkout asks for, valid. `items` is `None` when the cart
/// is to be ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The lines named in the request, or `None` for the cart.
    pub items: Option<Lines>,
    /// How it is paid.
    pub card: Card,
    /// Where it goes.
    pub address: Address,
}

impl Checkout {
    /// A digest of the request, to tell a retry (same key, same request)
    /// from a different request under a used key. The same products in
    /// another order count as the same request. Of the card it covers only
    /// the last four digits and the expiry: no card number is ever hashed
    /// or stored with the order.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        };
        match &self.items {
            None => field("cart"),
            Some(lines) => {
                let mut sorted: Vec<(Uuid, Quantity)> = lines.iter().collect();
                sorted.sort();
                field("items");
                for (product, quantity) in sorted {
                    field(&product.to_string());
                    field(&quantity.get().to_string());
                }
            }
        }
        field(self.card.number.last4());
        field(&self.card.expiry.month().to_string());
        field(&self.card.expiry.year().to_string());
        for part in [
            &self.address.name,
            &self.address.line1,
            &self.address.city,
            &self.address.postal_code,
            &self.address.country,
        ] {
            field(part);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where an order stands, as its owner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The checkout is running.
    Pending,
    /// Paid and committed; it will be fulfilled.
    Confirmed,
    /// The checkout failed and was undone.
    Cancelled,
}

impl Status {
    /// `pending`, `confirmed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Why an order was cancelled, machine-readable (the `reason_code` of
/// `orders.order.cancelled`; see `bazaar_events::orders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelCode {
    /// A product has fewer units than asked.
    OutOfStock,
    /// The issuer declined the card.
    CardDeclined,
    /// Not enough money on the card.
    InsufficientFunds,
    /// Expired or malformed card.
    InvalidCard,
    /// Payments did not answer after the retries.
    PaymentUnavailable,
    /// A product was deleted by its seller.
    NotOnSale,
    /// A product never existed.
    UnknownProduct,
    /// Products priced in different currencies.
    CurrencyMismatch,
    /// The saga did not finish before its deadline.
    TimedOut,
}

impl CancelCode {
    /// Every code.
    pub const ALL: [Self; 9] = [
        Self::OutOfStock,
        Self::CardDeclined,
        Self::InsufficientFunds,
        Self::InvalidCard,
        Self::PaymentUnavailable,
        Self::NotOnSale,
        Self::UnknownProduct,
        Self::CurrencyMismatch,
        Self::TimedOut,
    ];

    /// The code as published.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
            Self::InvalidCard => "invalid_card",
            Self::PaymentUnavailable => "payment_unavailable",
            Self::NotOnSale => "not_on_sale",
            Self::UnknownProduct => "unknown_product",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::TimedOut => "timed_out",
        }
    }

    /// The code stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A decision to cancel: the code and a sentence a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Machine-readable.
    pub code: CancelCode,
    /// For the buyer.
    pub reason: String,
}

impl Cancel {
    /// `code` because `reason`.
    pub fn new(code: CancelCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        Uuid::now_v7().to_string()
    }

    fn fields(issues: &[FieldIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.field.as_str()).collect()
    }

    #[test]
    fn quantities_are_1_to_99() {
        assert!(Quantity::new(0).is_none());
        assert!(Quantity::new(100).is_none());
        assert_eq!(Quantity::new(99).map(Quantity::get), Some(99));
    }

    #[test]
    fn lines_merge_duplicates_in_first_seen_order() {
        let (a, b) = (id(), id());
        let lines = Lines::parse(
            "items",
            &[
                (Some(&b), Some(1)),
                (Some(&a), Some(2)),
                (Some(&b), Some(3)),
            ],
        )
        .unwrap();
        let got: Vec<(String, i64)> = lines
            .iter()
            .map(|(p, q)| (p.to_string(), q.get()))
            .collect();
        assert_eq!(got, vec![(b.clone(), 4), (a, 2)]);
        assert_eq!(lines.units(), 6);
        let over =
            Lines::parse("items", &[(Some(&b), Some(60)), (Some(&b), Some(40))]).unwrap_err();
        assert_eq!(fields(&over), ["items[1].quantity"]);
    }

    #[test]
    fn bad_lines_name_every_field() {
        let a = id();
        let issues = Lines::parse(
            "items",
            &[
                (Some("nope"), Some(1)),
                (Some(&a), Some(0)),
                (None, None),
                (Some(&a), Some(100)),
            ],
        )
        .unwrap_err();
        assert_eq!(
            fields(&issues),
            [
                "items[0].product_id",
                "items[1].quantity",
                "items[2].product_id",
                "items[2].quantity",
                "items[3].quantity"
            ]
        );
        assert_eq!(fields(&Lines::parse("items", &[]).unwrap_err()), ["items"]);
        let many: Vec<String> = (0..51).map(|_| id()).collect();
        let items: Vec<(Option<&str>, Option<i64>)> =
            many.iter().map(|p| (Some(p.as_str()), Some(1))).collect();
        assert_eq!(fields(&Lines::parse("cart", &items).unwrap_err()), ["cart"]);
        assert!(Lines::parse("items", &items[..50]).is_ok());
    }

    #[test]
    fn addresses_are_trimmed_bounded_and_complete() {
        let a = Address::parse(
            "shipping_address",
            Some(" Ada "),
            Some("1 Main St"),
            Some("Paris"),
            Some("75001"),
            Some("fr"),
        )
        .unwrap();
        assert_eq!(a.name, "Ada");
        assert_eq!(a.country, "FR");
        let long = "x".repeat(101);
        let issues = Address::parse(
            "shipping_address",
            Some(&long),
            Some(" "),
            None,
            Some("123456789012345678901"),
            Some("FRA"),
        )
        .unwrap_err();
        assert_eq!(
            fields(&issues),
            [
                "shipping_address.name",
                "shipping_address.line1",
                "shipping_address.city",
                "shipping_address.postal_code",
                "shipping_address.country"
            ]
        );
        assert!(
            Address::parse(
                "a",
                Some("A\u{7}"),
                Some("l"),
                Some("c"),
                Some("p"),
                Some("DE")
            )
            .is_err()
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse(b"abc-123").is_ok());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"   ").is_err());
        assert!(IdempotencyKey::parse("x".repeat(200).as_bytes()).is_ok());
        assert!(IdempotencyKey::parse("x".repeat(201).as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"a\tb").is_err());
    }

    #[test]
    fn money_reads_as_people_write_it() {
        let m = |amount, currency: &str| {
            Money {
                amount,
                currency: currency.into(),
            }
            .to_string()
        };
        assert_eq!(m(5997, "EUR"), "59.97 EUR");
        assert_eq!(m(5, "USD"), "0.05 USD");
        assert_eq!(m(1200, "JPY"), "1200 JPY");
    }

    #[test]
    fn fingerprints_tell_requests_apart_but_not_item_order() {
        let (a, b) = (id(), id());
        let checkout = |items: &[(Option<&str>, Option<i64>)], number: &str, city: &str| Checkout {
            items: Some(Lines::parse("items", items).unwrap()),
            card: Card {
                number: CardNumber::parse(number).unwrap(),
                expiry: Expiry::new(1, 2030).unwrap(),
                cvc: Cvc::parse("123").unwrap(),
            },
            address: Address::parse("a", Some("A"), Some("L"), Some(city), Some("1"), Some("DE"))
                .unwrap(),
        };
        let one = checkout(
            &[(Some(&a), Some(1)), (Some(&b), Some(2))],
            "4242424242424242",
            "Berlin",
        );
        let same = checkout(
            &[(Some(&b), Some(2)), (Some(&a), Some(1))],
            "4242424242424242",
            "Berlin",
        );
        assert_eq!(one.fingerprint(), same.fingerprint());
        let other_city = checkout(
            &[(Some(&a), Some(1)), (Some(&b), Some(2))],
            "4242424242424242",
            "Bonn",
        );
        assert_ne!(one.fingerprint(), other_city.fingerprint());
        let other_qty = checkout(
            &[(Some(&a), Some(2)), (Some(&b), Some(2))],
            "4242424242424242",
            "Berlin",
        );
        assert_ne!(one.fingerprint(), other_qty.fingerprint());
        let mut cart = one.clone();
        cart.items = None;
        assert_ne!(one.fingerprint(), cart.fingerprint());
        assert!(!one.fingerprint().contains("4242424242424242"));
    }

    #[test]
    fn cancel_codes_round_trip() {
        for code in CancelCode::ALL {
            assert_eq!(CancelCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(CancelCode::parse("nope"), None);
    }
}
