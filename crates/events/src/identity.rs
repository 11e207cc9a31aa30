//! What the identity service announces: a user registered, a user started or
//! stopped following a seller.

use bazaar_bus::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An account's role: the one definition, used by tokens (through
/// `bazaar_platform::auth`), identity's accounts and these events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Buys; the default.
    #[default]
    Customer,
    /// Sells (and can buy).
    Seller,
    /// Operates the marketplace; never self-registered.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 3] = [Self::Customer, Self::Seller, Self::Admin];

    /// The role's name, as tokens, events and databases carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Seller => "seller",
            Self::Admin => "admin",
        }
    }

    /// The role named `name` (exactly as [`Role::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `identity.user.registered`: a new account exists. The subject is the
/// user's id. Notifications sends the welcome from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// The new user's id (UUIDv7).
    pub user_id: Uuid,
    /// The e-mail address, normalised (trimmed, lower-case).
    pub email: String,
    /// The display name.
    pub name: String,
    /// The role chosen at registration.
    pub role: Role,
}

impl Event for UserRegistered {
    const TOPIC: &'static str = "identity.user.registered";
    const VERSION: u32 = 1;
}

/// `identity.seller.followed`: `follower_id` now follows `seller_id`. The
/// subject is the seller's id, so one seller's follows stay in order.
/// Announced only when the follow is new, not on a repeated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerFollowed {
    /// The user who follows.
    pub follower_id: Uuid,
    /// The seller followed.
    pub seller_id: Uuid,
}

impl Event for SellerFollowed {
    const TOPIC: &'static str = "identity.seller.followed";
    const VERSION: u32 = 1;
}

/// `identity.seller.unfollowed`: `follower_id` no longer follows
/// `seller_id`. The subject is the seller's id. Announced only when a
/// follow was actually removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerUnfollowed {
    /// The user who stopped following.
    pub follower_id: Uuid,
    /// The seller no longer followed.
    pub seller_id: Uuid,
}

impl Event for SellerUnfollowed {
    const TOPIC: &'static str = "identity.seller.unfollowed";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use bazaar_bus::Envelope;
    use serde_json::json;

    use super::*;

    #[test]
    fn topics_are_valid_and_distinct() {
        let topics = [
            UserRegistered::TOPIC,
            SellerFollowed::TOPIC,
            SellerUnfollowed::TOPIC,
        ];
        for topic in topics {
            assert!(
                bazaar_bus::envelope::validate_topic(topic).is_ok(),
                "{topic}"
            );
            assert!(topic.starts_with("identity."), "{topic}");
        }
        assert_eq!(
            topics.len(),
            topics
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
    }

    /// The JSON is the contract: consumers in other languages or versions
    /// read exactly these fields.
    #[test]
    fn user_registered_has_its_documented_shape() {
        let id = Uuid::now_v7();
        let event = UserRegistered {
            user_id: id,
            email: "ann@example.com".into(),
            name: "Ann".into(),
            role: Role::Seller,
        };
        let envelope = Envelope::new("identity", Some(&id.to_string()), &event).unwrap();
        assert_eq!(
            envelope.data,
            json!({"user_id": id.to_string(), "email": "ann@example.com", "name": "Ann", "role": "seller"})
        );
        assert_eq!(
            envelope.dataschema,
            "urn:bazaar:event:identity.user.registered:v1"
        );
        assert_eq!(envelope.decode::<UserRegistered>().unwrap(), event);
    }

    #[test]
    fn follows_have_their_documented_shape() {
        let (follower, seller) = (Uuid::now_v7(), Uuid::now_v7());
        let followed = SellerFollowed {
            follower_id: follower,
            seller_id: seller,
        };
        let envelope = Envelope::new("identity", None, &followed).unwrap();
        assert_eq!(
            envelope.data,
            json!({"follower_id": follower.to_string(), "seller_id": seller.to_string()})
        );
        assert_eq!(envelope.decode::<SellerFollowed>().unwrap(), followed);
        // Same fields, another contract: one cannot be read as the other.
        assert!(envelope.decode::<SellerUnfollowed>().is_err());
    }

    #[test]
    fn unknown_roles_are_refused() {
        assert!(serde_json::from_value::<Role>(json!("root")).is_err());
        assert_eq!(
            serde_json::from_value::<Role>(json!("customer")).unwrap(),
            Role::Customer
        );
    }
}
