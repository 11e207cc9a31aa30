//! The broker contract both adapters implement: a durable, at-least-once
//! log of events with consumer groups.
//!
//! * `publish` returns only once the event is stored durably.
//! * A consumer group sees every event of its topics published since the
//!   beginning of the log (a new group replays history), each delivered to
//!   one of the group's consumers at a time (competing consumers).
//! * A delivery not acked (nacked, or its consumer died) comes again, with
//!   `attempt` counting up. Dead-lettering is decided above the broker, by
//!   the subscription runtime, so both adapters behave the same.

use std::time::Duration;

use async_trait::async_trait;

use crate::{BusError, Envelope};

/// A durable event log with consumer groups.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Stores one event durably.
    async fn publish(&self, event: &Envelope) -> Result<(), BusError>;

    /// Joins consumer group `group` over `topics`, creating it (positioned
    /// at the beginning of the log) on first use. Every consumer of a group
    /// must name the same topics.
    async fn consume(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>, BusError>;

    /// Events of the group's topics not yet acked by the group.
    async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError>;

    /// Whether the broker is reachable now.
    async fn ping(&self) -> Result<(), BusError>;

    /// A short name for logs and metrics: `embedded` or `nats`.
    fn kind(&self) -> &'static str;
}

/// One member of a consumer group.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery, or `None` if nothing arrived within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError>;
}

/// Settles one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Done: never deliver it to this group again.
    async fn ack(&self) -> Result<(), BusError>;
    /// Not done: deliver it again after `delay`.
    async fn nack(&self, delay: Duration) -> Result<(), BusError>;
}

/// One event handed to one consumer.
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// 1 on the first delivery to this group, 2 on the first redelivery, ...
    pub attempt: u32,
    /// Settles it.
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.envelope.id)
            .field("topic", &self.envelope.topic)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
