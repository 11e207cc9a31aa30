//! The SQL: orders, their lines and timeline, the saga's stage and lease,
//! and the card until it is authorized. One query string serves SQLite and
//! PostgreSQL (sqlx's `Any`); callers own the transactions.
//!
//! Every write of a saga is fenced: it names the stage it moves from and
//! the lease owner, and changes nothing (answering `false`) if either is no
//! longer so. A replica that lost its lease therefore cannot move a saga
//! another one now drives.

use bazaar_platform::db::Db;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{
    Address, Cancel, CancelCode, Card, CardNumber, Cvc, Expiry, Lines, Quantity, Status,
};
use crate::saga::{Priced, Stage, Undo};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn decode(message: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Decode(message.into().into())
}

fn uuid(raw: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A new order, as accepted.
#[derive(Debug)]
pub(crate) struct NewOrder<'a> {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) key: &'a str,
    pub(crate) fingerprint: &'a str,
    pub(crate) from_cart: bool,
    pub(crate) lines: &'a Lines,
    pub(crate) card: &'a Card,
    pub(crate) address: &'a Address,
    pub(crate) now: i64,
    /// Who drives its saga first (the process that accepted it), until when.
    pub(crate) lease_owner: &'a str,
    pub(crate) lease_until: i64,
}

/// Records a new order, pending at `pricing`, with its lines, its card and
/// the `accepted` timeline entry.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Any>,
    order: &NewOrder<'_>,
    accepted: &str,
) -> Result<(), sqlx::Error> {
    let id = order.id.to_string();
    sqlx::query(
        "INSERT INTO orders (id, user_id, idempotency_key, fingerprint, status, stage, from_cart, \
         card_last4, ship_name, ship_line1, ship_city, ship_postal_code, ship_country, \
         lease_owner, lease_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 'pricing', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(&id)
    .bind(order.user_id.to_string())
    .bind(order.key)
    .bind(order.fingerprint)
    .bind(i64::from(order.from_cart))
    .bind(order.card.number.last4())
    .bind(&order.address.name)
    .bind(&order.address.line1)
    .bind(&order.address.city)
    .bind(&order.address.postal_code)
    .bind(&order.address.country)
    .bind(order.lease_owner)
    .bind(order.lease_until)
    .bind(order.now)
    .execute(&mut **tx)
    .await?;
    for (position, (product, quantity)) in order.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, position, product_id, quantity) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(product.to_string())
        .bind(quantity.get())
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO order_cards (order_id, number, exp_month, exp_year, cvc) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(order.card.number.expose())
    .bind(i64::from(order.card.expiry.month()))
    .bind(i64::from(order.card.expiry.year()))
    .bind(order.card.cvc.expose())
    .execute(&mut **tx)
    .await?;
    append(tx, order.id, "accepted", accepted, order.now).await
}

/// Appends a timeline entry.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    order: Uuid,
    step: &str,
    detail: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    let id = order.to_string();
    let next: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM order_timeline WHERE order_id = $1")
            .bind(&id)
            .fetch_one(&mut **tx)
            .await?
            .get(0);
    sqlx::query(
        "INSERT INTO order_timeline (order_id, seq, at, step, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(next)
    .bind(at)
    .bind(step)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One line of an order; title, seller and price once priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) product_id: Uuid,
    pub(crate) quantity: Quantity,
    pub(crate) title: Option<String>,
    pub(crate) seller_id: Option<Uuid>,
    pub(crate) unit_amount: Option<i64>,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) at: i64,
    pub(crate) step: String,
    pub(crate) detail: String,
}

/// An order as its owner (or an admin) sees it.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) id: Uuid,
    /// Who placed it.
    pub(crate) user_id: Uuid,
    pub(crate) status: Status,
    pub(crate) fingerprint: String,
    pub(crate) lines: Vec<Line>,
    pub(crate) currency: Option<String>,
    pub(crate) total: Option<i64>,
    pub(crate) cancel_code: Option<String>,
    pub(crate) cancel_reason: Option<String>,
    pub(crate) card_last4: String,
    pub(crate) address: Address,
    pub(crate) timeline: Vec<Entry>,
    pub(crate) created_at: i64,
}

