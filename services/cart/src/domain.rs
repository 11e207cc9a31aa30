//! Values that can only be built valid.

use std::collections::BTreeMap;

use uuid::Uuid;

/// The most distinct products (lines) one cart holds.
pub const MAX_LINES: usize = 50;

/// How many units of a product a cart line holds: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

impl Quantity {
    /// The fewest units a line holds.
    pub const MIN: i64 = 1;
    /// The most units a line holds.
    pub const MAX: i64 = 99;

    /// `n` units, if `n` is from [`Self::MIN`] to [`Self::MAX`].
    pub fn new(n: i64) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&n).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// One line of a cart: a product and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Line {
    /// The product (the cart does not check that it exists; orders does).
    pub product_id: Uuid,
    /// How many.
    pub quantity: Quantity,
}

impl Line {
    /// `quantity` units of `product_id`.
    pub fn new(product_id: Uuid, quantity: Quantity) -> Self {
        Self {
            product_id,
            quantity,
        }
    }
}

/// What an order took from a cart: for each product, the most units whose
/// line may be removed (a line holding more was changed after the order
/// read it, and stays). Sorted by product id, so stores touch rows in one
/// order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken(BTreeMap<Uuid, i64>);

/// Why the items of a `ClearCart` are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakenError {
    /// No items at all.
    #[error("no items")]
    Empty,
    /// A product id that is not a UUID.
    #[error("only_items[{0}].product_id is not a UUID")]
    Product(usize),
    /// A quantity outside 1..=99.
    #[error("only_items[{0}].quantity must be from 1 to 99")]
    Quantity(usize),
}

impl Taken {
    /// Items as `(product_id, quantity)`; the same product twice counts as
    /// their sum.
    ///
    /// # Errors
    /// The first item that is not valid, or no items.
    pub fn parse<'a>(items: impl IntoIterator<Item = (&'a str, i64)>) -> Result<Self, TakenError> {
        let mut taken: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (i, (product, quantity)) in items.into_iter().enumerate() {
            let product = Uuid::parse_str(product).map_err(|_| TakenError::Product(i))?;
            let quantity = Quantity::new(quantity).ok_or(TakenError::Quantity(i))?;
            *taken.entry(product).or_default() += quantity.get();
        }
        if taken.is_empty() {
            return Err(TakenError::Empty);
        }
        Ok(Self(taken))
    }

    /// Each product and the most units of it whose line goes, by product id.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, i64)> + '_ {
        self.0.iter().map(|(p, q)| (*p, *q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_1_to_99() {
        assert!(Quantity::new(0).is_none());
        assert!(Quantity::new(-1).is_none());
        assert!(Quantity::new(100).is_none());
        assert_eq!(Quantity::new(1).map(Quantity::get), Some(1));
        assert_eq!(Quantity::new(99).map(Quantity::get), Some(99));
    }

    #[test]
    fn taken_merges_duplicates_and_sorts() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (a_text, b_text) = (a.to_string(), b.to_string());
        let taken = Taken::parse([
            (b_text.as_str(), 99),
            (a_text.as_str(), 2),
            (b_text.as_str(), 3),
        ])
        .unwrap();
        assert_eq!(taken.iter().collect::<Vec<_>>(), vec![(a, 2), (b, 102)]);
    }

    #[test]
    fn bad_taken_items_name_the_item() {
        let a = Uuid::now_v7().to_string();
        assert_eq!(Taken::parse([]), Err(TakenError::Empty));
        assert_eq!(
            Taken::parse([(a.as_str(), 1), ("nope", 1)]),
            Err(TakenError::Product(1))
        );
        assert_eq!(
            Taken::parse([(a.as_str(), 0)]),
            Err(TakenError::Quantity(0))
        );
        assert_eq!(
            Taken::parse([(a.as_str(), 100)]),
            Err(TakenError::Quantity(0))
        );
    }
}
