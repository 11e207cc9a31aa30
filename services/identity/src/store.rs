//! Identity's database: users, refresh tokens, follows. Plain SQL through
//! sqlx's `Any` driver, the same for SQLite and PostgreSQL. Functions that
//! must commit together with an event take the caller's transaction.

use sqlx::{Any, AnyPool, Row as _, Transaction};
use uuid::Uuid;

use crate::domain::{Email, Name, Role};
use crate::tokens::{REFRESH_TTL_SECONDS, RefreshToken};

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) email: Email,
    pub(crate) name: Name,
    pub(crate) role: Role,
}

/// Errors reading what this service itself wrote.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A row holds what the service never writes: a bug or a manual edit.
    #[error("corrupt row in {table}: {what}")]
    Corrupt { table: &'static str, what: String },
}

fn corrupt(table: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        what: what.into(),
    }
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    Ok(User {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("users", format!("id {id:?}")))?,
        email: Email::from_stored(row.try_get("email")?),
        name: Name::from_stored(row.try_get("name")?),
        role: Role::parse(&role).ok_or_else(|| corrupt("users", format!("role {role:?}")))?,
    })
}

/// RFC 3339 UTC, how times are stored as text.
pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Inserts a new user. A taken e-mail is the database's unique violation,
/// for the caller to turn into 409.
pub(crate) async fn insert_user(
    tx: &mut Transaction<'_, Any>,
    user: &User,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.id.to_string())
    .bind(user.email.as_str())
    .bind(user.name.as_str())
    .bind(user.role.as_str())
    .bind(password_hash)
    .bind(rfc3339_now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts `user` unless an account has its e-mail already; whether it
/// did. The unique e-mail makes a concurrent second insert a no-op.
pub(crate) async fn insert_user_if_absent(
    tx: &mut Transaction<'_, Any>,
    user: &User,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
    )
    .bind(user.id.to_string())
    .bind(user.email.as_str())
    .bind(user.name.as_str())
    .bind(user.role.as_str())
    .bind(password_hash)
    .bind(rfc3339_now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The user with `email` and their password hash.
pub(crate) async fn credentials(
    pool: &AnyPool,
    email: &Email,
) -> Result<Option<(User, String)>, StoreError> {
    let row =
        sqlx::query("SELECT id, email, name, role, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?;
    row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
        .transpose()
}

/// Replaces a user's password hash (after a login found it outdated).
pub(crate) async fn update_password_hash(
    pool: &AnyPool,
    user: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

/// The user with `id`.
pub(crate) async fn user(pool: &AnyPool, id: Uuid) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT id, email, name, role FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Stores a new refresh token of `family` for `user`, valid for 30 days from
/// `now`.
pub(crate) async fn insert_refresh(
    tx: &mut Transaction<'_, Any>,
    token: &RefreshToken,
    family: Uuid,
    user: Uuid,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(family.to_string())
    .bind(user.to_string())
    .bind(&token.hash)
    .bind(now)
    .bind(now + REFRESH_TTL_SECONDS)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets `user`'s refresh tokens that expired: they can no longer be
/// redeemed, so keeping them would only grow the table.
pub(crate) async fn delete_expired_refresh(
    tx: &mut Transaction<'_, Any>,
    user: Uuid,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at <= $2")
        .bind(user.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What redeeming a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redeemed {
    /// It was live and is now used: issue the next one in `family` to `user`.
    Fresh { family: Uuid, user: User },
    /// Nobody issued it.
    Unknown,
    /// It expired.
    Expired,
    /// It was already used or revoked: a copy is in someone else's hands.
    /// Its family is now revoked.
    Replayed { family: Uuid, user: Uuid },
}

/// Redeems the refresh token whose hash is `hash`, at `now`, inside `tx`.
///
/// The first statement marks it used only if it is live, so of two
/// concurrent redemptions exactly one wins and the other is a replay; and
/// starting with a write takes SQLite's write lock up front, so the
/// transaction never has to upgrade a stale read snapshot.
pub(crate) async fn redeem_refresh(
    tx: &mut Transaction<'_, Any>,
    hash: &str,
    now: i64,
) -> Result<Redeemed, StoreError> {
    let marked = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(hash)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let row = sqlx::query(
        "SELECT t.family_id, t.used_at, t.revoked_at, u.id, u.email, u.name, u.role FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Redeemed::Unknown);
    };
    let family: String = row.try_get("family_id")?;
    let family = Uuid::parse_str(&family)
        .map_err(|_| corrupt("refresh_tokens", format!("family {family:?}")))?;
    let user = user_from_row(&row)?;
    if marked == 1 {
        return Ok(Redeemed::Fresh { family, user });
    }
    // Not marked: used, revoked or expired. A used or revoked one counts as
    // replayed even when it has also expired since.
    let used_at: Option<i64> = row.try_get("used_at")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    if used_at.is_none() && revoked_at.is_none() {
        return Ok(Redeemed::Expired);
    }
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(Redeemed::Replayed {
        family,
        user: user.id,
    })
}

/// Whether `id` is a user with the seller role.
/// Revokes every refresh token of the sign-in `token_hash` belongs to
/// (logout); how many were still good.
pub(crate) async fn revoke_sign_in(
    writer: &AnyPool,
    token_hash: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL \
         AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
    )
    .bind(now)
    .bind(token_hash)
    .execute(writer)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn is_seller(pool: &AnyPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM users WHERE id = $1 AND role = $2")
        .bind(id.to_string())
        .bind(Role::Seller.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Records that `follower` follows `seller`; `false` if it already did.
pub(crate) async fn follow(
    tx: &mut Transaction<'_, Any>,
    follower: Uuid,
    seller: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO follows (follower_id, seller_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(follower.to_string())
    .bind(seller.to_string())
    .bind(rfc3339_now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Removes the follow of `seller` by `follower`; `false` if there was none.
pub(crate) async fn unfollow(
    tx: &mut Transaction<'_, Any>,
    follower: Uuid,
    seller: Uuid,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND seller_id = $2")
        .bind(follower.to_string())
        .bind(seller.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}
