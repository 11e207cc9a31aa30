//! The SQL: payments and the ledger of money they moved. One query string
//! serves SQLite and PostgreSQL (sqlx's `Any`); the callers own the
//! transactions.
//!
//! Money cannot move twice by construction: a payment changes state only by
//! a conditional `UPDATE … WHERE state = $from` (evaluated under the row's
//! lock on PostgreSQL, under the single writer lock on SQLite, whose write
//! transactions begin `IMMEDIATE`), and the ledger's `UNIQUE (payment_id,
//! kind)` refuses a second capture, void or refund row whatever the code
//! does.

use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::domain::{Amount, Currency, DeclineReason, State};

/// Now, as stored: RFC 3339 in UTC.
pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// One order's payment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payment {
    pub(crate) id: Uuid,
    pub(crate) order_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) amount: Amount,
    pub(crate) currency: Currency,
    pub(crate) state: State,
    /// Set exactly when declined.
    pub(crate) decline_reason: Option<DeclineReason>,
    pub(crate) card_last4: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// A kind of money movement; each happens at most once per payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Movement {
    Authorize,
    Capture,
    Void,
    Refund,
}

impl Movement {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

const COLUMNS: &str = "id, order_id, user_id, amount, currency, state, decline_reason, \
                       card_last4, created_at, updated_at";

fn decode_err(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("a stored payment with {what}").into())
}

fn uuid(row: &sqlx::any::AnyRow, i: usize) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(&row.try_get::<String, _>(i)?).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn payment(row: &sqlx::any::AnyRow) -> Result<Payment, sqlx::Error> {
    let reason: Option<String> = row.try_get(6)?;
    Ok(Payment {
        id: uuid(row, 0)?,
        order_id: uuid(row, 1)?,
        user_id: uuid(row, 2)?,
        amount: Amount::new(row.try_get(3)?).ok_or_else(|| decode_err("an amount under 1"))?,
        currency: Currency::parse(&row.try_get::<String, _>(4)?)
            .ok_or_else(|| decode_err("a bad currency"))?,
        state: State::parse(&row.try_get::<String, _>(5)?)
            .ok_or_else(|| decode_err("an unknown state"))?,
        decline_reason: match reason {
            Some(r) => {
                Some(DeclineReason::parse(&r).ok_or_else(|| decode_err("an unknown reason"))?)
            }
            None => None,
        },
        card_last4: row.try_get(7)?,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
    })
}

/// The payment of `order`, if it has one.
pub(crate) async fn by_order<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    order: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
    ))
    .bind(order.to_string())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(payment).transpose()
}

/// The payments of `order` that belong to `user` (at most one; none when
/// the order is someone else's).
pub(crate) async fn of_user_order<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    order: Uuid,
    user: Uuid,
) -> Result<Vec<Payment>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1 AND user_id = $2 ORDER BY id"
    ))
    .bind(order.to_string())
    .bind(user.to_string())
    .fetch_all(executor)
    .await?;
    rows.iter().map(payment).collect()
}

/// Records a new payment unless its order has one already; whether it did.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Any>,
    p: &Payment,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (order_id) DO NOTHING"
    ))
    .bind(p.id.to_string())
    .bind(p.order_id.to_string())
    .bind(p.user_id.to_string())
    .bind(p.amount.get())
    .bind(p.currency.as_str().to_owned())
    .bind(p.state.as_str())
    .bind(p.decline_reason.map(DeclineReason::as_str))
    .bind(p.card_last4.clone())
    .bind(p.created_at.clone())
    .bind(p.updated_at.clone())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves payment `id` from `from` to `to` at `at`, only if it is in `from`;
