//! Bazaar's event backbone: services react to each other's events without
//! ever losing one, and without a redelivery changing anything.
//!
//! * [`Envelope`] — CloudEvents 1.0 JSON with a `traceparent` extension;
//!   payloads are typed, versioned [`Event`]s.
//! * [`outbox`] — a producer appends events in the same database
//!   transaction as its state change; a [`outbox::Relay`] publishes them.
//! * [`subscription`] — a consumer records each handled event id in its
//!   inbox in the same transaction as the handler's writes; redeliveries are
//!   acked and ignored; poison events go to a dead-letter topic.
//! * [`Broker`] — two adapters, one contract: [`embedded::EmbeddedLog`]
//!   (a SQLite file shared by local processes) and [`nats::NatsBroker`]
//!   (NATS JetStream).

pub mod backoff;
pub mod broker;
pub mod clock;
pub mod embedded;
pub mod envelope;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod schema;
pub mod subscription;

pub use broker::{Acker, Broker, Consumer, Delivery};
pub use envelope::{Envelope, Event};

/// What can go wrong on the event path.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The topic is not `<service>.<entity>.<verb>`.
    #[error("invalid topic {0:?}: expected <service>.<entity>.<verb> in lower case")]
    BadTopic(String),
    /// A payload could not be encoded.
    #[error("cannot encode the event: {0}")]
    Encode(#[source] serde_json::Error),
    /// A payload or envelope could not be decoded.
    #[error("cannot decode the event: {0}")]
    Decode(#[source] serde_json::Error),
    /// The envelope carries another contract than the one asked for.
    #[error("event contract mismatch: expected {expected}, found {found}")]
    WrongContract {
        /// The contract asked for.
        expected: String,
        /// The contract carried.
        found: String,
    },
    /// The database (outbox, inbox or embedded log) failed.
    #[error("event storage failed: {0}")]
    Db(#[from] sqlx::Error),
    /// The broker is unreachable or refused.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}
