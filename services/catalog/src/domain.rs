//! The catalog's values that can only be built valid: titles,
//! descriptions, currencies and prices, and the search query (which any
//! string turns into, safely).

/// Why a value was refused; the message names the rule, for a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(&'static str);

impl Invalid {
    /// The rule that was broken, as a client reads it.
    pub fn message(&self) -> &'static str {
        self.0
    }
}

/// The longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// The longest description, in characters.
pub const DESCRIPTION_MAX: usize = 5000;
/// The largest stock a product can start with.
pub const INITIAL_STOCK_MAX: i64 = 1_000_000;
/// The largest price, in minor units (a safe margin below `i64::MAX`, so
/// totals of many items cannot overflow downstream).
pub const AMOUNT_MAX: i64 = 100_000_000_000;

/// A product title: trimmed, 1 to [`TITLE_MAX`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let title = raw.trim();
        if title.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if title.chars().count() > TITLE_MAX {
            return Err(Invalid("must be at most 200 characters"));
        }
        if title.chars().any(char::is_control) {
            return Err(Invalid("must not contain control characters"));
        }
        Ok(Self(title.to_owned()))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product description: trimmed, at most [`DESCRIPTION_MAX`] characters
/// (may be empty); line breaks and tabs allowed, other control characters
/// not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        if text.chars().count() > DESCRIPTION_MAX {
            return Err(Invalid("must be at most 5000 characters"));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Invalid("must not contain control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The ISO 4217 currencies the marketplace accepts.
pub const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "JPY",
    "KRW", "MXN", "NOK", "NZD", "PLN", "RON", "SEK", "SGD", "TRY", "USD", "ZAR",
];

/// An ISO 4217 currency code from [`CURRENCIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(&'static str);

impl Currency {
    /// Accepts a known code, upper-case as ISO writes it.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        CURRENCIES
            .iter()
            .find(|c| **c == raw)
            .map(|c| Self(c))
            .ok_or(Invalid(
                "must be an ISO 4217 code the marketplace accepts, upper-case (e.g. EUR, USD, GBP)",
            ))
    }

    /// The code.
    pub fn code(self) -> &'static str {
        self.0
    }
}

/// A price: a positive amount in minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Minor units (cents), 1 to [`AMOUNT_MAX`].
    pub amount: i64,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// Checks the amount; the currency is valid already.
    pub fn new(amount: i64, currency: Currency) -> Result<Self, Invalid> {
        if amount <= 0 {
            return Err(Invalid("must be a positive number of minor units (cents)"));
        }
        if amount > AMOUNT_MAX {
            return Err(Invalid("is too large"));
        }
        Ok(Self { amount, currency })
    }
}

/// Checks a starting stock: 0 to [`INITIAL_STOCK_MAX`].
pub fn initial_stock(units: i64) -> Result<i64, Invalid> {
    if (0..=INITIAL_STOCK_MAX).contains(&units) {
        Ok(units)
    } else {
        Err(Invalid("must be between 0 and 1000000"))
    }
}

/// The words of a search, from whatever a client typed. Any string is
/// accepted: only runs of letters and digits survive (at most
/// [`SearchTerms::MAX_WORDS`] of them, each at most 64 characters), so
/// neither engine ever sees syntax from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    /// The most words a search uses; the rest are ignored.
    pub const MAX_WORDS: usize = 16;

    /// The words of `raw`; `None` when it has none (no search at all).
    pub fn parse(raw: &str) -> Option<Self> {
        let words: Vec<String> = raw
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(Self::MAX_WORDS)
            .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
            .collect();
        (!words.is_empty()).then_some(Self(words))
    }

    /// An FTS5 query: every word a quoted prefix phrase (`"lap"*`), all
    /// required. Quoting makes FTS5 operators (`NEAR`, `OR`, `*`, `:`) plain
    /// words; the words hold no quotes to escape.
    pub fn fts5(&self) -> String {
        self.0
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Plain words for PostgreSQL's `plainto_tsquery` (all required).
    pub fn plain(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Kettle ").unwrap().as_str(), "Kettle");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse("a\u{0}b").is_err());
    }

    #[test]
    fn descriptions_may_be_empty_and_have_lines() {
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        assert!(Description::parse("one\ntwo\tthree").is_ok());
        assert!(Description::parse("bell\u{7}").is_err());
        assert!(Description::parse(&"x".repeat(5001)).is_err());
    }

    #[test]
    fn only_known_upper_case_currencies() {
        assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
        for bad in ["eur", "XXX", "EURO", "", "ABC"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prices_are_positive() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::new(1, eur).is_ok());
        assert!(Money::new(0, eur).is_err());
        assert!(Money::new(-5, eur).is_err());
        assert!(Money::new(AMOUNT_MAX + 1, eur).is_err());
    }

    #[test]
    fn stock_starts_at_zero_or_more() {
        assert_eq!(initial_stock(0), Ok(0));
        assert!(initial_stock(-1).is_err());
        assert!(initial_stock(INITIAL_STOCK_MAX + 1).is_err());
    }

    #[test]
    fn any_string_becomes_safe_words() {
        assert_eq!(SearchTerms::parse(""), None);
        assert_eq!(SearchTerms::parse("\"'); --  * NEAR("), {
            Some(SearchTerms(vec!["near".into()]))
        });
        let terms = SearchTerms::parse("Red  lap-top\"").unwrap();
        assert_eq!(terms.fts5(), "\"red\"* \"lap\"* \"top\"*");
        assert_eq!(terms.plain(), "red lap top");
        let many = "w ".repeat(100);
        assert_eq!(
            SearchTerms::parse(&many).unwrap().0.len(),
            SearchTerms::MAX_WORDS
        );
    }
}
