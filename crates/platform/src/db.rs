//! A service's own database: SQLite by default (a WAL-mode file in its data
//! dir), PostgreSQL when configured; same code, chosen by configuration.
//!
//! Queries go through sqlx's `Any` driver, so one query string serves both
//! engines. Write placeholders as `$1, $2, …` (both engines accept them),
//! store ids as TEXT and times as TEXT (RFC 3339) or BIGINT; where the
//! dialects differ, branch on [`Db::kind`]. Each service ships migrations for
//! both engines, run at start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};
use url::Url;

use crate::config::DatabaseConfig;

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A service's migrations, one set per engine (`sqlx::migrate!`).
#[derive(Debug)]
pub struct Migrations {
    /// Migrations for SQLite.
    pub sqlite: Migrator,
    /// Migrations for PostgreSQL.
    pub postgres: Migrator,
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The database could not be created on the server.
    #[error("cannot create database {name:?}: {source}")]
    Create {
        /// The database name.
        name: String,
        /// What the server said.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("cannot create the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The configured database name is not usable.
    #[error("invalid database name {0:?}: use lower-case letters, digits and _")]
    BadName(String),
}

/// A pool of connections to the service's own database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go. On SQLite one connection of its own: the file
    /// takes one writer at a time, and writers of one process queue here
    /// for it instead of in SQLite's busy handler, which sleeps 1, 2, 5,
    /// 10 … ms between tries. On PostgreSQL the same pool as reads.
    writer: AnyPool,
    kind: DbKind,
}

/// Whether `e` is the database refusing a row that repeats a unique key
/// (on SQLite and PostgreSQL alike): how a service turns "already there"
/// into its own answer without checking first.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Whether `e` is the database refusing a row whose foreign key points at
/// nothing.
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

impl Db {
    /// Opens (creating if missing) the configured database.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        match config {
            DatabaseConfig::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
                // WAL lets replicas of a service (separate processes) read
                // while one writes; the mode is stored in the file itself.
                let mut first = options.connect().await.map_err(DbError::Connect)?;
                first
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(DbError::Connect)?;
                first.close().await.map_err(DbError::Connect)?;
                // Readers connect when first needed: an idle service holds
                // only its writer (each connection has its own page cache).
                let pool = sqlite_pool(8).connect_lazy_with(options.clone());
                let writer = sqlite_pool(1)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self {
                    pool,
                    writer,
                    kind: DbKind::Sqlite,
                })
            }
            DatabaseConfig::Postgres(url) => {
                let url = url.expose();
                create_postgres_database_if_missing(url).await?;
                let pool = AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url.as_str())
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self {
                    writer: pool.clone(),
                    pool,
                    kind: DbKind::Postgres,
                })
            }
        }
    }

    /// Runs the migrations for this engine that have not run yet.
    ///
    /// On PostgreSQL sqlx holds an advisory lock while it migrates. SQLite
    /// has no such lock, so replicas sharing one file that start together
    /// can both try a migration; the loser's transaction rolls back and it
    /// tries again, finding the migration applied.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        let migrator = match self.kind {
            DbKind::Sqlite => &migrations.sqlite,
            DbKind::Postgres => &migrations.postgres,
        };
        let mut tries = 0;
        loop {
            match migrator.run(&self.writer).await {
                Ok(()) => return Ok(()),
                Err(
                    sqlx::migrate::MigrateError::Execute(error)
                    | sqlx::migrate::MigrateError::ExecuteMigration(error, _),
                ) if self.kind == DbKind::Sqlite && tries < 10 => {
                    tries += 1;
                    tracing::info!(%error, tries, "A migration failed, as when a replica sharing this file migrates at once; trying again.");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for statements that write outside [`Db::begin_write`]
    /// (on SQLite its single connection; see the field). Never use it while
    /// this task holds a write transaction: on SQLite that waits for itself.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Which engine this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// first and writes later can fail with SQLITE_BUSY instead of waiting.
    /// On PostgreSQL it is a plain `BEGIN`; lock rows with `FOR UPDATE`.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.writer.begin().await,
        }
    }

    /// Round-trips a trivial query on the writer: the readiness check.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.writer)
            .await
            .map(drop)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A pool of up to `max` connections to a SQLite file, each set up alike.
fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        // A connection to a local file does not go stale: no ping before
        // each use (a round trip to the connection's thread).
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
                )
                .await?;
                Ok(())
            })
        })
}

