//! gRPC contracts of Bazaar: Rust types and tonic clients/servers generated
//! from the `.proto` files under `proto/`, one module per package.

/// Contracts served by the platform runtime in every service.
pub mod platform {
    /// Version 1 of the platform contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.platform.v1");
    }
}

/// Stock reservations, served by the inventory service.
pub mod inventory {
    /// Version 1 of the inventory contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.inventory.v1");
    }
}

/// Products as orders sees them, served by the catalog service.
pub mod catalog {
    /// Version 1 of the catalog contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.catalog.v1");
    }
}

/// A customer's cart as orders sees it, served by the cart service.
pub mod cart {
    /// Version 1 of the cart contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.cart.v1");
    }
}

/// Card payments for orders, served by the payments service.
pub mod payments {
    pub mod card;

    /// Version 1 of the payments contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.payments.v1");

        /// Only the last four digits: a card must never reach a log line
        /// whole, even through the `Debug` of a request that carries it.
        impl std::fmt::Debug for Card {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let digits: Vec<char> = self.number.chars().filter(char::is_ascii_digit).collect();
                let last4: String = digits[digits.len().saturating_sub(4)..].iter().collect();
                f.debug_struct("Card")
                    .field("number", &format_args!("****{last4}"))
                    .field("exp_month", &self.exp_month)
                    .field("exp_year", &self.exp_year)
                    .field("cvc", &"***")
                    .finish()
            }
        }

        #[cfg(test)]
        mod tests {
            #[test]
            fn a_card_debugs_as_its_last_four_digits() {
                let card = super::Card {
                    number: "4242424242424242".into(),
                    exp_month: 12,
                    exp_year: 2030,
                    cvc: "123".into(),
                };
                let request = super::AuthorizeRequest {
                    card: Some(card),
                    ..Default::default()
                };
                let shown = format!("{request:?}");
                assert!(shown.contains("****4242"), "{shown}");
                assert!(!shown.contains("424242424242"), "{shown}");
                assert!(!shown.contains("123"), "{shown}");
            }
        }
    }
}
