//! The checkout saga as a state machine, without I/O: its stages, what a
//! cancellation has to undo at each, and how catalog's answer prices an
//! order. `engine.rs` drives it; this module decides.
//!
//! ```text
//! pricing → reserving → authorizing → committing ═▶ capturing → confirmed
//!    │          │            │             │  (pivot: from here only forward)
//!    └──────────┴────────────┴─────────────┴──▶ compensating → cancelled
//! ```
//!
//! A stage names the call to make next and is stored before that call is
//! made, so a saga resumed after a crash repeats it (every call is
//! idempotent by order id).

use std::collections::HashMap;
use std::time::Duration;

use bazaar_proto::catalog::v1 as catalog;
use uuid::Uuid;

use crate::domain::{Cancel, CancelCode, Lines, Money, Quantity};

/// Where a saga stands: the call it makes next, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ask catalog for titles, sellers and prices.
    Pricing,
    /// Ask inventory to hold the stock.
    Reserving,
    /// Ask payments to hold the amount on the card.
    Authorizing,
    /// Ask inventory to take the held stock: the pivot.
    Committing,
    /// Ask payments to take the held amount; retried until it does.
    Capturing,
    /// Undo what was done (void, then release), then cancel.
    Compensating,
    /// Done: paid and committed.
    Confirmed,
    /// Done: undone.
    Cancelled,
}

impl Stage {
    /// The stage as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pricing => "pricing",
            Self::Reserving => "reserving",
            Self::Authorizing => "authorizing",
            Self::Committing => "committing",
            Self::Capturing => "capturing",
            Self::Compensating => "compensating",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The stage stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pricing,
            Self::Reserving,
            Self::Authorizing,
            Self::Committing,
            Self::Capturing,
            Self::Compensating,
            Self::Confirmed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == s)
    }

    /// The stage after this one succeeds; `None` for the ends (and for
    /// compensating, which ends in cancelled).
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Pricing => Some(Self::Reserving),
            Self::Reserving => Some(Self::Authorizing),
            Self::Authorizing => Some(Self::Committing),
            Self::Committing => Some(Self::Capturing),
            Self::Capturing => Some(Self::Confirmed),
            Self::Compensating => Some(Self::Cancelled),
            Self::Confirmed | Self::Cancelled => None,
        }
    }

    /// Whether the saga deadline still applies: before the commit is
    /// asked for. Committing waits for inventory's answer (which decides
    /// between forward and back), and from capturing on only forward is left.
    pub fn before_pivot(self) -> bool {
        matches!(self, Self::Pricing | Self::Reserving | Self::Authorizing)
    }

    /// Whether the saga has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled)
    }
}

/// What a cancellation has to undo, in this order: the authorization, then
/// the reservation (the reverse of how they were made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Undo {
    /// Void the payment's authorization.
    pub void: bool,
    /// Release the stock reservation.
    pub release: bool,
}

impl Undo {
    /// What to undo when the saga gives up at `stage`. `definite` when the
    /// stage's own call certainly did nothing (a failed Reserve held
    /// nothing, a declined card holds nothing, an Authorize that never
    /// reached payments or that payments answered ABORTED held
    /// nothing), so only earlier steps are undone; otherwise (deadline, no
    /// answer) the call may have happened and is undone too. `None` where
    /// cancelling is no longer allowed.
    pub fn after(stage: Stage, definite: bool) -> Option<Self> {
        match stage {
            Stage::Pricing => Some(Self::default()),
            Stage::Reserving => Some(Self {
                void: false,
                release: !definite,
            }),
            Stage::Authorizing => Some(Self {
                void: !definite,
                release: true,
            }),
            // Commit refused (the reservation expired or was released):
            // the authorization is let go; releasing an expired reservation
            // is answered as done, so it is asked anyway.
            Stage::Committing => definite.then_some(Self {
                void: true,
                release: true,
            }),
            Stage::Capturing | Stage::Compensating | Stage::Confirmed | Stage::Cancelled => None,
        }
    }
}