/// Creates the database named in `url` on its server unless it exists.
async fn create_postgres_database_if_missing(url: &Url) -> Result<(), DbError> {
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(DbError::BadName(name));
    }
    let mut admin_url = url.clone();
    admin_url.set_path("/postgres");
    let mut admin = sqlx::AnyConnection::connect(admin_url.as_str())
        .await
        .map_err(DbError::Connect)?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .map_err(DbError::Connect)?
        .is_some();
    if !exists {
        // The name was checked above, so quoting it is enough.
        let result = admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await;
        match result {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another replica created it between our check and our CREATE.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(source) => return Err(DbError::Create { name, source }),
        }
    }
    let _ = admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use sqlx::Row;

    static MIGRATIONS: Migrations = Migrations {
        sqlite: sqlx::migrate!("tests/fixtures/migrations/sqlite"),
        postgres: sqlx::migrate!("tests/fixtures/migrations/postgres"),
    };

    /// SQLite always; PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set.
    async fn databases(dir: &std::path::Path) -> Vec<Db> {
        let mut dbs = vec![
            Db::connect(&DatabaseConfig::Sqlite(dir.join("t.db")))
                .await
                .unwrap(),
        ];
        match std::env::var("BAZAAR_TEST_POSTGRES_URL") {
            Ok(base) => {
                let mut url = Url::parse(&base).unwrap();
                url.set_path(&format!("/bazaar_test_{}", uuid::Uuid::now_v7().simple()));
                dbs.push(
                    Db::connect(&DatabaseConfig::Postgres(Secret::new(url)))
                        .await
                        .unwrap(),
                );
            }
            Err(_) => eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset"),
        }
        dbs
    }

    #[tokio::test]
    async fn replicas_sharing_a_sqlite_file_migrate_at_once() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let file = DatabaseConfig::Sqlite(dir.path().join(format!("shared-{round}.db")));
            let (a, b) = (
                Db::connect(&file).await.unwrap(),
                Db::connect(&file).await.unwrap(),
            );
            let (first, second) = tokio::join!(a.migrate(&MIGRATIONS), b.migrate(&MIGRATIONS));
            first.unwrap();
            second.unwrap();
        }
    }

    #[tokio::test]
    async fn migrates_and_queries_on_every_engine() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            db.migrate(&MIGRATIONS).await.unwrap();
            // Running again is a no-op, as on every restart.
            db.migrate(&MIGRATIONS).await.unwrap();
            db.ping().await.unwrap();
            sqlx::query("INSERT INTO notes (id, body, n) VALUES ($1, $2, $3)")
                .bind("a")
                .bind("hello")
                .bind(7_i64)
                .execute(db.pool())
                .await
                .unwrap();
            let row = sqlx::query("SELECT body, n FROM notes WHERE id = $1")
                .bind("a")
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(row.get::<String, _>(0), "hello", "{:?}", db.kind());
            assert_eq!(row.get::<i64, _>(1), 7);
            let dup = sqlx::query("INSERT INTO notes (id, body, n) VALUES ($1, $2, $3)")
                .bind("a")
                .bind("again")
                .bind(1_i64)
                .execute(db.pool())
                .await
                .unwrap_err();
            assert!(
                dup.as_database_error()
                    .is_some_and(|e| e.is_unique_violation()),
                "{dup}"
            );
            db.close().await;
        }
    }

    #[tokio::test]
    async fn sqlite_file_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseConfig::Sqlite(dir.path().join("sub/w.db")))
            .await
            .unwrap();
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn bad_postgres_names_are_refused() {
        let url = Url::parse("postgres://127.0.0.1:1/Robert'); DROP").unwrap();
        let err = Db::connect(&DatabaseConfig::Postgres(Secret::new(url)))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::BadName(_)), "{err}");
    }
}
