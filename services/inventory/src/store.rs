//! The SQL: stock rows and reservations. One query string serves SQLite
//! and PostgreSQL (sqlx's `Any`); the callers own the transactions.
//!
//! Overselling is impossible by construction: units are held only by a
//! conditional `UPDATE … WHERE on_hand - reserved >= $q`, which PostgreSQL
//! evaluates under the row's lock and SQLite under its single writer lock
//! (write transactions begin `IMMEDIATE`, see `Db::begin_write`), and the
//! table's CHECK refuses `reserved > on_hand` whatever the code does.

use std::collections::BTreeMap;

use bazaar_platform::db::Db;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{Lines, OnHand, Quantity};

/// Milliseconds since the epoch, from the system clock.
pub(crate) use bazaar_platform::clock::now_ms;

/// One product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stock {
    pub(crate) product_id: Uuid,
    pub(crate) seller_id: String,
    pub(crate) on_hand: i64,
    pub(crate) reserved: i64,
}

impl Stock {
    /// Units free for new reservations.
    pub(crate) fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// The stock of a product that exists (not deleted).
pub(crate) async fn stock<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    product: Uuid,
) -> Result<Option<Stock>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT seller_id, on_hand, reserved FROM stock WHERE product_id = $1 AND deleted = 0",
    )
    .bind(product.to_string())
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| Stock {
        product_id: product,
        seller_id: row.get(0),
        on_hand: row.get(1),
        reserved: row.get(2),
    }))
}

/// A new product's stock row. A product already known (or deleted before
/// its creation arrived) is left as it is.
pub(crate) async fn create_stock(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    seller: Uuid,
    on_hand: OnHand,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO stock (product_id, seller_id, on_hand, reserved, low_notified, deleted, updated_at) \
         VALUES ($1, $2, $3, 0, 0, 0, $4) ON CONFLICT (product_id) DO NOTHING",
    )
    .bind(product.to_string())
    .bind(seller.to_string())
    .bind(on_hand.get())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables a deleted product's stock: it can no longer be read, set or
/// reserved; reservations already holding it can still be committed or
/// released. Unknown products get a disabled row, so a late creation event
/// does not bring them back.
pub(crate) async fn delete_stock(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    seller: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stock (product_id, seller_id, on_hand, reserved, low_notified, deleted, updated_at) \
         VALUES ($1, $2, 0, 0, 0, 1, $3) \
         ON CONFLICT (product_id) DO UPDATE SET deleted = 1, updated_at = $3",
    )
    .bind(product.to_string())
    .bind(seller.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets the units on hand unless fewer than are reserved; whether it did.
pub(crate) async fn set_on_hand(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    on_hand: OnHand,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE stock SET on_hand = $1, updated_at = $2 \
         WHERE product_id = $3 AND deleted = 0 AND reserved <= $1",
    )
    .bind(on_hand.get())
    .bind(now_ms())
    .bind(product.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Holds `quantity` units of `product` if that many are available: the one
/// statement that decides whether an order gets stock.
pub(crate) async fn hold(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    quantity: Quantity,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE stock SET reserved = reserved + $1, updated_at = $2 \
         WHERE product_id = $3 AND deleted = 0 AND on_hand - reserved >= $1",
    )
    .bind(quantity.get())
    .bind(now_ms())
    .bind(product.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reserved units leave stock for good (a commit).
pub(crate) async fn take(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    quantity: Quantity,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stock SET on_hand = on_hand - $1, reserved = reserved - $1, updated_at = $2 \
         WHERE product_id = $3",
    )
    .bind(quantity.get())
    .bind(now_ms())
    .bind(product.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reserved units become available again (a release or an expiry).
pub(crate) async fn give_back(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    quantity: Quantity,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stock SET reserved = reserved - $1, updated_at = $2 WHERE product_id = $3")
        .bind(quantity.get())
        .bind(now_ms())
        .bind(product.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Reserved,
    Committed,
    Released,
    Expired,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self, sqlx::Error> {
        match s {
            "reserved" => Ok(Self::Reserved),
            "committed" => Ok(Self::Committed),
            "released" => Ok(Self::Released),
            "expired" => Ok(Self::Expired),
            other => Err(sqlx::Error::Decode(
                format!("unknown reservation state {other:?}").into(),
            )),
        }
    }
}

/// One order's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) order_id: Uuid,
    pub(crate) state: State,
    pub(crate) lines: Lines,
    pub(crate) expires_at: i64,
}

/// The reservation of `order`, if it has one.
pub(crate) async fn reservation(
    tx: &mut Transaction<'_, Any>,
    order: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT product_id, quantity, state, expires_at FROM reservations WHERE order_id = $1",
    )
    .bind(order.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let state = State::parse(&first.get::<String, _>(2))?;
    let expires_at: i64 = first.get(3);
    let mut lines = BTreeMap::new();
    for row in &rows {
        let product = Uuid::parse_str(&row.get::<String, _>(0))
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let quantity = Quantity::new(row.get(1))
            .ok_or_else(|| sqlx::Error::Decode("a stored quantity under 1".into()))?;
        lines.insert(product, quantity);
    }
    Ok(Some(Reservation {
        order_id: order,
        state,
        lines: Lines::from_stored(lines),
        expires_at,
    }))
}

/// Records a reservation whose units are held already.
pub(crate) async fn insert_reservation(
    tx: &mut Transaction<'_, Any>,
    reservation: &Reservation,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for (product, quantity) in reservation.lines.iter() {
        sqlx::query(
            "INSERT INTO reservations (order_id, product_id, quantity, state, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(reservation.order_id.to_string())
        .bind(product.to_string())
        .bind(quantity.get())
        .bind(reservation.state.as_str())
        .bind(reservation.expires_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Moves `order` from held to `to`, only if it is held (and, with
/// `expired_by`, only if it expired by then); whether it moved. Two callers
/// racing (a commit and a release, two sweepers) cannot both win.
pub(crate) async fn settle(
    tx: &mut Transaction<'_, Any>,
    order: Uuid,
    to: State,
    expired_by: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reservations SET state = $1 \
         WHERE order_id = $2 AND state = 'reserved' AND expires_at <= $3",
    )
    .bind(to.as_str())
    .bind(order.to_string())
    .bind(expired_by.unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Orders whose reservations are held past `now`, oldest first.
pub(crate) async fn expired_orders(
    db: &Db,
    now: i64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT order_id, expires_at FROM reservations \
         WHERE state = 'reserved' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Uuid::parse_str(&row.get::<String, _>(0)).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}

/// Whether `product`'s stock has just become low: when fewer than
/// `threshold` units are available and that was not announced yet, marks it
/// announced and answers the stock (only if `announce`); when back at or
/// above the threshold, clears the mark so the next crossing counts.
pub(crate) async fn crossed_low(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    threshold: i64,
    announce: bool,
) -> Result<Option<Stock>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT seller_id, on_hand, reserved, low_notified FROM stock WHERE product_id = $1",
    )
    .bind(product.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stock = Stock {
        product_id: product,
        seller_id: row.get(0),
        on_hand: row.get(1),
        reserved: row.get(2),
    };
    let notified = row.get::<i64, _>(3) != 0;
    let low = stock.available() < threshold;
    let flag = match (low, notified) {
        (true, false) if announce => 1_i64,
        (false, true) => 0_i64,
        _ => return Ok(None),
    };
    sqlx::query("UPDATE stock SET low_notified = $1 WHERE product_id = $2")
        .bind(flag)
        .bind(product.to_string())
        .execute(&mut **tx)
        .await?;
    Ok((flag == 1).then_some(stock))
}
