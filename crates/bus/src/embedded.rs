//! The embedded broker: a durable log in one SQLite file that every local
//! process opens (WAL mode, so readers never block the writer).
//!
//! * `events` is the log itself, in publish order (`seq`).
//! * `groups` holds each consumer group's topics and its position: the
//!   highest `seq` already copied into its work queue.
//! * `work` is a group's queue of events not yet acked: a consumer claims a
//!   batch by leasing rows; an ack deletes the row; a nack or an expired
//!   lease (the consumer died) makes it claimable again, counting attempts.
//!
//! Claims run in `BEGIN IMMEDIATE` transactions, so competing consumers in
//! different processes never take the same row. Consumers poll, backing off
//! while idle; a publish in the same process wakes them at once.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;

use crate::schema::now_millis;
use crate::{Acker, Broker, BusError, Consumer, Delivery, Envelope};

/// How long a claimed event stays leased to its consumer before another
/// member of the group may take it (the consumer is presumed dead).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Events claimed at once by one consumer.
const BATCH: i64 = 32;
/// Polling interval when events keep coming, and its ceiling when idle.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(50);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    id    TEXT NOT NULL,
    topic TEXT NOT NULL,
    body  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_topic ON events (topic, seq);
CREATE TABLE IF NOT EXISTS groups (
    name     TEXT PRIMARY KEY,
    topics   TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS work (
    grp          TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    lease_until  INTEGER,
    PRIMARY KEY (grp, seq)
);
";

/// A durable event log in a SQLite file, shared by local processes.
#[derive(Clone, Debug)]
pub struct EmbeddedLog {
    pool: SqlitePool,
    published: Arc<Notify>,
    lease: Duration,
}

impl EmbeddedLog {
    /// Opens (creating if missing) the log at `path`.
    pub async fn open(path: &Path) -> Result<Self, BusError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                BusError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // One connection: the file takes one writer at a time, and this
        // process's claims, publishes and acks queue here for it rather than
        // in SQLite's busy handler, which sleeps 1, 2, 5, 10 … ms between
        // tries (other processes still meet there). A connection to a local
        // file does not go stale: no ping before each use.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self {
            pool,
            published: Arc::new(Notify::new()),
            lease: DEFAULT_LEASE,
        })
    }

    /// Changes how long a claim is held before it is presumed abandoned.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    async fn ensure_group(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        let topics_json = serde_json::to_string(&sorted(topics)).map_err(BusError::Encode)?;
        sqlx::query("INSERT INTO groups (name, topics, position) VALUES ($1, $2, 0) ON CONFLICT (name) DO UPDATE SET topics = excluded.topics")
            .bind(group)
            .bind(&topics_json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Copies new events of the group's topics into its queue, then leases
    /// up to `BATCH` claimable rows to the caller.
    async fn claim(&self, group: &str, topics: &[String]) -> Result<Vec<Delivery>, BusError> {
        let now = now_millis();
        // Cheap read first, one statement: most polls find nothing and must
        // not take the write lock every process shares. New events count
        // only when they are of the group's topics (other groups' traffic
        // does not make this one take the lock).
        let topic_list = placeholders(3, topics.len());
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM events WHERE topic IN ({topic_list}) \
             AND seq > (SELECT position FROM groups WHERE name = $1)) \
             OR EXISTS (SELECT 1 FROM work WHERE grp = $1 AND available_at <= $2 \
             AND (lease_until IS NULL OR lease_until < $2))"
        );
        let mut check = sqlx::query(&sql).bind(group).bind(now);
        for t in topics {
            check = check.bind(t);
        }
        let anything: bool = check.fetch_one(&self.pool).await?.get(0);
        if !anything {
            return Ok(Vec::new());
        }

        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT (SELECT position FROM groups WHERE name = $1), \
             (SELECT COALESCE(MAX(seq), 0) FROM events)",
        )
        .bind(group)
        .fetch_one(&mut *tx)
        .await?;
        let (position, newest): (i64, i64) = (row.get(0), row.get(1));
        if newest > position {
            let placeholders = placeholders(4, topics.len());
            let sql = format!(
                "INSERT INTO work (grp, seq, attempts, available_at) \
                 SELECT $1, seq, 0, 0 FROM events WHERE seq > $2 AND seq <= $3 AND topic IN ({placeholders})"
            );
            let mut insert = sqlx::query(&sql).bind(group).bind(position).bind(newest);
            for t in topics {
                insert = insert.bind(t);
            }
            insert.execute(&mut *tx).await?;
            sqlx::query("UPDATE groups SET position = $1 WHERE name = $2")
                .bind(newest)
                .bind(group)
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(
            "SELECT w.seq, w.attempts, e.body FROM work w JOIN events e ON e.seq = w.seq \
             WHERE w.grp = $1 AND w.available_at <= $2 AND (w.lease_until IS NULL OR w.lease_until < $2) \
             ORDER BY w.seq LIMIT $3",
        )
        .bind(group)
        .bind(now)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let lease_until = now + i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2);
        if !rows.is_empty() {
            // Integers we read ourselves: safe to inline.
            let seqs = rows
                .iter()
                .map(|row| row.get::<i64, _>(0).to_string())
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query(&format!(
                "UPDATE work SET attempts = attempts + 1, lease_until = $1 WHERE grp = $2 AND seq IN ({seqs})"
            ))
            .bind(lease_until)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        }
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.get(0);
            let attempts: i64 = row.get(1);
            let body: String = row.get(2);
            let envelope = Envelope::from_json(body.as_bytes())?;
            deliveries.push(Delivery {
                envelope,
                attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
                acker: Box::new(EmbeddedAcker {
                    pool: self.pool.clone(),
                    group: group.to_owned(),
                    seq,
                }),
            });
        }
        tx.commit().await?;
        Ok(deliveries)
    }
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted(topics: &[String]) -> Vec<String> {
    let mut t = topics.to_vec();
    t.sort();
    t.dedup();
    t
}