const ORDER_COLUMNS: &str = "id, status, fingerprint, currency, total, cancel_code, cancel_reason, \
     card_last4, ship_name, ship_line1, ship_city, ship_postal_code, ship_country, created_at, user_id";

fn order_row(row: &AnyRow) -> Result<Order, sqlx::Error> {
    let status: String = row.get(1);
    Ok(Order {
        id: uuid(&row.get::<String, _>(0))?,
        status: Status::parse(&status)
            .ok_or_else(|| decode(format!("unknown status {status:?}")))?,
        fingerprint: row.get(2),
        currency: row.get(3),
        total: row.get(4),
        cancel_code: row.get(5),
        cancel_reason: row.get(6),
        card_last4: row.get(7),
        address: Address {
            name: row.get(8),
            line1: row.get(9),
            city: row.get(10),
            postal_code: row.get(11),
            country: row.get(12),
        },
        created_at: row.get(13),
        user_id: uuid(&row.get::<String, _>(14))?,
        lines: Vec::new(),
        timeline: Vec::new(),
    })
}

fn line_row(row: &AnyRow) -> Result<(String, Line), sqlx::Error> {
    let seller: Option<String> = row.get(4);
    Ok((
        row.get(0),
        Line {
            product_id: uuid(&row.get::<String, _>(1))?,
            quantity: Quantity::new(row.get(2))
                .ok_or_else(|| decode("a stored quantity out of range"))?,
            title: row.get(3),
            seller_id: seller.as_deref().map(uuid).transpose()?,
            unit_amount: row.get(5),
        },
    ))
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fills in the lines and timelines of `orders`.
async fn details<'e>(
    executor: impl sqlx::Executor<'e, Database = Any> + Copy,
    orders: &mut [Order],
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = orders.iter().map(|o| o.id.to_string()).collect();
    let list = placeholders(1, ids.len());
    let sql = format!(
        "SELECT order_id, product_id, quantity, title, seller_id, unit_amount FROM order_lines \
         WHERE order_id IN ({list}) ORDER BY order_id, position"
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(id);
    }
    for row in query.fetch_all(executor).await? {
        let (order, line) = line_row(&row)?;
        if let Some(o) = orders.iter_mut().find(|o| o.id.to_string() == order) {
            o.lines.push(line);
        }
    }
    let sql = format!(
        "SELECT order_id, at, step, detail FROM order_timeline WHERE order_id IN ({list}) ORDER BY order_id, seq"
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(id);
    }
    for row in query.fetch_all(executor).await? {
        let order: String = row.get(0);
        if let Some(o) = orders.iter_mut().find(|o| o.id.to_string() == order) {
            o.timeline.push(Entry {
                at: row.get(1),
                step: row.get(2),
                detail: row.get(3),
            });
        }
    }
    Ok(())
}

/// The order `user` placed under `key`, if any.
pub(crate) async fn by_key(db: &Db, user: Uuid, key: &str) -> Result<Option<Order>, sqlx::Error> {
    let sql =
        format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2");
    let row = sqlx::query(&sql)
        .bind(user.to_string())
        .bind(key)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut orders = [order_row(&row)?];
    details(db.pool(), &mut orders).await?;
    let [order] = orders;
    Ok(Some(order))
}

/// Order `id` if `user` placed it.
pub(crate) async fn of_user(db: &Db, id: Uuid, user: Uuid) -> Result<Option<Order>, sqlx::Error> {
    one(db, id, Some(user)).await
}

/// Order `id`, whoever placed it (for admins).
pub(crate) async fn by_id(db: &Db, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    one(db, id, None).await
}

/// Order `id` with its details, if it exists (and `user` placed it, when
/// given).
async fn one(db: &Db, id: Uuid, user: Option<Uuid>) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND ($2 IS NULL OR user_id = $2)"
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .bind(user.map(|u| u.to_string()))
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut orders = [order_row(&row)?];
    details(db.pool(), &mut orders).await?;
    let [order] = orders;
    Ok(Some(order))
}

