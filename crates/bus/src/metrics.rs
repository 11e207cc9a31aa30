//! Counters of the event path, registered into the service's `/metrics`.
//! Labels are topics and consumer groups: a handful per service.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

/// The backbone's metrics. Cheap to clone; clones count together.
#[derive(Clone, Debug, Default)]
pub struct BusMetrics {
    published: Family<TopicLabel, Counter>,
    delivered: Family<GroupLabel, Counter>,
    acked: Family<GroupLabel, Counter>,
    redelivered: Family<GroupLabel, Counter>,
    duplicates: Family<GroupLabel, Counter>,
    dead_lettered: Family<GroupLabel, Counter>,
    lag: Family<GroupLabel, Gauge>,
}

impl BusMetrics {
    /// Adds every family to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "events_published",
            "Events published from the outbox",
            self.published.clone(),
        );
        registry.register(
            "events_delivered",
            "Deliveries received by a consumer group",
            self.delivered.clone(),
        );
        registry.register(
            "events_acked",
            "Deliveries acked after the handler committed",
            self.acked.clone(),
        );
        registry.register(
            "events_redelivered",
            "Deliveries that were not the first attempt",
            self.redelivered.clone(),
        );
        registry.register(
            "events_duplicates",
            "Redelivered events already in the inbox, acked and ignored",
            self.duplicates.clone(),
        );
        registry.register(
            "events_dead_lettered",
            "Events moved to the dead-letter topic",
            self.dead_lettered.clone(),
        );
        registry.register(
            "events_consumer_lag",
            "Events of a group's topics not yet acked",
            self.lag.clone(),
        );
    }

    fn group(group: &str) -> GroupLabel {
        GroupLabel {
            group: group.to_owned(),
        }
    }

    pub(crate) fn published(&self, topic: &str) {
        self.published
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc();
    }
    pub(crate) fn delivered(&self, group: &str, attempt: u32) {
        self.delivered.get_or_create(&Self::group(group)).inc();
        if attempt > 1 {
            self.redelivered.get_or_create(&Self::group(group)).inc();
        }
    }
    pub(crate) fn acked(&self, group: &str) {
        self.acked.get_or_create(&Self::group(group)).inc();
    }
    pub(crate) fn duplicate(&self, group: &str) {
        self.duplicates.get_or_create(&Self::group(group)).inc();
    }
    pub(crate) fn dead_lettered(&self, group: &str) {
        self.dead_lettered.get_or_create(&Self::group(group)).inc();
    }
    pub(crate) fn set_lag(&self, group: &str, lag: u64) {
        self.lag
            .get_or_create(&Self::group(group))
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
}
