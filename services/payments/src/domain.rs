//! Values that can only be built valid. The card types hold the number and
//! the CVC only in memory, on the way to the processor: their `Debug` shows
//! the last four digits and nothing else, and they have no `Display`, no
//! `Serialize` and no way back to text besides [`CardNumber::last4`].

use std::fmt;

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

/// Why card details are malformed (the caller must fix them; a card that is
/// well-formed but invalid is a decline, not this). The messages never
/// repeat what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} {}", self.field(), self.message())]
pub enum CardError {
    /// Not 12 to 19 ASCII digits.
    Number,
    /// A month outside 1..=12.
    Month,
    /// A year with more than four digits.
    Year,
    /// Not 3 or 4 ASCII digits.
    Cvc,
}

impl CardError {
    /// The malformed field, as named in the request.
    pub fn field(self) -> &'static str {
        match self {
            Self::Number => "card.number",
            Self::Month => "card.exp_month",
            Self::Year => "card.exp_year",
            Self::Cvc => "card.cvc",
        }
    }

    /// What is wrong with it.
    pub fn message(self) -> &'static str {
        match self {
            Self::Number => "must be 12 to 19 digits",
            Self::Month => "must be 1 to 12",
            Self::Year => "must be a year like 2030 (or 30)",
            Self::Cvc => "must be 3 or 4 digits",
        }
    }
}

/// A card number: 12 to 19 digits. Not necessarily a valid one; see
/// [`CardNumber::passes_luhn`].
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// `raw`, if it is 12 to 19 ASCII digits (no spaces or dashes).
    ///
    /// # Errors
    /// [`CardError::Number`] otherwise.
    pub fn parse(raw: &str) -> Result<Self, CardError> {
        if (12..=19).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CardError::Number)
        }
    }

    /// The last four digits: all of the number that is ever kept or shown.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// Whether the number's check digit is right (the Luhn algorithm).
    pub fn passes_luhn(&self) -> bool {
        luhn(&self.0)
    }

    /// Whether this is the number `digits` (how the processor recognises
    /// its test cards, without the number leaving this type).
    pub fn is(&self, digits: &str) -> bool {
        self.0 == digits
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

/// The Luhn check of a string of ASCII digits.
fn luhn(digits: &str) -> bool {
    let mut sum = 0_u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A card's security code: 3 or 4 digits. Shown by `Debug` as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    /// `raw`, if it is 3 or 4 ASCII digits.
    ///
    /// # Errors
    /// [`CardError::Cvc`] otherwise.
    pub fn parse(raw: &str) -> Result<Self, CardError> {
        if (3..=4).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CardError::Cvc)
        }
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(***)")
    }
}

/// The last month a card can be used in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    /// The year, four digits.
    year: u16,
    /// 1 to 12.
    month: u8,
}

impl Expiry {
    /// Month 1..=12 of `year`; a year under 100 is read as 20YY, as printed
    /// on cards.
    ///
    /// # Errors
    /// A month outside 1..=12 or a year of more than four digits.
    pub fn new(month: u32, year: u32) -> Result<Self, CardError> {
        let month = u8::try_from(month)
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or(CardError::Month)?;
        let year = match year {
            0..=99 => 2000 + year,
            100..=9999 => year,
            _ => return Err(CardError::Year),
        };
        let year = u16::try_from(year).map_err(|_| CardError::Year)?;
        Ok(Self { year, month })
    }

    /// Whether the card can no longer be used in `month` of `year` (it is
    /// good through the whole of its expiry month).
    pub fn is_past(self, year: i32, month: u8) -> bool {
        (i32::from(self.year), self.month) < (year, month)
    }
}

/// Card details as the buyer gave them, valid in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The number; `Debug` shows its last four digits only.
    pub number: CardNumber,
    /// Good through this month.
    pub expiry: Expiry,
    /// The security code; `Debug` hides it.
    pub cvc: Cvc,
}

impl Card {
    /// Card details from their parts.
    ///
    /// # Errors
    /// The first malformed part.
    pub fn parse(
        number: &str,
        exp_month: u32,
        exp_year: u32,
        cvc: &str,
    ) -> Result<Self, CardError> {
        Ok(Self {
            number: CardNumber::parse(number)?,
            expiry: Expiry::new(exp_month, exp_year)?,
            cvc: Cvc::parse(cvc)?,
        })
    }
}

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

    const TEST_CARDS: [&str; 4] = [
        "4242424242424242",
        "4000000000000002",
        "4000000000009995",
        "4000000000000119",
    ];

    #[test]
    fn luhn_accepts_good_numbers_and_refuses_bad_ones() {
        for good in
            TEST_CARDS
                .iter()
                .chain(&["5555555555554444", "378282246310005", "6011111111111117"])
        {
            assert!(CardNumber::parse(good).unwrap().passes_luhn(), "{good}");
        }
        for bad in ["4242424242424241", "4000000000000003", "1234567890123"] {
            assert!(!CardNumber::parse(bad).unwrap().passes_luhn(), "{bad}");
        }
        assert!(!luhn(""));
        assert!(!luhn("42a2"));
        assert!(luhn("0000000000000"));
    }

    #[test]
    fn numbers_are_12_to_19_digits() {
        assert!(CardNumber::parse("424242424242").is_ok());
        assert!(CardNumber::parse("4242424242424242424").is_ok());
        for bad in [
            "",
            "42424242424",
            "42424242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "424242424242424x",
            "４２４２４２４２４２４２",
        ] {
            assert_eq!(CardNumber::parse(bad), Err(CardError::Number), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_only_the_last_four_digits() {
        let card = Card::parse("4242424242424242", 12, 2030, "123").unwrap();
        assert_eq!(card.number.last4(), "4242");
        let shown = format!("{card:?} {:?} {card:#?}", card.number);
        assert!(!shown.contains("4242424242424242"), "{shown}");
        assert!(!shown.contains("424242424242"), "{shown}");
        assert!(!shown.contains("123"), "{shown}");
        assert!(shown.contains("****4242"), "{shown}");
        assert!(shown.contains("Cvc(***)"), "{shown}");
    }

    #[test]
    fn card_parts_are_checked() {
        assert_eq!(
            Card::parse("4242424242424242", 0, 2030, "123"),
            Err(CardError::Month)
        );
        assert_eq!(
            Card::parse("4242424242424242", 13, 2030, "123"),
            Err(CardError::Month)
        );
        assert_eq!(
            Card::parse("4242424242424242", 12, 10_000, "123"),
            Err(CardError::Year)
        );
        for cvc in ["", "12", "12345", "12a", " 123"] {
            assert_eq!(
                Card::parse("4242424242424242", 12, 2030, cvc),
                Err(CardError::Cvc),
                "{cvc:?}"
            );
        }
        assert!(Card::parse("4242424242424242", 1, 2030, "1234").is_ok());
        // None of the messages repeats what was sent.
        for e in [
            CardError::Number,
            CardError::Month,
            CardError::Year,
            CardError::Cvc,
        ] {
            assert!(!e.to_string().contains("4242"));
        }
    }

    #[test]
    fn cards_are_good_through_their_expiry_month() {
        let expiry = Expiry::new(6, 2030).unwrap();
        assert!(!expiry.is_past(2030, 6));
        assert!(!expiry.is_past(2029, 12));
        assert!(expiry.is_past(2030, 7));
        assert!(expiry.is_past(2031, 1));
        assert_eq!(
            Expiry::new(6, 30).unwrap(),
            expiry,
            "two-digit years are 20YY"
        );
    }

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
