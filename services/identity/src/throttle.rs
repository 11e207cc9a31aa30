//! Slowing down password guessing (`shared/API.md`, "Identity"): after
//! [`ACCOUNT_LIMIT`] failed sign-ins for one account, or [`ADDRESS_LIMIT`]
//! from one client address, within [`WINDOW_SECONDS`], login answers 429
//! with `Retry-After` until the window passes, before any password is
//! hashed; a success clears the account's count.
//!
//! The counts live in identity's database, so every replica sees the same
//! ones. The client address is the one the gateway decided on (it
//! overwrites [`CLIENT_ADDRESS`] on every request it passes on); a caller
//! that reaches identity directly is counted by its own address.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use bazaar_platform::db::Db;
use http::HeaderMap;
use sqlx::Row as _;

use crate::domain::Email;

/// The header carrying the client's address as the gateway saw it.
pub use bazaar_platform::server::CLIENT_ADDRESS;

/// Failures of one account before it is throttled.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failures from one address before it is throttled.
pub const ADDRESS_LIMIT: i64 = 20;
/// How long the failures of one window count.
pub const WINDOW_SECONDS: i64 = 15 * 60;

/// What one sign-in is counted under.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    account: Option<String>,
    address: String,
}

impl Keys {
    /// The keys of a sign-in as `email` (if it is an address at all) from
    /// the client of `headers` / `peer`.
    pub(crate) fn new(
        email: Option<&Email>,
        headers: &HeaderMap,
        peer: Option<ConnectInfo<SocketAddr>>,
    ) -> Self {
        let address = headers
            .get(CLIENT_ADDRESS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
            .or_else(|| peer.map(|ConnectInfo(addr)| addr.ip()))
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string());
        Self {
            account: email.map(|e| format!("account:{}", e.as_str())),
            address: format!("address:{address}"),
        }
    }

    fn limited(&self) -> impl Iterator<Item = (&str, i64)> {
        self.account
            .iter()
            .map(|k| (k.as_str(), ACCOUNT_LIMIT))
            .chain(std::iter::once((self.address.as_str(), ADDRESS_LIMIT)))
    }
}

/// Seconds until a sign-in under `keys` may be tried again, if it is
/// throttled now (`now` in unix seconds).
pub(crate) async fn wait(db: &Db, keys: &Keys, now: i64) -> Result<Option<i64>, sqlx::Error> {
    let mut longest = None;
    for (key, limit) in keys.limited() {
        let row = sqlx::query("SELECT failures, window_start FROM login_failures WHERE key = $1")
            .bind(key)
            .fetch_optional(db.pool())
            .await?;
        let Some(row) = row else { continue };
        let (failures, start): (i64, i64) = (row.get(0), row.get(1));
        let left = start + WINDOW_SECONDS - now;
        if failures >= limit && left > 0 {
            longest = Some(longest.map_or(left, |l: i64| l.max(left)));
        }
    }
    Ok(longest)
}

/// Counts a failed sign-in under each of `keys`, starting a new window
/// where the last one passed; forgets windows that passed.
pub(crate) async fn failed(db: &Db, keys: &Keys, now: i64) -> Result<(), sqlx::Error> {
    let passed = now - WINDOW_SECONDS;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM login_failures WHERE window_start <= $1")
        .bind(passed)
        .execute(&mut *tx)
        .await?;
    for (key, _) in keys.limited() {
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1",
        )
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Forgets the account's failures after a successful sign-in (the
/// address's keep counting: one address trying many accounts is the
/// attack it is for).
pub(crate) async fn succeeded(db: &Db, keys: &Keys) -> Result<(), sqlx::Error> {
    if let Some(account) = &keys.account {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(account)
            .execute(db.writer())
            .await?;
    }
    Ok(())
}