/// One line priced by catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// The product.
    pub product_id: Uuid,
    /// Its title now.
    pub title: String,
    /// Who sells it.
    pub seller_id: Uuid,
    /// Units ordered.
    pub quantity: Quantity,
    /// Price of one unit, minor units of the order's currency.
    pub unit_amount: i64,
}

/// An order priced: its lines and total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// In the order's line order.
    pub lines: Vec<PricedLine>,
    /// Sum of quantity × unit price.
    pub total: Money,
}

/// Quotes a title for a sentence.
pub fn quoted(title: &str) -> String {
    format!("\u{201c}{title}\u{201d}")
}

/// Prices `lines` with catalog's `answer`, or says why the order cannot
/// be placed: a product catalog never had (`unknown_product`), one no
/// longer on sale or answered without a usable price (`not_on_sale`),
/// products in different currencies (`currency_mismatch`).
///
/// # Errors
/// The cancellation, with a sentence naming the products.
pub fn price(lines: &Lines, answer: &catalog::GetProductsResponse) -> Result<Priced, Cancel> {
    let known: HashMap<&str, &catalog::Product> =
        answer.products.iter().map(|p| (p.id.as_str(), p)).collect();
    let ids: Vec<String> = lines.iter().map(|(p, _)| p.to_string()).collect();
    let missing: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !known.contains_key(id) || answer.missing.iter().any(|m| m == id))
        .collect();
    if !missing.is_empty() {
        return Err(Cancel::new(
            CancelCode::UnknownProduct,
            format!(
                "No product has the id {}; it cannot be ordered.",
                missing.join(", ")
            ),
        ));
    }
    let mut priced = Vec::with_capacity(lines.len());
    let mut unusable = Vec::new();
    for ((product_id, quantity), id) in lines.iter().zip(&ids) {
        let product = known[id.as_str()];
        let price = product.price.as_ref().filter(|m| m.amount > 0);
        let seller = Uuid::parse_str(&product.seller_id).ok();
        match (product.on_sale, price, seller) {
            (true, Some(price), Some(seller_id)) => priced.push((
                PricedLine {
                    product_id,
                    title: product.title.clone(),
                    seller_id,
                    quantity,
                    unit_amount: price.amount,
                },
                price.currency.clone(),
            )),
            _ => unusable.push(quoted(&product.title)),
        }
    }
    if !unusable.is_empty() {
        let (verb, noun) = if unusable.len() == 1 {
            ("is", "it")
        } else {
            ("are", "they")
        };
        return Err(Cancel::new(
            CancelCode::NotOnSale,
            format!(
                "{} {verb} no longer on sale, so {noun} cannot be ordered.",
                unusable.join(", ")
            ),
        ));
    }
    let currency = priced[0].1.clone();
    if priced.iter().any(|(_, c)| *c != currency) {
        let mut currencies: Vec<&str> = priced.iter().map(|(_, c)| c.as_str()).collect();
        currencies.sort_unstable();
        currencies.dedup();
        return Err(Cancel::new(
            CancelCode::CurrencyMismatch,
            format!(
                "The products are priced in different currencies ({}); order them separately.",
                currencies.join(", ")
            ),
        ));
    }
    let mut total: i64 = 0;
    for (line, _) in &priced {
        // Catalog caps prices far below this; a total that overflows means
        // a price nobody can pay.
        let Some(sum) = line
            .unit_amount
            .checked_mul(line.quantity.get())
            .and_then(|amount| total.checked_add(amount))
        else {
            return Err(Cancel::new(
                CancelCode::NotOnSale,
                format!("{} cannot be priced.", quoted(&line.title)),
            ));
        };
        total = sum;
    }
    Ok(Priced {
        lines: priced.into_iter().map(|(line, _)| line).collect(),
        total: Money {
            amount: total,
            currency,
        },
    })
}

/// One product inventory could not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The product.
    pub product_id: Uuid,
    /// Units asked.
    pub requested: i64,
    /// Units available when asked.
    pub available: i64,
}

