//! Payments' own metrics, beside the platform's per-route ones: what each
//! call did, which a gRPC status alone does not tell (a decline and an
//! approval both answer OK; a replay and a first call look alike).

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// What a call came to; a few fixed words, never an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Money moved (or was held): the state changed.
    Ok,
    /// The processor refused the card.
    Declined,
    /// The call was answered from what an earlier one recorded.
    Repeated,
    /// The processor failed transiently; nothing recorded.
    Unavailable,
    /// Not allowed now: no payment, another state or another amount.
    Refused,
    /// The request was malformed.
    Invalid,
    /// Our side failed (database, outbox).
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Declined => "declined",
            Self::Repeated => "repeated",
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// The counters payments keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct PaymentsMetrics {
    /// `payments_operations_total{op, outcome}`: `op` is `authorize`,
    /// `capture`, `void` or `refund`; `outcome` one of [`Outcome`]'s words.
    operations: Family<[(&'static str, &'static str); 2], Counter>,
}

impl PaymentsMetrics {
    /// New counters, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "payments_operations",
            "Payment operations (authorize, capture, void, refund) by what they came to",
            this.operations.clone(),
        );
        this
    }

    /// Counts one `op` that came to `outcome`.
    pub(crate) fn operation(&self, op: &'static str, outcome: Outcome) {
        self.operations
            .get_or_create(&[("op", op), ("outcome", outcome.as_str())])
            .inc();
    }
}
