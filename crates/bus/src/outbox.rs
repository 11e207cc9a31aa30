//! The transactional outbox: an event is written in the same database
//! transaction as the state change it announces, and published afterwards
//! by the [`Relay`]. A crash between commit and publish loses nothing (the
//! row is still there); a crash between publish and delete publishes it
//! again, which the consumers' inboxes absorb.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::metrics::BusMetrics;
use crate::schema::now_millis;
use crate::{Broker, BusError, Envelope, Event};

/// Appends `event` about `subject` to the outbox inside `tx`; it is
/// published only if `tx` commits. Returns the envelope as it will travel.
pub async fn append<E: Event>(
    tx: &mut Transaction<'_, Any>,
    service: &str,
    subject: Option<&str>,
    event: &E,
) -> Result<Envelope, BusError> {
    let envelope = Envelope::new(service, subject, event)?;
    append_envelope(tx, &envelope).await?;
    Ok(envelope)
}

/// Appends a ready-made envelope (e.g. with its `traceparent` set) inside `tx`.
pub async fn append_envelope(
    tx: &mut Transaction<'_, Any>,
    envelope: &Envelope,
) -> Result<(), BusError> {
    let body =
        String::from_utf8(envelope.to_json()).map_err(|e| BusError::Unavailable(e.to_string()))?;
    sqlx::query("INSERT INTO bazaar_outbox (id, topic, body) VALUES ($1, $2, $3)")
        .bind(&envelope.id)
        .bind(&envelope.topic)
        .bind(body)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Rows published per round.
    pub batch: i64,
    /// How often an empty outbox is looked at. A commit in this process
    /// wakes the relay at once ([`Relay::waker`]); the poll finds what
    /// other replicas committed while this one holds the lease, and takes
    /// the lease over when its holder died.
    pub idle_poll: Duration,
    /// How long the relay's lease lasts without renewal; another replica
    /// takes over after it expires.
    pub lease: Duration,
    /// Longest pause between tries while the broker is down.
    pub max_backoff: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch: 256,
            idle_poll: Duration::from_millis(50),
            lease: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Publishes a service's outbox, in order, one relay per service at a time.
pub struct Relay {
    pool: AnyPool,
    broker: Arc<dyn Broker>,
    holder: String,
    options: RelayOptions,
    wake: Arc<Notify>,
    metrics: BusMetrics,
    /// Until when this relay holds the lease (ms since the epoch), as last written.
    held_until: AtomicI64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay of the outbox in `pool` to `broker`.
    pub fn new(
        pool: AnyPool,
        broker: Arc<dyn Broker>,
        metrics: BusMetrics,
        options: RelayOptions,
    ) -> Self {
        Self {
            pool,
            broker,
            holder: Uuid::now_v7().to_string(),
            options,
            wake: Arc::new(Notify::new()),
            metrics,
            held_until: AtomicI64::new(0),
        }
    }

    /// A handle that wakes the relay at once (call it after a commit that
    /// appended events; without it the relay finds them on its next poll).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Relays until `shutdown` resolves, then makes one last pass so what
    /// was committed before shutdown is not left waiting for the next start.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let full = usize::try_from(self.options.batch).unwrap_or(usize::MAX);
        let retry = Backoff::new(Duration::from_millis(50), self.options.max_backoff);
        let mut backoff = retry.base;
        loop {
            let wait = match self.round().await {
                // A full batch: more may be waiting.
                Ok(n) if n >= full => {
                    backoff = retry.base;
                    Duration::ZERO
                }
                // Drained: sleep until a commit rings or the next poll.
                // (Looking again at once, or soon, would cost a query per
                // look and find nothing: each commit here rings anyway.)
                Ok(_) => {
                    backoff = retry.base;
                    self.options.idle_poll
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in = ?backoff, "outbox relay cannot publish; events stay in the outbox");
                    let b = backoff;
                    backoff = retry.after(backoff);
                    b
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // One last pass; a broker that is down keeps the rest for next time.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.round()).await;
    }

    /// Publishes one batch; returns how many events went out.
    pub async fn round(&self) -> Result<usize, BusError> {
        // Reading first keeps an idle relay from writing at every poll.
        let rows = sqlx::query("SELECT seq, body FROM bazaar_outbox ORDER BY seq LIMIT $1")
            .bind(self.options.batch)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() || !self.hold_lease().await? {
            return Ok(0);
        }
        let mut published = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in &rows {
            let seq: i64 = row.get(0);
            let body: String = row.get(1);
            let envelope = match Envelope::from_json(body.as_bytes()) {
                Ok(e) => e,
                Err(error) => {
                    // Cannot happen for rows we wrote; never block the outbox on one.
                    tracing::error!(seq, error = %error, "dropping an unreadable outbox row");
                    published.push(seq);
                    continue;
                }
            };
            match self.broker.publish(&envelope).await {
                Ok(()) => {
                    self.metrics.published(&envelope.topic);
                    published.push(seq);
                }
                Err(error) => {
                    // Stop here: publishing later rows first would reorder.
                    failure = Some(error);
                    break;
                }
            }
        }
        if !published.is_empty() {
            let list = published
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // Integers we read ourselves: safe to inline.
            sqlx::query(&format!("DELETE FROM bazaar_outbox WHERE seq IN ({list})"))
                .execute(&self.pool)
                .await?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(published.len()),
        }
    }

    /// Takes or renews the relay lease; `false` while another replica holds it.
    async fn hold_lease(&self) -> Result<bool, BusError> {
        let now = now_millis();
        let lease = i64::try_from(self.options.lease.as_millis()).unwrap_or(10_000);
        let held_until = self.held_until.load(Ordering::Relaxed);
        if held_until - now > lease / 2 {
            return Ok(true);
        }
        let until = now + lease;
        let taken = sqlx::query(
            "INSERT INTO bazaar_outbox_lease (name, holder, expires_at) VALUES ('relay', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE bazaar_outbox_lease.holder = excluded.holder OR bazaar_outbox_lease.expires_at < $3",
        )
        .bind(&self.holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        self.held_until
            .store(if taken == 1 { until } else { 0 }, Ordering::Relaxed);
        Ok(taken == 1)
    }

    /// Events committed but not yet published.
    pub async fn pending(&self) -> Result<u64, BusError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM bazaar_outbox")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