/// The `out_of_stock` cancellation, naming each product by `titles`.
pub fn out_of_stock(shortages: &[Shortage], titles: &HashMap<Uuid, String>) -> Cancel {
    let parts: Vec<String> = shortages
        .iter()
        .map(|s| {
            let title = titles
                .get(&s.product_id)
                .map_or_else(|| s.product_id.to_string(), |t| quoted(t));
            if s.available <= 0 {
                format!("{title} is sold out")
            } else {
                format!(
                    "only {} of {title} left ({} asked)",
                    s.available, s.requested
                )
            }
        })
        .collect();
    let text = if parts.is_empty() {
        "a product is sold out".to_owned()
    } else {
        parts.join("; ")
    };
    Cancel::new(CancelCode::OutOfStock, format!("Out of stock: {text}."))
}

/// The `unknown_product` cancellation when inventory has no stock of some
/// product (created or deleted in catalog, not known to inventory).
pub fn no_stock_record(products: &[Uuid], titles: &HashMap<Uuid, String>) -> Cancel {
    let names: Vec<String> = products
        .iter()
        .map(|p| titles.get(p).map_or_else(|| p.to_string(), |t| quoted(t)))
        .collect();
    Cancel::new(
        CancelCode::UnknownProduct,
        format!("{} cannot be ordered: it has no stock.", names.join(", ")),
    )
}

