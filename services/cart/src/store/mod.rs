//! Where carts are kept: one contract ([`CartStore`]), two adapters —
//! [`SqlStore`] over the service's own database (SQLite or PostgreSQL) and
//! [`RedisStore`]. Both pass the same contract tests
//! (`tests/api/contract.rs`).
//!
//! Every write is atomic per cart: the 50-line limit cannot be passed by
//! concurrent additions, and [`CartStore::remove_taken`] removes a line only
//! if its quantity, read in the same atomic step, is still at most what the
//! order took.

mod redis;
mod sql;

use uuid::Uuid;

use crate::domain::{Line, Taken};

pub use self::redis::{REDIS_TTL, RedisStore};
pub use self::sql::SqlStore;

/// What [`CartStore::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// The line is set; the cart after it, first added first.
    Done(Vec<Line>),
    /// The product is not in the cart, which holds
    /// [`MAX_LINES`](crate::domain::MAX_LINES) lines already; nothing
    /// changed.
    Full,
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Redis failed or did not answer in time.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Something stored cannot be read back as a cart line.
    #[error("unreadable stored cart: {0}")]
    Corrupt(String),
}

/// Carts, by user. Implementations are cheap to share (`Arc<dyn CartStore>`).
#[async_trait::async_trait]
pub trait CartStore: Send + Sync + 'static {
    /// What the store runs on (`sqlite`, `postgres`, `redis`), for logs.
    fn kind(&self) -> &'static str;

    /// The lines of `user`'s cart, first added first; none when the user has
    /// no cart.
    async fn lines(&self, user: Uuid) -> Result<Vec<Line>, StoreError>;

    /// Sets the quantity of `line`'s product in `user`'s cart. A product
    /// already there keeps its place; a new one goes last, unless the cart
    /// holds [`MAX_LINES`](crate::domain::MAX_LINES) lines already.
    async fn put(&self, user: Uuid, line: Line) -> Result<Put, StoreError>;

    /// Removes `product`'s line (if there is one); the cart after it.
    async fn remove(&self, user: Uuid, product: Uuid) -> Result<Vec<Line>, StoreError>;

    /// Removes every line.
    async fn clear(&self, user: Uuid) -> Result<(), StoreError>;

    /// Removes the lines of the products in `taken` whose quantity is at
    /// most the one taken; a line holding more (changed meanwhile) stays.
    async fn remove_taken(&self, user: Uuid, taken: &Taken) -> Result<(), StoreError>;
}
