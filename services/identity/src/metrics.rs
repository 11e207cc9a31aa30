//! Identity's own metrics, beside the platform's per-route ones: outcomes
//! that matter for security and are invisible in status codes alone (a
//! replayed refresh token answers 401 like any unknown one).

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// A counter per outcome; outcomes are a few fixed words, never an id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcomes(Family<[(&'static str, &'static str); 1], Counter>);

impl Outcomes {
    pub(crate) fn inc(&self, outcome: &'static str) {
        self.0.get_or_create(&[("outcome", outcome)]).inc();
    }
}

/// The counters identity keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityMetrics {
    /// `identity_sign_ins_total{outcome="ok"|"refused"|"throttled"}`.
    pub(crate) sign_ins: Outcomes,
    /// `identity_refreshes_total{outcome="rotated"|"replayed"|"refused"}`;
    /// `replayed` means a refresh token was stolen or leaked.
    pub(crate) refreshes: Outcomes,
}

impl IdentityMetrics {
    /// New counters, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "identity_sign_ins",
            "Sign-ins by outcome",
            this.sign_ins.0.clone(),
        );
        metrics.register(
            "identity_refreshes",
            "Refresh-token redemptions by outcome; replayed ones revoked their sign-in",
            this.refreshes.0.clone(),
        );
        this
    }
}
