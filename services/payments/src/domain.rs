//! Values that can only be built valid. The card types (the payments
//! contract's, in `bazaar_proto::payments::card`) hold the number and the
//! CVC only in memory, on the way to the processor: their `Debug` shows the
//! last four digits and nothing else.

/// An amount of money in minor units (cents): at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// `n` minor units, if `n` is at least 1.
    pub fn new(n: i64) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    /// The number of minor units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// `code`, if it is three upper-case ASCII letters.
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_uppercase)
            .then_some(Self(bytes))
    }

    /// The code, e.g. `EUR`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters get in.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

/// An amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Minor units.
    pub amount: Amount,
    /// Its currency.
    pub currency: Currency,
}

/// Card details and what makes them well-formed: the payments contract's
/// rule, which orders checks with too.
pub use bazaar_proto::payments::card::{Card, CardError, CardNumber, Cvc, Expiry};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The amount is held on the card.
    Authorized,
    /// The held amount was taken.
    Captured,
    /// The hold was let go.
    Voided,
    /// The captured amount was given back.
    Refunded,
    /// The processor refused the card.
    Declined,
}

impl State {
    /// The word stored, published and shown over REST.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
            Self::Declined => "declined",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorized" => Self::Authorized,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "refunded" => Self::Refunded,
            "declined" => Self::Declined,
            _ => return None,
        })
    }
}

/// Why the processor refused a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    /// The issuer said no.
    CardDeclined,
    /// Not enough money on the account.
    InsufficientFunds,
    /// Expired, or a number that fails the Luhn check.
    InvalidCard,
}

impl DeclineReason {
    /// The word stored and published.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
            Self::InvalidCard => "invalid_card",
        }
    }

    /// The reason named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "card_declined" => Self::CardDeclined,
            "insufficient_funds" => Self::InsufficientFunds,
            "invalid_card" => Self::InvalidCard,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_currencies() {
        assert!(Amount::new(0).is_none());
        assert!(Amount::new(-5).is_none());
        assert_eq!(Amount::new(1).map(Amount::get), Some(1));
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(Currency::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn states_and_reasons_round_trip() {
        for s in [
            State::Authorized,
            State::Captured,
            State::Voided,
            State::Refunded,
            State::Declined,
        ] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for r in [
            DeclineReason::CardDeclined,
            DeclineReason::InsufficientFunds,
            DeclineReason::InvalidCard,
        ] {
            assert_eq!(DeclineReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(State::parse("pending"), None);
        assert_eq!(DeclineReason::parse("stolen"), None);
    }
}