/// How long, for a sentence: `2 min`, `90 s`, `500 ms`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Stage; 8] = [
        Stage::Pricing,
        Stage::Reserving,
        Stage::Authorizing,
        Stage::Committing,
        Stage::Capturing,
        Stage::Compensating,
        Stage::Confirmed,
        Stage::Cancelled,
    ];

    #[test]
    fn stages_round_trip_and_run_forward_to_confirmed() {
        for stage in ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        let mut path = vec![Stage::Pricing];
        while let Some(next) = path.last().and_then(|s| s.next()) {
            path.push(next);
        }
        assert_eq!(
            path,
            [
                Stage::Pricing,
                Stage::Reserving,
                Stage::Authorizing,
                Stage::Committing,
                Stage::Capturing,
                Stage::Confirmed
            ]
        );
        assert_eq!(Stage::Compensating.next(), Some(Stage::Cancelled));
        assert!(ALL.iter().filter(|s| s.is_final()).count() == 2);
    }

    #[test]
    fn the_deadline_applies_only_before_the_commit() {
        let before: Vec<Stage> = ALL.into_iter().filter(|s| s.before_pivot()).collect();
        assert_eq!(
            before,
            [Stage::Pricing, Stage::Reserving, Stage::Authorizing]
        );
    }

    #[test]
    fn undo_covers_what_may_have_happened() {
        let undo = |void, release| Some(Undo { void, release });
        assert_eq!(Undo::after(Stage::Pricing, true), undo(false, false));
        assert_eq!(Undo::after(Stage::Pricing, false), undo(false, false));
        // A refused reservation held nothing; one that timed out may have.
        assert_eq!(Undo::after(Stage::Reserving, true), undo(false, false));
        assert_eq!(Undo::after(Stage::Reserving, false), undo(false, true));
        // A decline holds no money; an unanswered Authorize may have.
        assert_eq!(Undo::after(Stage::Authorizing, true), undo(false, true));
        assert_eq!(Undo::after(Stage::Authorizing, false), undo(true, true));
        // Commit decides: refused → back; unanswered → ask again, never cancel.
        assert_eq!(Undo::after(Stage::Committing, true), undo(true, true));
        assert_eq!(Undo::after(Stage::Committing, false), None);
        // Past the pivot there is no way back.
        for stage in [
            Stage::Capturing,
            Stage::Compensating,
            Stage::Confirmed,
            Stage::Cancelled,
        ] {
            assert_eq!(Undo::after(stage, true), None, "{stage:?}");
            assert_eq!(Undo::after(stage, false), None, "{stage:?}");
        }
    }

    fn product(
        id: Uuid,
        title: &str,
        amount: i64,
        currency: &str,
        on_sale: bool,
    ) -> catalog::Product {
        catalog::Product {
            id: id.to_string(),
            title: title.into(),
            seller_id: Uuid::now_v7().to_string(),
            price: Some(catalog::Money {
                amount,
                currency: currency.into(),
            }),
            on_sale,
        }
    }

    #[test]
    fn pricing_sums_lines_in_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let answer = catalog::GetProductsResponse {
            products: vec![
                product(b, "Mug", 450, "EUR", true),
                product(a, "Teapot", 1250, "EUR", true),
            ],
            missing: vec![],
        };
        let priced = price(&Lines::of(&[(a, 2), (b, 3)]), &answer).unwrap();
        assert_eq!(priced.total.amount, 2 * 1250 + 3 * 450);
        assert_eq!(priced.total.currency, "EUR");
        assert_eq!(priced.lines[0].title, "Teapot");
        assert_eq!(priced.lines[1].product_id, b);
    }

    #[test]
    fn pricing_refuses_unknown_deleted_and_mixed_currencies() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let missing = catalog::GetProductsResponse {
            products: vec![product(a, "Teapot", 1250, "EUR", true)],
            missing: vec![b.to_string()],
        };
        let cancel = price(&Lines::of(&[(a, 1), (b, 1)]), &missing).unwrap_err();
        assert_eq!(cancel.code, CancelCode::UnknownProduct);
        assert!(cancel.reason.contains(&b.to_string()), "{}", cancel.reason);

        let deleted = catalog::GetProductsResponse {
            products: vec![
                product(a, "Teapot", 1250, "EUR", false),
                product(b, "Mug", 450, "EUR", true),
            ],
            missing: vec![],
        };
        let cancel = price(&Lines::of(&[(a, 1), (b, 1)]), &deleted).unwrap_err();
        assert_eq!(cancel.code, CancelCode::NotOnSale);
        assert!(cancel.reason.contains("Teapot"), "{}", cancel.reason);

        let mixed = catalog::GetProductsResponse {
            products: vec![
                product(a, "Teapot", 1250, "EUR", true),
                product(b, "Mug", 450, "USD", true),
            ],
            missing: vec![],
        };
        let cancel = price(&Lines::of(&[(a, 1), (b, 1)]), &mixed).unwrap_err();
        assert_eq!(cancel.code, CancelCode::CurrencyMismatch);
        assert!(cancel.reason.contains("EUR, USD"), "{}", cancel.reason);

        let unpriced = catalog::GetProductsResponse {
            products: vec![catalog::Product {
                price: None,
                ..product(a, "Teapot", 1, "EUR", true)
            }],
            missing: vec![],
        };
        let cancel = price(&Lines::of(&[(a, 1)]), &unpriced).unwrap_err();
        assert_eq!(cancel.code, CancelCode::NotOnSale);
        let huge = catalog::GetProductsResponse {
            products: vec![product(a, "Gold", i64::MAX / 2, "EUR", true)],
            missing: vec![],
        };
        assert_eq!(
            price(&Lines::of(&[(a, 3)]), &huge).unwrap_err().code,
            CancelCode::NotOnSale
        );
    }

    #[test]
    fn out_of_stock_names_titles() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let titles = HashMap::from([(a, "Teapot".to_owned())]);
        let cancel = out_of_stock(
            &[
                Shortage {
                    product_id: a,
                    requested: 2,
                    available: 1,
                },
                Shortage {
                    product_id: b,
                    requested: 1,
                    available: 0,
                },
            ],
            &titles,
        );
        assert_eq!(cancel.code, CancelCode::OutOfStock);
        assert_eq!(
            cancel.reason,
            format!(
                "Out of stock: only 1 of \u{201c}Teapot\u{201d} left (2 asked); {b} is sold out."
            )
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(120)), "2 min");
        assert_eq!(human(Duration::from_secs(90)), "90 s");
        assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    }
}
