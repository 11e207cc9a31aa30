//! The CloudEvents 1.0 envelope every event travels in, and the [`Event`]
//! trait that makes payloads typed, versioned contracts.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::BusError;

/// A payload type: a versioned contract between producer and consumers.
///
/// The topic is `<service>.<entity>.<verb>`; a change that old consumers
/// cannot read gets a new `VERSION` (and, while both live, a new type).
pub trait Event: Serialize + DeserializeOwned {
    /// Topic (CloudEvents `type`), e.g. `catalog.product.created`.
    const TOPIC: &'static str;
    /// Version of the payload's shape.
    const VERSION: u32;
}

/// One event, as CloudEvents 1.0 structured JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique id (UUIDv7); consumers deduplicate on it.
    pub id: String,
    /// Who produced it, e.g. `/bazaar/catalog`.
    pub source: String,
    /// The topic, e.g. `catalog.product.created`.
    #[serde(rename = "type")]
    pub topic: String,
    /// When it happened (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The entity it is about (its id); events of one subject keep their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// Names the payload contract and its version.
    pub dataschema: String,
    /// W3C trace context of the request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The payload.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Wraps `event` from `service`, about `subject`.
    pub fn new<E: Event>(
        service: &str,
        subject: Option<&str>,
        event: &E,
    ) -> Result<Self, BusError> {
        validate_topic(E::TOPIC)?;
        Ok(Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7().to_string(),
            source: format!("/bazaar/{service}"),
            topic: E::TOPIC.into(),
            time: OffsetDateTime::now_utc(),
            subject: subject.map(str::to_owned),
            datacontenttype: "application/json".into(),
            dataschema: schema(E::TOPIC, E::VERSION),
            traceparent: None,
            data: serde_json::to_value(event).map_err(BusError::Encode)?,
        })
    }

    /// The payload as `E`, if this envelope carries that contract.
    pub fn decode<E: Event>(&self) -> Result<E, BusError> {
        if self.topic != E::TOPIC || self.dataschema != schema(E::TOPIC, E::VERSION) {
            return Err(BusError::WrongContract {
                expected: schema(E::TOPIC, E::VERSION),
                found: self.dataschema.clone(),
            });
        }
        serde_json::from_value(self.data.clone()).map_err(BusError::Decode)
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and a JSON value always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an envelope from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BusError> {
        serde_json::from_slice(bytes).map_err(BusError::Decode)
    }
}

fn schema(topic: &str, version: u32) -> String {
    format!("urn:bazaar:event:{topic}:v{version}")
}

/// A topic is `<service>.<entity>.<verb>`: lower-case words of letters,
/// digits, `-` and `_`, separated by dots (at least three parts).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    let parts: Vec<&str> = topic.split('.').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(BusError::BadTopic(topic.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Created {
        id: String,
    }
    impl Event for Created {
        const TOPIC: &'static str = "catalog.product.created";
        const VERSION: u32 = 1;
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct CreatedV2 {
        id: String,
    }
    impl Event for CreatedV2 {
        const TOPIC: &'static str = "catalog.product.created";
        const VERSION: u32 = 2;
    }

    #[test]
    fn round_trips_as_cloudevents_json() {
        let e = Envelope::new("catalog", Some("p1"), &Created { id: "p1".into() }).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "catalog.product.created");
        assert_eq!(json["source"], "/bazaar/catalog");
        assert_eq!(json["subject"], "p1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
        let back = Envelope::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.decode::<Created>().unwrap(),
            Created { id: "p1".into() }
        );
    }

    #[test]
    fn versions_are_checked() {
        let e = Envelope::new("catalog", None, &Created { id: "p1".into() }).unwrap();
        assert!(matches!(
            e.decode::<CreatedV2>(),
            Err(BusError::WrongContract { .. })
        ));
    }

    #[test]
    fn topics_have_three_lower_case_parts() {
        assert!(validate_topic("orders.order.confirmed").is_ok());
        assert!(validate_topic("deadletter.notifications.orders").is_ok());
        for bad in ["orders.confirmed", "Orders.order.x", "a..b", "a.b.c d", ""] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
    }
}
