//! Inventory's own metrics, beside the platform's per-route ones: what
//! happens to reservations, which gRPC status codes alone do not tell
//! (an expiry answers no call at all).

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The counters inventory keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct InventoryMetrics {
    /// `inventory_reservations_total{outcome}`: `reserved`, `out_of_stock`,
    /// `unknown_product`, `committed`, `released`, `expired`. Repeated calls
    /// that change nothing are not counted. Outcomes are a few fixed words,
    /// never an id.
    reservations: Family<[(&'static str, &'static str); 1], Counter>,
}

impl InventoryMetrics {
    /// New counters, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "inventory_reservations",
            "Reservations by what happened to them",
            this.reservations.clone(),
        );
        this
    }

    /// Counts one reservation `outcome`.
    pub(crate) fn reservation(&self, outcome: &'static str) {
        self.reservations
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }
}
