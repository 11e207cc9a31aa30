//! Notifications' own metrics, beside the platform's per-route and event
//! ones. Labels are a few fixed words, never a user id.

use std::sync::atomic::AtomicU64;

use bazaar_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The metrics notifications keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotificationMetrics {
    /// `notifications_created_total{kind}`: notifications stored (by any
    /// replica, counted by the one that stored it).
    created: Family<[(&'static str, &'static str); 1], Counter>,
    /// `notifications_pushed_total`: notifications handed to streams here.
    pushed: Counter<u64, AtomicU64>,
    /// `notifications_streams`: streams open on this replica now.
    streams: Gauge,
    /// `notifications_mail_total{outcome}`: `sent`, `retried`, `failed`.
    mail: Family<[(&'static str, &'static str); 1], Counter>,
}

impl NotificationMetrics {
    /// New metrics, registered with the service's registry.
    pub(crate) fn registered(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "notifications_created",
            "Notifications stored, by kind",
            this.created.clone(),
        );
        metrics.register(
            "notifications_pushed",
            "Notifications handed to the streams open on this instance",
            this.pushed.clone(),
        );
        metrics.register(
            "notifications_streams",
            "Notification streams open on this instance",
            this.streams.clone(),
        );
        metrics.register(
            "notifications_mail",
            "E-mail sends by outcome: sent, retried, failed",
            this.mail.clone(),
        );
        this
    }

    /// One notification of `kind` stored.
    pub(crate) fn created(&self, kind: crate::domain::Kind) {
        self.created.get_or_create(&[("kind", kind.as_str())]).inc();
    }

    /// `n` streams got a notification.
    pub(crate) fn pushed(&self, n: usize) {
        self.pushed.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// A stream opened; the guard closes it.
    pub(crate) fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }

    /// One e-mail send ended with `outcome`.
    pub(crate) fn mail(&self, outcome: &'static str) {
        self.mail.get_or_create(&[("outcome", outcome)]).inc();
    }
}

/// Counts one open stream while it lives.
#[derive(Debug)]
pub(crate) struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