/// Page `page` (from 1) of every user's orders, newest first, and how many
/// there are in all (for admins).
pub(crate) async fn page_all(
    db: &Db,
    page: i64,
    limit: i64,
) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM orders")
        .fetch_one(db.pool())
        .await?
        .get(0);
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders \
         ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    );
    let rows = sqlx::query(&sql)
        .bind(limit)
        .bind((page - 1).saturating_mul(limit))
        .fetch_all(db.pool())
        .await?;
    let mut orders = rows.iter().map(order_row).collect::<Result<Vec<_>, _>>()?;
    details(db.pool(), &mut orders).await?;
    Ok((orders, total))
}

/// Page `page` (from 1) of `user`'s orders, newest first, and how many
/// there are in all.
pub(crate) async fn page(
    db: &Db,
    user: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_one(db.pool())
        .await?
        .get(0);
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(&sql)
        .bind(user.to_string())
        .bind(limit)
        .bind((page - 1).saturating_mul(limit))
        .fetch_all(db.pool())
        .await?;
    let mut orders = rows.iter().map(order_row).collect::<Result<Vec<_>, _>>()?;
    details(db.pool(), &mut orders).await?;
    Ok((orders, total))
}

// ---- the saga's side ----

/// What the saga needs of an order.
#[derive(Debug, Clone)]
pub(crate) struct Saga {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) stage: Stage,
    pub(crate) from_cart: bool,
    pub(crate) lines: Vec<Line>,
    pub(crate) currency: Option<String>,
    pub(crate) total: Option<i64>,
    pub(crate) card_last4: String,
    pub(crate) cancel: Option<Cancel>,
    pub(crate) undo: Undo,
    pub(crate) lease_owner: Option<String>,
    pub(crate) created_at: i64,
}

impl Saga {
    /// The lines as the calls to inventory name them.
    pub(crate) fn order_lines(&self) -> Lines {
        Lines::from_stored(
            self.lines
                .iter()
                .map(|l| (l.product_id, l.quantity))
                .collect(),
        )
    }
}

/// The saga state of order `id`.
pub(crate) async fn saga(db: &Db, id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, stage, from_cart, currency, total, card_last4, cancel_code, cancel_reason, \
         undo_void, undo_release, lease_owner, created_at FROM orders WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stage: String = row.get(1);
    let code: Option<String> = row.get(6);
    let reason: Option<String> = row.get(7);
    let cancel = match (code, reason) {
        (Some(code), Some(reason)) => Some(Cancel::new(
            CancelCode::parse(&code)
                .ok_or_else(|| decode(format!("unknown cancel code {code:?}")))?,
            reason,
        )),
        _ => None,
    };
    let lines = sqlx::query(
        "SELECT order_id, product_id, quantity, title, seller_id, unit_amount FROM order_lines \
         WHERE order_id = $1 ORDER BY position",
    )
    .bind(id.to_string())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| line_row(row).map(|(_, line)| line))
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Saga {
        id,
        user_id: uuid(&row.get::<String, _>(0))?,
        stage: Stage::parse(&stage).ok_or_else(|| decode(format!("unknown stage {stage:?}")))?,
        from_cart: row.get::<i64, _>(2) != 0,
        lines,
        currency: row.get(3),
        total: row.get(4),
        card_last4: row.get(5),
        cancel,
        undo: Undo {
            void: row.get::<i64, _>(8) != 0,
            release: row.get::<i64, _>(9) != 0,
        },
        lease_owner: row.get(10),
        created_at: row.get(11),
    }))
}

/// Takes (or keeps) the lease on pending order `id` for `owner` until
/// `until`, if nobody else holds an unexpired one; whether it did.
pub(crate) async fn claim(
    db: &Db,
    id: Uuid,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET lease_owner = $1, lease_until = $2 \
         WHERE id = $3 AND status = 'pending' \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
    )
    .bind(owner)
    .bind(until)
    .bind(id.to_string())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends `owner`'s lease on `id`; false if it is no longer `owner`'s.
