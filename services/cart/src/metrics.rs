//! Cart's own metrics, beside the platform's per-route ones: what is done
//! to carts, whichever side asked (REST or gRPC).

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The counters the cart service keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct CartMetrics {
    /// `cart_operations_total{op, outcome}`: op is `get`, `put`, `remove`,
    /// `clear` or `clear_items`; outcome is `ok`, `full` (a put refused
    /// because the cart holds 50 lines) or `failed` (the store failed).
    /// A few fixed words, never an id.
    operations: Family<[(&'static str, &'static str); 2], Counter>,
}

impl CartMetrics {
    /// New counters, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "cart_operations",
            "Operations on carts by what was done and how it ended",
            this.operations.clone(),
        );
        this
    }

    /// Counts one `op` that ended with `outcome`.
    pub(crate) fn count(&self, op: &'static str, outcome: &'static str) {
        self.operations
            .get_or_create(&[("op", op), ("outcome", outcome)])
            .inc();
    }
}