#[async_trait]
impl Broker for EmbeddedLog {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        let body =
            String::from_utf8(event.to_json()).map_err(|e| BusError::Unavailable(e.to_string()))?;
        sqlx::query("INSERT INTO events (id, topic, body) VALUES ($1, $2, $3)")
            .bind(&event.id)
            .bind(&event.topic)
            .bind(body)
            .execute(&self.pool)
            .await?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn consume(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>, BusError> {
        for t in topics {
            crate::envelope::validate_topic(t)?;
        }
        self.ensure_group(group, topics).await?;
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            group: group.to_owned(),
            topics: sorted(topics),
            buffered: std::collections::VecDeque::new(),
            idle: POLL_MIN,
        }))
    }

    async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let position: i64 = sqlx::query("SELECT position FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&self.pool)
            .await?
            .map_or(0, |r| r.get(0));
        let queued: i64 = sqlx::query("SELECT COUNT(*) FROM work WHERE grp = $1")
            .bind(group)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        let mut unseen = 0_i64;
        for t in topics {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM events WHERE topic = $1 AND seq > $2")
                .bind(t)
                .bind(position)
                .fetch_one(&self.pool)
                .await?
                .get(0);
            unseen += n;
        }
        Ok(u64::try_from(queued + unseen).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), BusError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    group: String,
    topics: Vec<String>,
    buffered: std::collections::VecDeque<Delivery>,
    idle: Duration,
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if let Some(d) = self.buffered.pop_front() {
                return Ok(Some(d));
            }
            // Register for a wake-up before looking, so a publish between
            // the look and the wait is not missed.
            let published = self.log.published.clone();
            let notified = published.notified();
            let claimed = self.log.claim(&self.group, &self.topics).await?;
            if !claimed.is_empty() {
                self.idle = POLL_MIN;
                self.buffered.extend(claimed);
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(None);
            }
            let pause = self.idle.min(until - now);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(pause) => {
                    self.idle = (self.idle * 2).min(POLL_MAX);
                }
            }
        }
    }
}

struct EmbeddedAcker {
    pool: SqlitePool,
    group: String,
    seq: i64,
}

#[async_trait]
impl Acker for EmbeddedAcker {
    async fn ack(&self) -> Result<(), BusError> {
        sqlx::query("DELETE FROM work WHERE grp = $1 AND seq = $2")
            .bind(&self.group)
            .bind(self.seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn nack(&self, delay: Duration) -> Result<(), BusError> {
        let at = now_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        sqlx::query(
            "UPDATE work SET lease_until = NULL, available_at = $1 WHERE grp = $2 AND seq = $3",
        )
        .bind(at)
        .bind(&self.group)
        .bind(self.seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