/// whether it moved. Of callers racing on one payment, one wins.
pub(crate) async fn transition(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    from: State,
    to: State,
    at: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE payments SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(to.as_str())
            .bind(at.to_owned())
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes the movement `kind` of payment `p`'s amount to the ledger. A
/// second movement of the same kind is a unique violation.
pub(crate) async fn record(
    tx: &mut Transaction<'_, Any>,
    p: &Payment,
    kind: Movement,
    at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ledger (id, payment_id, kind, amount, currency, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(p.id.to_string())
    .bind(kind.as_str())
    .bind(p.amount.get())
    .bind(p.currency.as_str().to_owned())
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bazaar_platform::config::{DatabaseConfig, Secret};
    use bazaar_platform::db::{Db, is_unique_violation};

    use super::*;

    /// A migrated database per engine: SQLite always, PostgreSQL too when
    /// `BAZAAR_TEST_POSTGRES_URL` is set.
    async fn databases(dir: &std::path::Path) -> Vec<Db> {
        let mut configs = vec![DatabaseConfig::Sqlite(dir.join("payments.db"))];
        match std::env::var("BAZAAR_TEST_POSTGRES_URL") {
            Ok(base) if !base.is_empty() => {
                let mut url = url::Url::parse(&base).expect("BAZAAR_TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/bazaar_test_{}", Uuid::now_v7().simple()));
                configs.push(DatabaseConfig::Postgres(Secret::new(url)));
            }
            _ => eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset"),
        }
        let mut dbs = Vec::new();
        for config in configs {
            let db = Db::connect(&config).await.expect("database");
            db.migrate(&crate::MIGRATIONS).await.expect("migrations");
            dbs.push(db);
        }
        dbs
    }

    fn authorized() -> Payment {
        let at = now();
        Payment {
            id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            amount: Amount::new(1999).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            state: State::Authorized,
            decline_reason: None,
            card_last4: "4242".into(),
            created_at: at.clone(),
            updated_at: at,
        }
    }

    #[tokio::test]
    async fn the_ledger_refuses_a_second_movement_of_a_kind() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let p = authorized();
            let mut tx = db.begin_write().await.unwrap();
            assert!(insert(&mut tx, &p).await.unwrap());
            record(&mut tx, &p, Movement::Authorize, &now())
                .await
                .unwrap();
            record(&mut tx, &p, Movement::Capture, &now())
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // Written directly, around every check above the store.
            let mut tx = db.begin_write().await.unwrap();
            let twice = record(&mut tx, &p, Movement::Capture, &now())
                .await
                .unwrap_err();
            assert!(is_unique_violation(&twice), "{:?}: {twice}", db.kind());
            tx.rollback().await.unwrap();

            let captures: i64 = sqlx::query(
                "SELECT COUNT(*) FROM ledger WHERE payment_id = $1 AND kind = 'capture'",
            )
            .bind(p.id.to_string())
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
            assert_eq!(captures, 1, "{:?}", db.kind());
            // Another kind of movement is still possible.
            let mut tx = db.begin_write().await.unwrap();
            record(&mut tx, &p, Movement::Refund, &now()).await.unwrap();
            tx.commit().await.unwrap();
            db.close().await;
        }
    }

    #[tokio::test]
    async fn one_payment_per_order_and_transitions_are_conditional() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let p = authorized();
            let mut tx = db.begin_write().await.unwrap();
            assert!(insert(&mut tx, &p).await.unwrap());
            let again = Payment {
                id: Uuid::now_v7(),
                ..p.clone()
            };
            assert!(!insert(&mut tx, &again).await.unwrap(), "same order");
            tx.commit().await.unwrap();
            assert_eq!(
                by_order(db.pool(), p.order_id).await.unwrap(),
                Some(p.clone())
            );

            let mut tx = db.begin_write().await.unwrap();
            let at = now();
            assert!(
                transition(&mut tx, p.id, State::Authorized, State::Captured, &at)
                    .await
                    .unwrap()
            );
            assert!(
                !transition(&mut tx, p.id, State::Authorized, State::Voided, &at)
                    .await
                    .unwrap(),
                "no longer authorized"
            );
            tx.commit().await.unwrap();
            let stored = by_order(db.pool(), p.order_id).await.unwrap().unwrap();
            assert_eq!(stored.state, State::Captured);
            assert_eq!(
                of_user_order(db.pool(), p.order_id, p.user_id)
                    .await
                    .unwrap(),
                vec![stored]
            );
            assert!(
                of_user_order(db.pool(), p.order_id, Uuid::now_v7())
                    .await
                    .unwrap()
                    .is_empty()
            );
            db.close().await;
        }
    }

    #[tokio::test]
    async fn a_decline_reason_goes_with_the_declined_state_only() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let mut tx = db.begin_write().await.unwrap();
            let without = Payment {
                state: State::Declined,
                ..authorized()
            };
            assert!(insert(&mut tx, &without).await.is_err(), "{:?}", db.kind());
            tx.rollback().await.unwrap();
            let mut tx = db.begin_write().await.unwrap();
            let declined = Payment {
                state: State::Declined,
                decline_reason: Some(DeclineReason::InsufficientFunds),
                ..authorized()
            };
            assert!(insert(&mut tx, &declined).await.unwrap());
            tx.commit().await.unwrap();
            assert_eq!(
                by_order(db.pool(), declined.order_id).await.unwrap(),
                Some(declined)
            );
            db.close().await;
        }
    }
}
