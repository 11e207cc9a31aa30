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

/// Milliseconds since the epoch, from the system clock.
pub(crate) use bazaar_platform::clock::now_ms;

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
/// the `accepted` timeline entry; the order as it now stands, built from
/// what was written rather than read back.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Any>,
    order: &NewOrder<'_>,
    accepted: &str,
) -> Result<Order, sqlx::Error> {
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
    // All lines in one statement: `($1, $2, $3, $4), ($1, $5, $6, $7), …`.
    let rows = (0..order.lines.len())
        .map(|i| format!("($1, {})", placeholders(2 + 3 * i, 3)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("INSERT INTO order_lines (order_id, position, product_id, quantity) VALUES {rows}");
    let mut query = sqlx::query(&sql).bind(&id);
    for (position, (product, quantity)) in order.lines.iter().enumerate() {
        query = query
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(product.to_string())
            .bind(quantity.get());
    }
    query.execute(&mut **tx).await?;
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
    append(tx, order.id, "accepted", accepted, order.now).await?;
    Ok(Order {
        id: order.id,
        user_id: order.user_id,
        status: Status::Pending,
        fingerprint: order.fingerprint.to_owned(),
        lines: order
            .lines
            .iter()
            .map(|(product_id, quantity)| Line {
                product_id,
                quantity,
                title: None,
                seller_id: None,
                unit_amount: None,
            })
            .collect(),
        currency: None,
        total: None,
        cancel_code: None,
        cancel_reason: None,
        card_last4: order.card.number.last4().to_owned(),
        address: order.address.clone(),
        timeline: vec![Entry {
            at: order.now,
            step: "accepted".to_owned(),
            detail: accepted.to_owned(),
        }],
        created_at: order.now,
    })
}

/// Appends a timeline entry.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    order: Uuid,
    step: &str,
    detail: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    append_all(tx, order, &[(step, detail)], at).await
}

/// Appends timeline entries (`(step, detail)`, in order), all at `at`, in
/// one statement: each takes the next `seq` after the order's last one
/// (both engines read the timeline as it was before the statement).
pub(crate) async fn append_all(
    tx: &mut Transaction<'_, Any>,
    order: Uuid,
    entries: &[(&str, &str)],
    at: i64,
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows = (0..entries.len())
        .map(|i| {
            format!(
                "SELECT $1, COALESCE(MAX(seq), 0) + {}, $2, ${}, ${} FROM order_timeline WHERE order_id = $1",
                i + 1,
                3 + 2 * i,
                4 + 2 * i
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!("INSERT INTO order_timeline (order_id, seq, at, step, detail) {rows}");
    let mut query = sqlx::query(&sql).bind(order.to_string()).bind(at);
    for (step, detail) in entries {
        query = query.bind(*step).bind(*detail);
    }
    query.execute(&mut **tx).await?;
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub(crate) created_at: i64,
}

impl Saga {
    /// The lines as the calls to inventory name them.
    pub(crate) fn order_lines(&self) -> Lines {
        lines_of(&self.lines)
    }

    /// Takes catalog's titles, sellers and prices, and the total, as
    /// [`priced`] stores them.
    pub(crate) fn set_prices(&mut self, priced: &Priced) {
        for line in &mut self.lines {
            if let Some(p) = priced
                .lines
                .iter()
                .find(|p| p.product_id == line.product_id)
            {
                line.title = Some(p.title.clone());
                line.seller_id = Some(p.seller_id);
                line.unit_amount = Some(p.unit_amount);
            }
        }
        self.currency = Some(priced.total.currency.clone());
        self.total = Some(priced.total.amount);
    }
}

/// The columns [`saga_row`] reads, in its order.
const SAGA_COLUMNS: &str = "user_id, stage, from_cart, currency, total, card_last4, cancel_code, \
     cancel_reason, undo_void, undo_release, created_at";

/// A saga from a row of [`SAGA_COLUMNS`] and its lines.
fn saga_row(id: Uuid, row: &AnyRow, lines: Vec<Line>) -> Result<Saga, sqlx::Error> {
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
    Ok(Saga {
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
        created_at: row.get(10),
    })
}

/// The lines of order `id`, in order.
async fn saga_lines<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    id: Uuid,
) -> Result<Vec<Line>, sqlx::Error> {
    sqlx::query(
        "SELECT order_id, product_id, quantity, title, seller_id, unit_amount FROM order_lines \
         WHERE order_id = $1 ORDER BY position",
    )
    .bind(id.to_string())
    .fetch_all(executor)
    .await?
    .iter()
    .map(|row| line_row(row).map(|(_, line)| line))
    .collect()
}

/// What stored lines order: product and quantity, in their order.
fn lines_of(lines: &[Line]) -> Lines {
    Lines::from_stored(lines.iter().map(|l| (l.product_id, l.quantity)).collect())
}

/// The saga state of order `id`.
pub(crate) async fn saga(db: &Db, id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    let sql = format!("SELECT {SAGA_COLUMNS} FROM orders WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let lines = saga_lines(&mut *conn, id).await?;
    saga_row(id, &row, lines).map(Some)
}

/// Takes (or keeps) the lease on pending order `id` for `owner` until
/// `until`, if nobody else holds an unexpired one; its saga state if it
/// did, read with the claim (`RETURNING`) and its lines right after (they
/// change only with a fenced move of the stage, so only under the lease,
/// which is now `owner`'s).
pub(crate) async fn claim(
    db: &Db,
    id: Uuid,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<Option<Saga>, sqlx::Error> {
    let mut conn = db.writer().acquire().await?;
    let sql = format!(
        "UPDATE orders SET lease_owner = $1, lease_until = $2 \
         WHERE id = $3 AND status = 'pending' \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4) \
         RETURNING {SAGA_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(until)
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let lines = saga_lines(&mut *conn, id).await?;
    saga_row(id, &row, lines).map(Some)
}

/// Extends `owner`'s lease on `id`; false if it is no longer `owner`'s.
pub(crate) async fn renew(db: &Db, id: Uuid, owner: &str, until: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
    )
    .bind(until)
    .bind(id.to_string())
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives `owner`'s lease on `id` up, so the poller may pick it up at once.
pub(crate) async fn let_go(db: &Db, id: Uuid, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET lease_until = 0 WHERE id = $1 AND lease_owner = $2")
        .bind(id.to_string())
        .bind(owner)
        .execute(db.writer())
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

/// Moves `id` from `from` to `to` with catalog's prices (the total on the
/// order; titles, sellers and unit prices on its lines) if `owner` still
/// drives it there; whether it did. Two statements whatever the number of
/// lines.
pub(crate) async fn priced(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    owner: &str,
    from: Stage,
    to: Stage,
    priced: &Priced,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let order = id.to_string();
    let done = sqlx::query(
        "UPDATE orders SET stage = $1, currency = $2, total = $3, updated_at = $4 \
         WHERE id = $5 AND stage = $6 AND lease_owner = $7",
    )
    .bind(to.as_str())
    .bind(&priced.total.currency)
    .bind(priced.total.amount)
    .bind(now)
    .bind(&order)
    .bind(from.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    // Every line from one list of values: `($2, $3, $4, $5), …` as
    // (product, title, seller, unit price), `column1` to `column4` on both
    // engines.
    let rows = (0..priced.lines.len())
        .map(|i| format!("({})", placeholders(2 + 4 * i, 4)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE order_lines SET title = v.column2, seller_id = v.column3, unit_amount = v.column4 \
         FROM (VALUES {rows}) AS v \
         WHERE order_lines.order_id = $1 AND order_lines.product_id = v.column1"
    );
    let mut query = sqlx::query(&sql).bind(&order);
    for line in &priced.lines {
        query = query
            .bind(line.product_id.to_string())
            .bind(&line.title)
            .bind(line.seller_id.to_string())
            .bind(line.unit_amount);
    }
    query.execute(&mut **tx).await?;
    Ok(true)
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

/// Marks a confirmed order of the cart as having its lines to take out of
/// the cart, first due at `due`; in the transaction that confirms it.
pub(crate) async fn cart_clear_due(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    due: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET cart_clear_at = $1 WHERE id = $2")
        .bind(due)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Up to `limit` confirmed orders whose cart clearing is due at `now`,
/// each claimed until `until` (the claim moves its due time, so another
/// poller skips it): their ids, buyers and lines.
pub(crate) async fn claim_cart_clears(
    db: &Db,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, Lines)>, sqlx::Error> {
    let due = sqlx::query(
        "SELECT id, cart_clear_at FROM orders WHERE cart_clear_at IS NOT NULL AND cart_clear_at <= $1 \
         ORDER BY cart_clear_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in due {
        let id: String = row.get(0);
        let at: i64 = row.get(1);
        let mut conn = db.writer().acquire().await?;
        let taken = sqlx::query(
            "UPDATE orders SET cart_clear_at = $1 WHERE id = $2 AND cart_clear_at = $3 RETURNING user_id",
        )
        .bind(until)
        .bind(&id)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(taken) = taken {
            let id = uuid(&id)?;
            let user = uuid(&taken.get::<String, _>(0))?;
            let lines = lines_of(&saga_lines(&mut *conn, id).await?);
            claimed.push((id, user, lines));
        }
    }
    Ok(claimed)
}

/// The cart no longer needs clearing for order `id`.
pub(crate) async fn cart_clear_done(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET cart_clear_at = NULL WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::saga::PricedLine;

    /// Orders' database on every test engine, migrated, and its name.
    async fn databases(dir: &std::path::Path) -> Vec<(Db, &'static str)> {
        let mut dbs = Vec::new();
        for engine in bazaar_testkit::engines() {
            let config = bazaar_testkit::config("orders", dir, &engine);
            let db = Db::connect(&config.database).await.expect("a database");
            db.migrate(&crate::MIGRATIONS).await.expect("migrated");
            dbs.push((db, engine.name()));
        }
        dbs
    }

    /// Places a pending order of `lines` held by `owner`; as `insert`
    /// answers it.
    async fn place(db: &Db, lines: &Lines, owner: &str) -> Order {
        let card = Card {
            number: CardNumber::typed("4242 4242 4242 4242").expect("a card number"),
            expiry: Expiry::new(12, 2030).expect("an expiry"),
            cvc: Cvc::parse("123").expect("a CVC"),
        };
        let address = Address {
            name: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        };
        let now = now_ms();
        let order = NewOrder {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            key: "key",
            fingerprint: "fingerprint",
            from_cart: false,
            lines,
            card: &card,
            address: &address,
            now,
            lease_owner: owner,
            lease_until: now + 60_000,
        };
        let mut tx = db.begin_write().await.expect("begin");
        let placed = insert(&mut tx, &order, "3 items ordered; checkout started.")
            .await
            .expect("inserted");
        tx.commit().await.expect("commit");
        placed
    }

    /// A confirmed cart order stays due until its cart is cleared, whoever
    /// clears it: a crash between confirming and clearing loses nothing.
    #[tokio::test]
    async fn a_cart_to_clear_is_claimed_once_at_a_time_until_done() {
        let dir = tempfile::tempdir().expect("a directory");
        for (db, on) in databases(dir.path()).await {
            let mug = Uuid::now_v7();
            let lines = Lines::of(&[(mug, 2)]);
            let order = place(&db, &lines, "orders-0").await;
            let id = order.id;
            let now = now_ms();
            let mut tx = db.begin_write().await.expect("begin");
            cart_clear_due(&mut tx, id, now + 1_000).await.expect("due");
            tx.commit().await.expect("commit");

            let claim = |at: i64| claim_cart_clears(&db, at, at + 10_000, 10);
            assert!(
                claim(now).await.expect("claim").is_empty(),
                "{on}: not due yet"
            );
            let first = claim(now + 1_000).await.expect("claim");
            assert_eq!(first.len(), 1, "{on}");
            assert_eq!(first[0].0, id);
            assert_eq!(first[0].1, order.user_id);
            assert_eq!(first[0].2, lines, "{on}: the order's lines");
            // Claimed: another poller skips it until the claim runs out.
            assert!(claim(now + 2_000).await.expect("claim").is_empty(), "{on}");
            assert_eq!(
                claim(now + 11_000).await.expect("claim").len(),
                1,
                "{on}: retried"
            );

            let mut tx = db.begin_write().await.expect("begin");
            cart_clear_done(&mut tx, id).await.expect("done");
            tx.commit().await.expect("commit");
            assert!(
                claim(now + 60_000).await.expect("claim").is_empty(),
                "{on}: done"
            );
        }
    }

    /// `place` answers 202 with what `insert` built instead of reading the
    /// order back: it has to be what reading it back gives.
    #[tokio::test]
    async fn a_new_order_is_answered_as_it_is_stored() {
        let dir = tempfile::tempdir().expect("a directory");
        for (db, on) in databases(dir.path()).await {
            let ordered = Lines::of(&[(Uuid::now_v7(), 2), (Uuid::now_v7(), 1)]);
            let placed = place(&db, &ordered, "me").await;
            let stored = of_user(&db, placed.id, placed.user_id)
                .await
                .expect("read back");
            assert_eq!(Some(placed), stored, "on {on}");
            db.close().await;
        }
    }

    /// The engine reads a saga only when it claims it, then keeps it in
    /// memory: the copy, updated as the steps do, has to stay what the
    /// database holds.
    #[tokio::test]
    async fn a_saga_kept_in_memory_is_the_stored_one() {
        let dir = tempfile::tempdir().expect("a directory");
        for (db, on) in databases(dir.path()).await {
            let (teapot, mug) = (Uuid::now_v7(), Uuid::now_v7());
            let placed = place(&db, &Lines::of(&[(teapot, 2), (mug, 1)]), "me").await;
            let id = placed.id;
            let now = now_ms();
            assert!(
                claim(&db, id, "other", now, now + 60_000)
                    .await
                    .expect("claim")
                    .is_none(),
                "the lease is held on {on}"
            );
            let mut kept = claim(&db, id, "me", now, now + 60_000)
                .await
                .expect("claim")
                .expect("claimed");
            assert_eq!(Some(kept.clone()), saga(&db, id).await.expect("read"));
            assert_eq!(kept.stage, Stage::Pricing);

            // Catalog answers in another order than the lines'.
            let seller = Uuid::now_v7();
            let quantity = |n| Quantity::new(n).expect("a quantity");
            let prices = Priced {
                lines: vec![
                    PricedLine {
                        product_id: mug,
                        title: "Mug".into(),
                        seller_id: seller,
                        quantity: quantity(1),
                        unit_amount: 450,
                    },
                    PricedLine {
                        product_id: teapot,
                        title: "Teapot".into(),
                        seller_id: seller,
                        quantity: quantity(2),
                        unit_amount: 1250,
                    },
                ],
                total: Money {
                    amount: 2 * 1250 + 450,
                    currency: "EUR".into(),
                },
            };
            let (from, to) = (Stage::Pricing, Stage::Reserving);
            let mut tx = db.begin_write().await.expect("begin");
            let theirs = priced(&mut tx, id, "other", from, to, &prices, now).await;
            assert!(!theirs.expect("fenced"), "not the owner's on {on}");
            let ours = priced(&mut tx, id, "me", from, to, &prices, now).await;
            assert!(ours.expect("priced"));
            append_all(
                &mut tx,
                id,
                &[("priced", "Priced."), ("again", "Twice.")],
                now,
            )
            .await
            .expect("appended");
            append(&mut tx, id, "thrice", "Thrice.", now)
                .await
                .expect("appended");
            tx.commit().await.expect("commit");
            kept.set_prices(&prices);
            kept.stage = to;
            assert_eq!(Some(kept), saga(&db, id).await.expect("read"), "on {on}");
            let order = of_user(&db, id, placed.user_id)
                .await
                .expect("read")
                .expect("the order");
            let steps: Vec<&str> = order.timeline.iter().map(|e| e.step.as_str()).collect();
            assert_eq!(steps, ["accepted", "priced", "again", "thrice"], "on {on}");
            assert_eq!(order.lines[0].title.as_deref(), Some("Teapot"));
            assert_eq!(order.lines[1].unit_amount, Some(450));
            db.close().await;
        }
    }
}
