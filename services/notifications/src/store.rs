//! The SQL: users, follows and products (notifications' own copies, fed by
//! events), the feeds, and the e-mails to send. One query string serves
//! SQLite and PostgreSQL (sqlx's `Any`); callers own the transactions.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{self, Kind, Link, Page};

/// Milliseconds since the epoch, from the system clock.
pub(crate) use bazaar_platform::clock::now_ms;

fn uuid(raw: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

// ---- users, follows, products ----

/// Records (or refreshes) a registered user's address and name.
pub(crate) async fn upsert_user(
    tx: &mut Transaction<'_, Any>,
    user: Uuid,
    email: &str,
    name: &str,
    role: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (user_id, email, name, role, registered_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name, role = excluded.role",
    )
    .bind(user.to_string())
    .bind(email)
    .bind(name)
    .bind(role)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A user's display name, if notifications has heard of them.
pub(crate) async fn user_name(
    tx: &mut Transaction<'_, Any>,
    user: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT name FROM users WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Sets whether `follower` follows `seller`, as an event at `at` (ms) said,
/// unless a later event already said otherwise; whether it applied.
pub(crate) async fn set_follow(
    tx: &mut Transaction<'_, Any>,
    seller: Uuid,
    follower: Uuid,
    following: bool,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO follows (seller_id, follower_id, following, changed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (seller_id, follower_id) DO UPDATE \
         SET following = excluded.following, changed_at = excluded.changed_at \
         WHERE follows.changed_at <= excluded.changed_at",
    )
    .bind(seller.to_string())
    .bind(follower.to_string())
    .bind(i64::from(following))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who followed `seller` at or before `at` (ms) and still does, by id.
pub(crate) async fn followers(
    tx: &mut Transaction<'_, Any>,
    seller: Uuid,
    at: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT follower_id FROM follows \
         WHERE seller_id = $1 AND following = 1 AND changed_at <= $2 ORDER BY follower_id",
    )
    .bind(seller.to_string())
    .bind(at)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| uuid(&r.get::<String, _>(0))).collect()
}

/// A product as catalog announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Product {
    pub(crate) product_id: Uuid,
    pub(crate) seller_id: Uuid,
    pub(crate) title: String,
    pub(crate) price_amount: i64,
    pub(crate) currency: String,
    /// The `catalog.product.created` event.
    pub(crate) event_id: String,
    /// When it was created (ms).
    pub(crate) created_at: i64,
}

/// Records a new product; one already known is left as it is.
pub(crate) async fn insert_product(
    tx: &mut Transaction<'_, Any>,
    p: &Product,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (product_id, seller_id, title, price_amount, currency, event_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (product_id) DO NOTHING",
    )
    .bind(p.product_id.to_string())
    .bind(p.seller_id.to_string())
    .bind(&p.title)
    .bind(p.price_amount)
    .bind(&p.currency)
    .bind(&p.event_id)
    .bind(p.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A product's new title and price.
pub(crate) async fn update_product(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
    title: &str,
    price_amount: i64,
    currency: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET title = $1, price_amount = $2, currency = $3 WHERE product_id = $4",
    )
    .bind(title)
    .bind(price_amount)
    .bind(currency)
    .bind(product.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A product's title, if notifications has heard of it.
pub(crate) async fn product_title(
    tx: &mut Transaction<'_, Any>,
    product: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT title FROM products WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Up to `limit` products of `seller` created at or after `at` (ms), oldest
/// first.
pub(crate) async fn products_since(
    tx: &mut Transaction<'_, Any>,
    seller: Uuid,
    at: i64,
    limit: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT product_id, title, price_amount, currency, event_id, created_at FROM products \
         WHERE seller_id = $1 AND created_at >= $2 ORDER BY created_at, product_id LIMIT $3",
    )
    .bind(seller.to_string())
    .bind(at)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Product {
                product_id: uuid(&r.get::<String, _>(0))?,
                seller_id: seller,
                title: r.get(1),
                price_amount: r.get(2),
                currency: r.get(3),
                event_id: r.get(4),
                created_at: r.get(5),
            })
        })
        .collect()
}

// ---- feeds ----

/// One notification of a user's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) kind: Kind,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) link: Link,
    pub(crate) read: bool,
    /// When it was made (ms).
    pub(crate) created_at: i64,
}

/// A notification to make.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) user_id: Uuid,
    pub(crate) kind: Kind,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) link: Link,
}

const COLUMNS: &str = "id, user_id, kind, title, body, link, is_read, created_at";

fn notification(row: &AnyRow) -> Result<Notification, sqlx::Error> {
    let kind: String = row.get(2);
    Ok(Notification {
        id: uuid(&row.get::<String, _>(0))?,
        user_id: uuid(&row.get::<String, _>(1))?,
        kind: Kind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown kind {kind:?}").into()))?,
        title: row.get(3),
        body: row.get(4),
        link: Link::stored(row.get(5)),
        read: row.get::<i64, _>(6) != 0,
        created_at: row.get(7),
    })
}

