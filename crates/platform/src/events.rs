//! The event backbone as a service sees it: append events to the outbox in
//! its own transactions, subscribe handlers to topics. The broker — the
//! embedded log or NATS JetStream — is configuration, not code.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_bus::embedded::EmbeddedLog;
use bazaar_bus::metrics::BusMetrics;
use bazaar_bus::nats::NatsBroker;
use bazaar_bus::subscription::Handler;
use bazaar_bus::{Broker, BusError, Envelope, Event};
use sqlx::{Any, Transaction};
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::Config;

pub use bazaar_bus::subscription::Subscription;

/// Opens the configured broker: NATS JetStream when `BAZAAR_NATS_URL` is
/// set, else the embedded log at `BAZAAR_EVENT_LOG`.
pub async fn connect(config: &Config) -> Result<Arc<dyn Broker>, BusError> {
    open(config.nats_url.as_ref(), &config.event_log).await
}

/// Opens NATS JetStream at `nats` (`nats://host:port[/STREAM]`, the stream
/// `BAZAAR` by default) or, without it, the embedded log file `event_log`:
/// what a service connects to, and what `bazaar events` reads.
pub async fn open(
    nats: Option<&url::Url>,
    event_log: &std::path::Path,
) -> Result<Arc<dyn Broker>, BusError> {
    match nats {
        Some(url) => {
            let stream = crate::config::nats_stream(url);
            let mut server = url.clone();
            server.set_path("");
            let broker =
                NatsBroker::connect(server.as_str().trim_end_matches('/'), &stream).await?;
            Ok(Arc::new(broker))
        }
        None => Ok(Arc::new(EmbeddedLog::open(event_log).await?)),
    }
}

/// A service's handle on its outbox.
#[derive(Clone)]
pub struct Events {
    service: String,
    wake: Arc<Notify>,
    broker: Arc<dyn Broker>,
    metrics: BusMetrics,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("service", &self.service)
            .field("broker", &self.broker.kind())
            .finish_non_exhaustive()
    }
}

impl Events {
    pub(crate) fn new(service: &str, broker: Arc<dyn Broker>, metrics: BusMetrics) -> Self {
        Self {
            service: service.to_owned(),
            wake: Arc::new(Notify::new()),
            broker,
            metrics,
        }
    }

    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn metrics(&self) -> &BusMetrics {
        &self.metrics
    }

    /// The broker (for readiness, lag and tests).
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Appends `event` about `subject` to the outbox inside `tx`: it is
    /// published if and only if `tx` commits. Call [`Events::committed`]
    /// after the commit to publish without waiting for the next poll.
    pub async fn append<E: Event>(
        &self,
        tx: &mut Transaction<'_, Any>,
        subject: Option<&str>,
        event: &E,
    ) -> Result<Envelope, BusError> {
        let mut envelope = Envelope::new(&self.service, subject, event)?;
        envelope.traceparent = crate::telemetry::traceparent_of(&tracing::Span::current());
        bazaar_bus::outbox::append_envelope(tx, &envelope).await?;
        Ok(envelope)
    }

    /// Wakes the relay: a transaction with events just committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}

/// Runs a handler inside a span whose parent is the trace of the request
/// that caused the event, so one trace follows it across services.
pub(crate) struct Traced(pub(crate) Arc<dyn Handler>);

#[async_trait]
impl Handler for Traced {
    async fn handle(&self, tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()> {
        let span = tracing::info_span!(
            "handle event",
            topic = %event.topic,
            event_id = %event.id,
            trace_id = tracing::field::Empty,
        );
        if let Some(parent) = &event.traceparent {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(parent) {
                headers.insert("traceparent", value);
                let _ = span.set_parent(crate::telemetry::extract_http(&headers));
            }
        }
        span.record("trace_id", crate::telemetry::trace_id(&span));
        self.0.handle(tx, event).instrument(span).await
    }
}
