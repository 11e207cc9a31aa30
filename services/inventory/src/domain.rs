//! Values that can only be built valid.

use std::collections::BTreeMap;

use uuid::Uuid;

/// A number of units asked for: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// `n` units, if `n` is at least 1.
    pub fn new(n: i64) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A number of units on hand: 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnHand(i64);

impl OnHand {
    /// `n` units, if `n` is not negative.
    pub fn new(n: i64) -> Option<Self> {
        (n >= 0).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// What an order asks for: one quantity per product, sorted by product id
/// (so every transaction locks stock rows in the same order), never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(BTreeMap<Uuid, Quantity>);

/// Why an order's items are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// No items at all.
    #[error("an order reserves at least one item")]
    Empty,
    /// A product id that is not a UUID.
    #[error("items[{0}].product_id is not a UUID")]
    Product(usize),
    /// A quantity under 1 (or a sum too large).
    #[error("items[{0}].quantity must be 1 or more")]
    Quantity(usize),
}

impl Lines {
    /// Items as `(product_id, quantity)`; the same product twice counts as
    /// their sum.
    pub fn parse<'a>(items: impl IntoIterator<Item = (&'a str, i64)>) -> Result<Self, LinesError> {
        let mut lines: BTreeMap<Uuid, Quantity> = BTreeMap::new();
        for (i, (product, quantity)) in items.into_iter().enumerate() {
            let product = Uuid::parse_str(product).map_err(|_| LinesError::Product(i))?;
            let quantity = Quantity::new(quantity).ok_or(LinesError::Quantity(i))?;
            let sum = match lines.get(&product) {
                Some(before) => before
                    .get()
                    .checked_add(quantity.get())
                    .and_then(Quantity::new)
                    .ok_or(LinesError::Quantity(i))?,
                None => quantity,
            };
            lines.insert(product, sum);
        }
        if lines.is_empty() {
            return Err(LinesError::Empty);
        }
        Ok(Self(lines))
    }

    /// Lines as they are stored, already valid.
    pub(crate) fn from_stored(lines: BTreeMap<Uuid, Quantity>) -> Self {
        Self(lines)
    }

    /// Each product and its quantity, by product id.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, Quantity)> + '_ {
        self.0.iter().map(|(p, q)| (*p, *q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_positive() {
        assert!(Quantity::new(0).is_none());
        assert!(Quantity::new(-3).is_none());
        assert_eq!(Quantity::new(2).map(Quantity::get), Some(2));
        assert!(OnHand::new(-1).is_none());
        assert_eq!(OnHand::new(0).map(OnHand::get), Some(0));
    }

    #[test]
    fn lines_merge_duplicates_and_sort() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (a_text, b_text) = (a.to_string(), b.to_string());
        let lines = Lines::parse([
            (b_text.as_str(), 1),
            (a_text.as_str(), 2),
            (b_text.as_str(), 3),
        ])
        .unwrap();
        let got: Vec<(Uuid, i64)> = lines.iter().map(|(p, q)| (p, q.get())).collect();
        assert_eq!(got, vec![(a, 2), (b, 4)]);
    }

    #[test]
    fn bad_lines_name_the_item() {
        let a = Uuid::now_v7().to_string();
        assert_eq!(Lines::parse([]), Err(LinesError::Empty));
        assert_eq!(
            Lines::parse([(a.as_str(), 1), ("nope", 1)]),
            Err(LinesError::Product(1))
        );
        assert_eq!(
            Lines::parse([(a.as_str(), 0)]),
            Err(LinesError::Quantity(0))
        );
        assert_eq!(
            Lines::parse([(a.as_str(), i64::MAX), (a.as_str(), 1)]),
            Err(LinesError::Quantity(1))
        );
    }
}