pub(crate) async fn renew(db: &Db, id: Uuid, owner: &str, until: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
    )
    .bind(until)
    .bind(id.to_string())
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives `owner`'s lease on `id` up, so the poller may pick it up at once.
pub(crate) async fn let_go(db: &Db, id: Uuid, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET lease_until = 0 WHERE id = $1 AND lease_owner = $2")
        .bind(id.to_string())
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Pending orders nobody holds a lease on, oldest first.
pub(crate) async fn unclaimed(db: &Db, now: i64, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query(
        "SELECT id FROM orders WHERE status = 'pending' AND lease_until < $1 \
         ORDER BY created_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| uuid(&row.get::<String, _>(0)))
    .collect()
}

/// Moves `id` from `from` to `to` if `owner` still drives it there;
/// whether it did.
pub(crate) async fn advance(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    owner: &str,
    from: Stage,
    to: Stage,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET stage = $1, updated_at = $2 WHERE id = $3 AND stage = $4 AND lease_owner = $5",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores catalog's titles, sellers and prices, and the total.
pub(crate) async fn set_prices(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    priced: &Priced,
) -> Result<(), sqlx::Error> {
    let order = id.to_string();
    for line in &priced.lines {
        sqlx::query(
            "UPDATE order_lines SET title = $1, seller_id = $2, unit_amount = $3 \
             WHERE order_id = $4 AND product_id = $5",
        )
        .bind(&line.title)
        .bind(line.seller_id.to_string())
        .bind(line.unit_amount)
        .bind(&order)
        .bind(line.product_id.to_string())
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE orders SET currency = $1, total = $2 WHERE id = $3")
        .bind(&priced.total.currency)
        .bind(priced.total.amount)
        .bind(&order)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves `id` from `from` to compensating with `cancel` and what to undo,
/// if `owner` still drives it there; whether it did.
pub(crate) async fn compensate(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    owner: &str,
    from: Stage,
    cancel: &Cancel,
    undo: Undo,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET stage = 'compensating', cancel_code = $1, cancel_reason = $2, \
         undo_void = $3, undo_release = $4, updated_at = $5 \
         WHERE id = $6 AND stage = $7 AND lease_owner = $8",
    )
    .bind(cancel.code.as_str())
    .bind(&cancel.reason)
    .bind(i64::from(undo.void))
    .bind(i64::from(undo.release))
    .bind(now)
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that one compensation is done (`void` or `release`); whether
/// `owner` still drove the saga.
pub(crate) async fn undone(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    owner: &str,
    void: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = if void {
        "UPDATE orders SET undo_void = 0, updated_at = $1 WHERE id = $2 AND stage = 'compensating' AND lease_owner = $3"
    } else {
        "UPDATE orders SET undo_release = 0, updated_at = $1 WHERE id = $2 AND stage = 'compensating' AND lease_owner = $3"
    };
    let done = sqlx::query(sql)
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the saga of `id`: from `from` to the final `to` with `status`,
/// lease given up; whether `owner` still drove it.
pub(crate) async fn finish(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    owner: &str,
    from: Stage,
    to: Stage,
    status: Status,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET stage = $1, status = $2, lease_owner = NULL, lease_until = 0, \
         updated_at = $3, finished_at = $3 \
         WHERE id = $4 AND stage = $5 AND lease_owner = $6 AND status = 'pending'",
    )
    .bind(to.as_str())
    .bind(status.as_str())
    .bind(now)
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The card order `id` is to be authorized with, if still held.
pub(crate) async fn card(db: &Db, id: Uuid) -> Result<Option<Card>, sqlx::Error> {
    let row =
        sqlx::query("SELECT number, exp_month, exp_year, cvc FROM order_cards WHERE order_id = $1")
            .bind(id.to_string())
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else { return Ok(None) };
    let bad = || decode("a stored card that is not valid");
    Ok(Some(Card {
        number: CardNumber::parse(&row.get::<String, _>(0)).map_err(|_| bad())?,
        expiry: Expiry::new(row.get(1), row.get(2)).map_err(|_| bad())?,
        cvc: Cvc::parse(&row.get::<String, _>(3)).map_err(|_| bad())?,
    }))
}

/// Forgets order `id`'s card.
pub(crate) async fn delete_card(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM order_cards WHERE order_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