/// Stores `draft` for its user as made from event `source`, unless that
/// event already made one for this user (then `None`).
///
/// The user's feed head is written first: that row lock (PostgreSQL) or the
/// writer lock (SQLite) is held until commit, so the user's notifications
/// get their ids — ever growing, see [`domain::next_id`] — in commit order.
/// Callers touching several users lock them in id order.
pub(crate) async fn insert_notification(
    tx: &mut Transaction<'_, Any>,
    draft: &Draft,
    source: &str,
) -> Result<Option<Notification>, sqlx::Error> {
    let user = draft.user_id.to_string();
    // One statement creates the head if missing and locks it (a no-op
    // update), so replicas number one user's notifications in turn.
    let last: String = sqlx::query(
        "INSERT INTO feed_heads (user_id, last_id) VALUES ($1, '') \
         ON CONFLICT (user_id) DO UPDATE SET last_id = feed_heads.last_id RETURNING last_id",
    )
    .bind(&user)
    .fetch_one(&mut **tx)
    .await?
    .get(0);
    let id = domain::next_id(Uuid::parse_str(&last).ok());
    let created_at = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, title, body, link, is_read, source_event_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) ON CONFLICT (source_event_id, user_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(&user)
    .bind(draft.kind.as_str())
    .bind(&draft.title)
    .bind(&draft.body)
    .bind(draft.link.as_str())
    .bind(source)
    .bind(created_at)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(None);
    }
    sqlx::query("UPDATE feed_heads SET last_id = $1 WHERE user_id = $2")
        .bind(id.to_string())
        .bind(&user)
        .execute(&mut **tx)
        .await?;
    Ok(Some(Notification {
        id,
        user_id: draft.user_id,
        kind: draft.kind,
        title: draft.title.clone(),
        body: draft.body.clone(),
        link: draft.link.clone(),
        read: false,
        created_at,
    }))
}

/// One page of `user`'s feed, newest first, and how many it has in all.
pub(crate) async fn page<'e, E>(
    db: E,
    user: Uuid,
    page: Page,
) -> Result<(Vec<Notification>, i64), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any> + Copy,
{
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user.to_string())
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM notifications WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_one(db)
        .await?
        .get(0);
    let items = rows.iter().map(notification).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// How many of `user`'s notifications are not marked read (the storefront's
/// bell).
pub(crate) async fn unread<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    user: Uuid,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND is_read = 0")
        .bind(user.to_string())
        .fetch_one(db)
        .await?;
    Ok(row.get(0))
}

/// Up to `limit` of `user`'s notifications after `after`, oldest first.
pub(crate) async fn since<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    user: Uuid,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(user.to_string())
    .bind(after.to_string())
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(notification).collect()
}

/// The id of `user`'s newest notification.
pub(crate) async fn newest<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    user: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    let row =
        sqlx::query("SELECT id FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(user.to_string())
            .fetch_optional(db)
            .await?;
    row.map(|r| uuid(&r.get::<String, _>(0))).transpose()
}

/// Marks `user`'s notification `id` read; `false` if the user has none with
/// that id.
pub(crate) async fn mark_read<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    user: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE notifications SET is_read = 1 WHERE id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- e-mail ----

/// An e-mail's content, rendered when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Letter {
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
}

/// Records an e-mail about `notification` to send; its id is the
/// notification's, so one notification never has two e-mails.
pub(crate) async fn enqueue_mail(
    tx: &mut Transaction<'_, Any>,
    notification: &Notification,
    letter: &Letter,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, user_id, subject, text_body, html_body, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(notification.id.to_string())
    .bind(notification.user_id.to_string())
    .bind(&letter.subject)
    .bind(&letter.text)
    .bind(&letter.html)
    .bind(notification.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` e-mails due at `now` that no worker holds, oldest first.
pub(crate) async fn due_mail<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Takes e-mail `id` for this worker until `until` unless another holds
/// it; whether it did.
pub(crate) async fn claim_mail<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    id: &str,
    now: i64,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE deliveries SET claimed_until = $1 \
         WHERE id = $2 AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $3)",
    )
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An e-mail to send, with its recipient if known.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) id: Uuid,
    pub(crate) letter: Letter,
    /// Sends made before this one.
    pub(crate) attempts: i64,
    /// When it was recorded (ms): its `Date`.
    pub(crate) created_at: i64,
    /// The recipient's address and name, once identity announced them.
    pub(crate) to: Option<(String, String)>,
}

/// E-mail `id` with its recipient.
pub(crate) async fn outgoing<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    id: &str,
) -> Result<Option<Outgoing>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.id, d.subject, d.text_body, d.html_body, d.attempts, d.created_at, u.email, u.name \
         FROM deliveries d LEFT JOIN users u ON u.user_id = d.user_id WHERE d.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        let email: Option<String> = r.get(6);
        let name: Option<String> = r.get(7);
        Ok(Outgoing {
            id: uuid(&r.get::<String, _>(0))?,
            letter: Letter {
                subject: r.get(1),
                text: r.get(2),
                html: r.get(3),
            },
            attempts: r.get(4),
            created_at: r.get(5),
            to: email.map(|e| (e, name.unwrap_or_default())),
        })
    })
    .transpose()
}

/// E-mail `id` went out.
pub(crate) async fn mail_sent<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    id: Uuid,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = $1, claimed_until = NULL, last_error = NULL \
         WHERE id = $2",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// E-mail `id` did not go out this time: try again at `next` (ms), or give
/// up (`next` = `None`).
pub(crate) async fn mail_failed<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    id: Uuid,
    next: Option<i64>,
    error: &str,
) -> Result<(), sqlx::Error> {
    let state = if next.is_some() { "pending" } else { "failed" };
    sqlx::query(
        "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, claimed_until = NULL, last_error = $3 \
         WHERE id = $4",
    )
    .bind(state)
    .bind(next.unwrap_or(0))
    .bind(error)
    .bind(id.to_string())
    .execute(db)
    .await?;
    Ok(())
}
