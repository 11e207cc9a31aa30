//! Identity's domain types: values that can only exist valid. The wire
//! layer (`http.rs`, events) turns raw input into these, or a 422 naming the
//! field; everything past it works with these and cannot meet a bad value.

use std::fmt;

/// Longest e-mail address accepted: RFC 5321's limit on a forward path.
const EMAIL_MAX: usize = 254;
/// Longest local part (before `@`), RFC 5321.
const LOCAL_MAX: usize = 64;
/// Longest domain label, RFC 1035.
const LABEL_MAX: usize = 63;

/// Password length bounds, in characters. The upper bound keeps hashing
/// bounded per request, not a policy on what people choose.
pub const PASSWORD_MIN: usize = 8;
/// See [`PASSWORD_MIN`].
pub const PASSWORD_MAX: usize = 1024;
/// Longest display name, in characters.
pub const NAME_MAX: usize = 100;

/// An e-mail address, normalised: trimmed and lower-case, so one mailbox is
/// one account however it is typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why a value is refused; the text is what the client reads for the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(&'static str);

impl Invalid {
    /// What is wrong, for the client.
    pub fn message(&self) -> &'static str {
        self.0
    }
}

impl Email {
    /// Normalises `raw` and checks that it looks like an address a mail
    /// server would deliver to: `local@domain.tld`, no spaces, no quoting,
    /// at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(Invalid("is required"));
        }
        if email.chars().count() > EMAIL_MAX {
            return Err(Invalid("is longer than 254 characters"));
        }
        let bad = Invalid("is not a valid e-mail address");
        let (local, domain) = email.rsplit_once('@').ok_or(bad.clone())?;
        // Quoted local parts and comments are legal but never what a person
        // signing up means; refusing them keeps one spelling per mailbox.
        let local_ok = !local.is_empty()
            && local.chars().count() <= LOCAL_MAX
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@\"(),:;<>[\\]".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.chars().count() <= LABEL_MAX
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            // A top-level domain is never all digits (that is an IP address).
            && labels
                .last()
                .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(bad)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An address read back from the database, where only parsed ones are
    /// written.
    pub(crate) fn from_stored(stored: String) -> Self {
        Self(stored)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 1024 characters, taken as typed (no trimming: the
/// spaces are part of it). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length of a password chosen at registration.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN {
            Err(Invalid("must be at least 8 characters long"))
        } else if n > PASSWORD_MAX {
            Err(Invalid("must be at most 1024 characters long"))
        } else {
            Ok(Self(raw))
        }
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A display name: 1 to 100 characters after trimming, no control
/// characters (they would corrupt e-mails and logs that show it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Trims `raw` and checks it.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("must not be blank"));
        }
        if name.chars().count() > NAME_MAX {
            return Err(Invalid("must be at most 100 characters long"));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid("must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name read back from the database, where only parsed ones are
    /// written.
    pub(crate) fn from_stored(stored: String) -> Self {
        Self(stored)
    }
}

/// What an account may do (one definition for every service). `Admin`
/// exists but is never self-service.
pub use bazaar_platform::auth::Role;

/// The role someone may pick when registering: `customer` or `seller`.
pub fn self_service_role(raw: &str) -> Result<Role, Invalid> {
    match Role::parse(raw) {
        Some(role @ (Role::Customer | Role::Seller)) => Ok(role),
        _ => Err(Invalid("must be \"customer\" or \"seller\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let e = Email::parse("  Ann.Lee+shop@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "ann.lee+shop@example.com");
        assert_eq!(e, Email::parse("ann.lee+shop@example.com").unwrap());
    }

    #[test]
    fn sane_addresses_pass() {
        for ok in [
            "a@b.co",
            "first.last@sub.example.org",
            "o'brien@example.ie",
            "x_y-z@my-host.example",
            "ünïcode@bücher.de",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn broken_addresses_are_refused() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "ann@",
            "ann@localhost",
            "ann@@example.com",
            "ann@exa mple.com",
            "an n@example.com",
            ".ann@example.com",
            "ann.@example.com",
            "a..nn@example.com",
            "ann@-example.com",
            "ann@example-.com",
            "ann@example..com",
            "ann@example.com.",
            "ann@127.0.0.1",
            "\"ann\"@example.com",
            "ann@[127.0.0.1]",
            "ann\u{0}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_at_most_254_characters() {
        let local = "a".repeat(64);
        let domain = format!(
            "{}.com",
            ["b".repeat(63), "c".repeat(63), "d".repeat(57)].join(".")
        );
        let exactly = format!("{local}@{domain}");
        assert_eq!(exactly.len(), 254);
        assert!(Email::parse(&exactly).is_ok());
        let over = format!("{local}@ee.{domain}");
        assert_eq!(
            Email::parse(&over).unwrap_err().message(),
            "is longer than 254 characters"
        );
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords_have_8_to_1024_characters_and_are_not_printed() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // Characters, not bytes: eight of these are 16 bytes but 8 chars.
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("ééééééé".into()).is_err());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
        let p = Password::parse(" spaces count ".into()).unwrap();
        assert_eq!(p.expose(), " spaces count ");
        assert!(!format!("{p:?}").contains("spaces"));
    }

    #[test]
    fn names_are_trimmed_non_blank_and_bounded() {
        assert_eq!(Name::parse("  Ann Lee ").unwrap().as_str(), "Ann Lee");
        assert!(Name::parse("").is_err());
        assert!(Name::parse(" \t ").is_err());
        assert!(Name::parse(&"n".repeat(100)).is_ok());
        assert!(Name::parse(&"n".repeat(101)).is_err());
        assert!(Name::parse("Ann\u{7}").is_err());
    }

    #[test]
    fn only_customer_and_seller_are_self_service() {
        assert_eq!(self_service_role("customer"), Ok(Role::Customer));
        assert_eq!(self_service_role("seller"), Ok(Role::Seller));
        for bad in ["admin", "Admin", "SELLER", "", "root"] {
            assert!(self_service_role(bad).is_err(), "{bad}");
        }
        assert_eq!(Role::default(), Role::Customer);
        for role in [Role::Customer, Role::Seller, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
