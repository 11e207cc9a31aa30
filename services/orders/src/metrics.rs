//! Orders' own metrics, beside the platform's per-route ones: how sagas
//! end and how long they take. Labels are a few fixed words, never an id.

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The metrics orders keeps.
#[derive(Debug, Clone)]
pub(crate) struct OrdersMetrics {
    /// `orders_sagas_total{outcome}`: `confirmed`, or the cancel reason
    /// code (`out_of_stock`, `card_declined`, …, `timed_out`). Counted by
    /// the process that ended the saga.
    sagas: Family<[(&'static str, &'static str); 1], Counter>,
    /// `orders_saga_duration_seconds`: from acceptance to the end.
    duration: Histogram,
}

impl OrdersMetrics {
    /// New metrics, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self {
            sagas: Family::default(),
            // 50 ms … ~7 min.
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
        };
        metrics.register(
            "orders_sagas",
            "Checkout sagas ended, by outcome (confirmed or the cancel reason code)",
            this.sagas.clone(),
        );
        metrics.register(
            "orders_saga_duration_seconds",
            "Time from an order's acceptance to its saga's end",
            this.duration.clone(),
        );
        this
    }

    /// Counts a saga that ended with `outcome`, `seconds` after acceptance.
    pub(crate) fn ended(&self, outcome: &'static str, seconds: f64) {
        self.sagas.get_or_create(&[("outcome", outcome)]).inc();
        self.duration.observe(seconds.max(0.0));
    }
}
