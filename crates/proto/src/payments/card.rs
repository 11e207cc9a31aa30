//! What a well-formed card is: the one rule, part of the payments contract.
//! Orders checks a buyer's card with it before it accepts an order (so a
//! typo is a 422, not a cancelled order), payments checks every `Authorize`
//! with it; neither keeps a copy.
//!
//! The types hold the number and the CVC only in memory: their `Debug`
//! shows the last four digits and nothing else, and they have no
//! `Display`, no `Serialize` and no way back to text besides
//! [`CardNumber::last4`] and the `expose` calls the wire needs.
//!
//! Well-formed is not valid: a number failing the Luhn check or a card past
//! its expiry month is the processor's decline, not a malformed request.

use std::fmt;

use super::v1;

/// Which part of card details is malformed. The messages never repeat what
/// was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardError {
    /// Not 12 to 19 digits (spaces between them allowed).
    Number,
    /// A month outside 1..=12.
    Month,
    /// Not a four-digit year.
    Year,
    /// Not 3 or 4 digits.
    Cvc,
}

impl CardError {
    /// The malformed field, as the wire's `Card` names it.
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
            Self::Month => "must be a month from 1 to 12",
            Self::Year => "must be a four-digit year",
            Self::Cvc => "must be 3 or 4 digits",
        }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field(), self.message())
    }
}

impl std::error::Error for CardError {}

/// A card number: 12 to 19 ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// `raw`, if it is 12 to 19 ASCII digits and nothing else (the wire's
    /// form).
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

    /// A number as a person types it: the spaces between groups dropped,
    /// then [`CardNumber::parse`].
    ///
    /// # Errors
    /// [`CardError::Number`] when what is left is not a card number.
    pub fn typed(raw: &str) -> Result<Self, CardError> {
        Self::parse(&raw.replace(' ', ""))
    }

    /// The last four digits: all of the number that is ever kept or shown.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// Whether the check digit is right (the Luhn algorithm).
    pub fn passes_luhn(&self) -> bool {
        let mut sum = 0_u32;
        for (i, b) in self.0.bytes().rev().enumerate() {
            let mut d = u32::from(b - b'0');
            if i % 2 == 1 {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
        }
        sum.is_multiple_of(10)
    }

    /// Whether this is the number `digits` (how a processor recognises its
    /// test cards without the number leaving this type).
    pub fn is(&self, digits: &str) -> bool {
        self.0 == digits
    }

    /// The digits, for the wire and the row that holds a card until it is
    /// authorized.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

/// The last month a card can be used in: month 1 to 12 of a four-digit
/// year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    year: u16,
    month: u8,
}

impl Expiry {
    /// Both parts checked.
    ///
    /// # Errors
    /// The month's error first, then the year's.
    pub fn new(month: i64, year: i64) -> Result<Self, CardError> {
        Ok(Self {
            month: Self::month_of(month)?,
            year: Self::year_of(year)?,
        })
    }

    /// `month` if it is 1 to 12 (for callers that name every bad part).
    ///
    /// # Errors
    /// [`CardError::Month`] otherwise.
    pub fn month_of(month: i64) -> Result<u8, CardError> {
        u8::try_from(month)
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or(CardError::Month)
    }

    /// `year` if it has four digits.
    ///
    /// # Errors
    /// [`CardError::Year`] otherwise.
    pub fn year_of(year: i64) -> Result<u16, CardError> {
        u16::try_from(year)
            .ok()
            .filter(|y| (1000..=9999).contains(y))
            .ok_or(CardError::Year)
    }

    /// 1 to 12.
    pub fn month(self) -> u32 {
        u32::from(self.month)
    }

    /// Four digits.
    pub fn year(self) -> u32 {
        u32::from(self.year)
    }

    /// Whether the card can no longer be used in `month` of `year` (it is
    /// good through the whole of its expiry month).
    pub fn is_past(self, year: i32, month: u8) -> bool {
        (i32::from(self.year), self.month) < (year, month)
    }
}

