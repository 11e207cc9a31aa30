//! The tables the backbone keeps in each service's own database: the
//! outbox (events committed, not yet published), the relay's lease (one
//! relay per service at a time, so order holds across replicas) and the
//! inbox (events already handled, per consumer group).
//!
//! They are created with `IF NOT EXISTS` at start, next to — not inside —
//! the service's own migrations, so no service has to copy them.

use sqlx::{AnyPool, Executor};

use crate::BusError;

/// The SQL dialect of a service database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The dialect of `pool`.
    pub async fn of(pool: &AnyPool) -> Result<Self, BusError> {
        let conn = pool.acquire().await?;
        Ok(if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Self::Postgres
        } else {
            Self::Sqlite
        })
    }
}

const SQLITE: &str = "
CREATE TABLE IF NOT EXISTS bazaar_outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    topic   TEXT NOT NULL,
    body    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bazaar_outbox_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS bazaar_inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
";

const POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS bazaar_outbox (
    seq     BIGSERIAL PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    topic   TEXT NOT NULL,
    body    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bazaar_outbox_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS bazaar_inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
";

/// Creates the backbone's tables in a service database if missing.
pub async fn ensure(pool: &AnyPool) -> Result<Dialect, BusError> {
    let dialect = Dialect::of(pool).await?;
    let ddl = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let mut conn = pool.acquire().await?;
    if dialect == Dialect::Postgres {
        // Replicas starting together must not race on CREATE TABLE.
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        tx.execute("SELECT pg_advisory_xact_lock(7351923)").await?;
        tx.execute(ddl).await?;
        tx.commit().await?;
    } else {
        conn.execute(ddl).await?;
    }
    Ok(dialect)
}

/// Milliseconds since the Unix epoch: how the backbone stores instants.
pub use crate::clock::now_ms as now_millis;
