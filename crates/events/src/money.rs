//! Money as every service carries it: whole minor units of an ISO 4217
//! currency, never a float, and one way to write it for people.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money: integer minor units and an ISO 4217 code. What is
/// a valid price or charge is the owning service's rule (catalog's prices,
/// payments' amounts); this is the value they pass around.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217, upper case.
    pub currency: String,
}

impl Money {
    /// `amount` minor units of `currency`.
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }
}

/// Digits after the decimal point in `currency`'s minor unit: 0 for the
/// currencies the marketplace accepts that have none (JPY, KRW), else 2.
pub fn minor_digits(currency: &str) -> u32 {
    if matches!(currency, "JPY" | "KRW") {
        0
    } else {
        2
    }
}

impl fmt::Display for Money {
    /// `59.97 EUR`, `-1.99 EUR`, `1200 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        match minor_digits(&self.currency) {
            0 => write!(f, "{sign}{abs} {}", self.currency),
            _ => write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_with_the_currencys_minor_digits() {
        let m = |amount, currency: &str| Money::new(amount, currency).to_string();
        assert_eq!(m(5997, "EUR"), "59.97 EUR");
        assert_eq!(m(5, "USD"), "0.05 USD");
        assert_eq!(m(-199, "EUR"), "-1.99 EUR");
        assert_eq!(m(1200, "JPY"), "1200 JPY");
        assert_eq!(m(1200, "KRW"), "1200 KRW");
    }

    #[test]
    fn the_wire_shape_is_amount_and_currency() {
        let json = serde_json::to_value(Money::new(250, "EUR")).unwrap();
        assert_eq!(json, serde_json::json!({"amount": 250, "currency": "EUR"}));
    }
}