/// A card's security code: 3 or 4 digits. Shown by `Debug` as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    /// `raw`, if it is 3 or 4 ASCII digits and nothing else.
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

    /// The digits, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(***)")
    }
}

/// Card details, well-formed.
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
    /// Every malformed part of a wire `Card`, in field order; the card when
    /// there is none.
    ///
    /// # Errors
    /// Each malformed part, once.
    pub fn from_wire(card: &v1::Card) -> Result<Self, Vec<CardError>> {
        let number = CardNumber::parse(&card.number);
        let month = Expiry::month_of(i64::from(card.exp_month));
        let year = Expiry::year_of(i64::from(card.exp_year));
        let cvc = Cvc::parse(&card.cvc);
        match (number, month, year, cvc) {
            (Ok(number), Ok(month), Ok(year), Ok(cvc)) => Ok(Self {
                number,
                expiry: Expiry { year, month },
                cvc,
            }),
            (number, month, year, cvc) => Err([number.err(), month.err(), year.err(), cvc.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }

    /// The wire `Card` of these details.
    pub fn to_wire(&self) -> v1::Card {
        v1::Card {
            number: self.number.expose().to_owned(),
            exp_month: self.expiry.month(),
            exp_year: self.expiry.year(),
            cvc: self.cvc.expose().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_12_to_19_digits_and_typed_ones_may_have_spaces() {
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
        let n = CardNumber::typed("4242 4242 4242 4242").unwrap();
        assert_eq!(n.expose(), "4242424242424242");
        assert_eq!(n.last4(), "4242");
        assert_eq!(format!("{n:?}"), "CardNumber(****4242)");
        assert_eq!(
            CardNumber::typed("4242-4242-4242-4242"),
            Err(CardError::Number)
        );
    }

    #[test]
    fn luhn_accepts_good_numbers_and_refuses_bad_ones() {
        for good in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "4000000000000119",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "0000000000000",
        ] {
            assert!(CardNumber::parse(good).unwrap().passes_luhn(), "{good}");
        }
        for bad in ["4242424242424241", "4000000000000003", "1234567890123"] {
            assert!(!CardNumber::parse(bad).unwrap().passes_luhn(), "{bad}");
        }
    }

    #[test]
    fn expiry_is_a_month_of_a_four_digit_year() {
        let e = Expiry::new(12, 2030).unwrap();
        assert_eq!((e.month(), e.year()), (12, 2030));
        assert_eq!(Expiry::new(13, 2030), Err(CardError::Month));
        assert_eq!(Expiry::new(0, 2030), Err(CardError::Month));
        assert_eq!(Expiry::new(12, 30), Err(CardError::Year));
        assert_eq!(Expiry::new(12, 10_000), Err(CardError::Year));
        assert!(e.is_past(2031, 1));
        assert!(!e.is_past(2030, 12));
    }

    #[test]
    fn cvcs_are_three_or_four_digits_and_never_shown() {
        assert!(Cvc::parse("123").is_ok());
        assert_eq!(Cvc::parse("1234").unwrap().expose(), "1234");
        for bad in ["", "12", "12345", " 123"] {
            assert_eq!(Cvc::parse(bad), Err(CardError::Cvc), "{bad:?}");
        }
        assert_eq!(Cvc::parse("12a"), Err(CardError::Cvc));
        assert_eq!(format!("{:?}", Cvc::parse("987").unwrap()), "Cvc(***)");
    }

    #[test]
    fn a_wire_card_names_every_bad_part_and_goes_back_unchanged() {
        let wire = v1::Card {
            number: "4242".into(),
            exp_month: 13,
            exp_year: 30,
            cvc: "12".into(),
        };
        assert_eq!(
            Card::from_wire(&wire),
            Err(vec![
                CardError::Number,
                CardError::Month,
                CardError::Year,
                CardError::Cvc
            ])
        );
        let wire = v1::Card {
            number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
        };
        let card = Card::from_wire(&wire).unwrap();
        assert_eq!(card.to_wire(), wire);
        let shown = format!("{card:?}");
        assert!(
            !shown.contains("424242424242") && !shown.contains("123"),
            "{shown}"
        );
    }
}
