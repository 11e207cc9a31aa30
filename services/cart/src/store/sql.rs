//! Carts in the service's own database. One query string serves SQLite and
//! PostgreSQL (sqlx's `Any`).
//!
//! A write that may add a line first upserts the user's `carts` row, which
//! takes that row's lock on PostgreSQL (and SQLite's single writer lock is
//! taken by `BEGIN IMMEDIATE` already): concurrent additions to one cart
//! run one after the other, so the line count they check is the real one.
//! The same row holds the last position given to a line, so lines keep the
//! order they were first added in.

use bazaar_platform::db::Db;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{CartStore, Put, StoreError};
use crate::domain::{Line, MAX_LINES, Quantity, Taken};

/// Carts in SQLite or PostgreSQL, in the tables of the service's migrations.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    /// Carts in `db`, which has run the cart migrations
    /// (`<Cart as Service>::migrations()`).
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Milliseconds since the epoch, from the system clock.
use bazaar_platform::clock::now_ms;

fn line(row: &AnyRow) -> Result<Line, StoreError> {
    let product: String = row.try_get(0)?;
    let product = Uuid::parse_str(&product)
        .map_err(|_| StoreError::Corrupt(format!("product id {product:?}")))?;
    let quantity: i64 = row.try_get(1)?;
    let quantity = Quantity::new(quantity)
        .ok_or_else(|| StoreError::Corrupt(format!("quantity {quantity}")))?;
    Ok(Line::new(product, quantity))
}

async fn lines<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    user: Uuid,
) -> Result<Vec<Line>, StoreError> {
    sqlx::query("SELECT product_id, quantity FROM cart_lines WHERE user_id = $1 ORDER BY position")
        .bind(user.to_string())
        .fetch_all(executor)
        .await?
        .iter()
        .map(line)
        .collect()
}

/// Takes the lock of `user`'s cart (creating its row) and hands out the
/// next position.
async fn lock_cart(tx: &mut Transaction<'_, Any>, user: Uuid) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO carts (user_id, last_position, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET last_position = carts.last_position + 1, updated_at = $2 \
         RETURNING last_position",
    )
    .bind(user.to_string())
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get(0)?)
}

#[async_trait::async_trait]
impl CartStore for SqlStore {
    fn kind(&self) -> &'static str {
        match self.db.kind() {
            bazaar_platform::db::DbKind::Sqlite => "sqlite",
            bazaar_platform::db::DbKind::Postgres => "postgres",
        }
    }

    async fn lines(&self, user: Uuid) -> Result<Vec<Line>, StoreError> {
        lines(self.db.pool(), user).await
    }

    async fn put(&self, user: Uuid, line: Line) -> Result<Put, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let position = lock_cart(&mut tx, user).await?;
        let updated = sqlx::query(
            "UPDATE cart_lines SET quantity = $1 WHERE user_id = $2 AND product_id = $3",
        )
        .bind(line.quantity.get())
        .bind(user.to_string())
        .bind(line.product_id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let count: i64 = sqlx::query("SELECT COUNT(*) FROM cart_lines WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_LINES {
                // Dropping the transaction rolls the position back too.
                return Ok(Put::Full);
            }
            sqlx::query(
                "INSERT INTO cart_lines (user_id, product_id, quantity, position) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user.to_string())
            .bind(line.product_id.to_string())
            .bind(line.quantity.get())
            .bind(position)
            .execute(&mut *tx)
            .await?;
        }
        let cart = lines(&mut *tx, user).await?;
        tx.commit().await?;
        Ok(Put::Done(cart))
    }

    async fn remove(&self, user: Uuid, product: Uuid) -> Result<Vec<Line>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM cart_lines WHERE user_id = $1 AND product_id = $2")
            .bind(user.to_string())
            .bind(product.to_string())
            .execute(&mut *tx)
            .await?;
        let cart = lines(&mut *tx, user).await?;
        tx.commit().await?;
        Ok(cart)
    }

    async fn clear(&self, user: Uuid) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        // Under the cart's lock, so an addition committed just before is
        // seen and removed, and one waiting starts a new cart at position 1.
        lock_cart(&mut tx, user).await?;
        sqlx::query("DELETE FROM cart_lines WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM carts WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_taken(&self, user: Uuid, taken: &Taken) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        // One conditional DELETE per line: the quantity is compared under
        // the row's lock, so a line raised meanwhile is not removed.
        for (product, most) in taken.iter() {
            sqlx::query(
                "DELETE FROM cart_lines WHERE user_id = $1 AND product_id = $2 AND quantity <= $3",
            )
            .bind(user.to_string())
            .bind(product.to_string())
            .bind(most)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
