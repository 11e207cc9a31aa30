//! Reserve, commit, release and expire: what orders asks of inventory,
//! each idempotent by order id, each one transaction.

use std::time::Duration;

use bazaar_events::inventory::StockLow;
use bazaar_platform::clock::Clock;
use bazaar_platform::db::{Db, is_unique_violation};
use bazaar_platform::events::Events;
use bazaar_platform::tasks::Shutdown;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use crate::domain::Lines;
use crate::metrics::InventoryMetrics;
use crate::store::{self, Reservation, State};

/// What reservations work with.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    pub(crate) db: Db,
    pub(crate) events: Events,
    pub(crate) ttl: Duration,
    pub(crate) low_stock: i64,
    pub(crate) metrics: InventoryMetrics,
    /// What "now" is for expiry: the server's clock.
    pub(crate) clock: Clock,
}

/// One product an order could not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shortage {
    pub(crate) product_id: Uuid,
    pub(crate) requested: i64,
    pub(crate) available: i64,
}

/// Why a call about an order's reservation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LedgerError {
    /// Some products have fewer units available than asked.
    #[error("out of stock")]
    OutOfStock(Vec<Shortage>),
    /// Some products are unknown or deleted.
    #[error("unknown products")]
    UnknownProducts(Vec<Shortage>),
    /// The order id has a reservation of other items.
    #[error("the order has a reservation of other items")]
    OtherItems,
    /// The order has no reservation.
    #[error("no reservation for this order")]
    NotFound,
    /// The reservation is settled in a way that excludes what was asked.
    #[error("the reservation is {}", .0.as_str())]
    Settled(State),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The outbox refused an event.
    #[error("outbox: {0}")]
    Events(#[from] bazaar_bus::BusError),
}

/// Attempts when a concurrent call on the same order changed it between
/// our read and our write (PostgreSQL only; SQLite serializes writers).
const ATTEMPTS: usize = 3;

impl Ledger {
    /// Holds every line for `order`, or none.
    pub(crate) async fn reserve(
        &self,
        order: Uuid,
        lines: Lines,
    ) -> Result<Reservation, LedgerError> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.db.begin_write().await?;
            if let Some(existing) = store::reservation(&mut tx, order).await? {
                tx.rollback().await?;
                return if existing.lines != lines {
                    Err(LedgerError::OtherItems)
                } else if matches!(existing.state, State::Reserved | State::Committed) {
                    Ok(existing)
                } else {
                    Err(LedgerError::Settled(existing.state))
                };
            }
            let mut missing = Vec::new();
            for (product, quantity) in lines.iter() {
                if !store::hold(&mut tx, product, quantity).await? {
                    missing.push((product, quantity));
                }
            }
            if !missing.is_empty() {
                let mut unknown = Vec::new();
                let mut short = Vec::new();
                for (product, quantity) in missing {
                    let found = store::stock(&mut *tx, product).await?;
                    let shortage = Shortage {
                        product_id: product,
                        requested: quantity.get(),
                        available: found.as_ref().map_or(0, store::Stock::available),
                    };
                    if found.is_some() {
                        short.push(shortage);
                    } else {
                        unknown.push(shortage);
                    }
                }
                tx.rollback().await?;
                return Err(if unknown.is_empty() {
                    self.metrics.reservation("out_of_stock");
                    LedgerError::OutOfStock(short)
                } else {
                    self.metrics.reservation("unknown_product");
                    LedgerError::UnknownProducts(unknown)
                });
            }
            let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
            let reservation = Reservation {
                order_id: order,
                state: State::Reserved,
                lines: lines.clone(),
                expires_at: self.clock.now_ms().saturating_add(ttl),
            };
            match store::insert_reservation(&mut tx, &reservation).await {
                Ok(()) => {}
                // The same order reserved concurrently: answer what it got.
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            self.metrics.reservation("reserved");
            tracing::info!(order_id = %order, "stock reserved");
            return Ok(reservation);
        }
        Err(sqlx::Error::Protocol("the order's reservation kept changing".into()).into())
    }

    /// The reserved units of `order` leave stock.
    pub(crate) async fn commit(&self, order: Uuid) -> Result<Reservation, LedgerError> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.db.begin_write().await?;
            let Some(mut reservation) = store::reservation(&mut tx, order).await? else {
                return Err(LedgerError::NotFound);
            };
            match reservation.state {
                State::Committed => return Ok(reservation),
                State::Released | State::Expired => {
                    return Err(LedgerError::Settled(reservation.state));
                }
                State::Reserved => {}
            }
            let now = self.clock.now_ms();
            if reservation.expires_at <= now {
                // Too late: expire it here rather than wait for the sweeper.
                if !self
                    .give_back(&mut tx, &reservation, State::Expired, Some(now))
                    .await?
                {
                    // Settled meanwhile by another call: read it again.
                    tx.rollback().await?;
                    continue;
                }
                tx.commit().await?;
                self.metrics.reservation("expired");
                return Err(LedgerError::Settled(State::Expired));
            }
            if !store::settle(&mut tx, order, State::Committed, None).await? {
                tx.rollback().await?;
                continue;
            }
            for (product, quantity) in reservation.lines.iter() {
                store::take(&mut tx, product, quantity).await?;
            }
            let mut announced = false;
            for (product, _) in reservation.lines.iter() {
                announced |= self.check_low(&mut tx, product, true).await?;
            }
            tx.commit().await?;
            if announced {
                self.events.committed();
            }
            self.metrics.reservation("committed");
            tracing::info!(order_id = %order, "reservation committed");
            reservation.state = State::Committed;
            return Ok(reservation);
        }
        Err(sqlx::Error::Protocol("the order's reservation kept changing".into()).into())
    }

    /// The reserved units of `order` become available again.
    pub(crate) async fn release(&self, order: Uuid) -> Result<Reservation, LedgerError> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.db.begin_write().await?;
            let Some(mut reservation) = store::reservation(&mut tx, order).await? else {
                return Err(LedgerError::NotFound);
            };
            match reservation.state {
                State::Released | State::Expired => return Ok(reservation),
                State::Committed => return Err(LedgerError::Settled(State::Committed)),
                State::Reserved => {}
            }
            if !self
                .give_back(&mut tx, &reservation, State::Released, None)
                .await?
            {
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            self.metrics.reservation("released");
            tracing::info!(order_id = %order, "reservation released");
            reservation.state = State::Released;
            return Ok(reservation);
        }
        Err(sqlx::Error::Protocol("the order's reservation kept changing".into()).into())
    }

    /// Expires `order`'s reservation if it is still held past `now`;
    /// whether it did.
    pub(crate) async fn expire(&self, order: Uuid, now: i64) -> Result<bool, LedgerError> {
        let mut tx = self.db.begin_write().await?;
        let Some(reservation) = store::reservation(&mut tx, order).await? else {
            return Ok(false);
        };
        let expired = self
            .give_back(&mut tx, &reservation, State::Expired, Some(now))
            .await?;
        tx.commit().await?;
        if expired {
            self.metrics.reservation("expired");
            tracing::info!(order_id = %order, "reservation expired");
        }
        Ok(expired)
    }

    /// Expires every reservation held past now; how many.
    pub(crate) async fn sweep(&self) -> Result<usize, LedgerError> {
        let now = self.clock.now_ms();
        let mut count = 0;
        for order in store::expired_orders(&self.db, now, 100).await? {
            if self.expire(order, now).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Moves a held reservation to `to` and gives its units back; false if
    /// it was no longer held (or, with `expired_by`, not expired by then).
    async fn give_back(
        &self,
        tx: &mut Transaction<'_, Any>,
        reservation: &Reservation,
        to: State,
        expired_by: Option<i64>,
    ) -> Result<bool, LedgerError> {
        if !store::settle(tx, reservation.order_id, to, expired_by).await? {
            return Ok(false);
        }
        for (product, quantity) in reservation.lines.iter() {
            store::give_back(tx, product, quantity).await?;
            self.check_low(tx, product, false).await?;
        }
        Ok(true)
    }

    /// Announces low stock of `product` in `tx` if it just crossed the
    /// threshold (and `announce`); whether it did.
    pub(crate) async fn check_low(
        &self,
        tx: &mut Transaction<'_, Any>,
        product: Uuid,
        announce: bool,
    ) -> Result<bool, LedgerError> {
        let Some(stock) = store::crossed_low(tx, product, self.low_stock, announce).await? else {
            return Ok(false);
        };
        let Ok(seller_id) = Uuid::parse_str(&stock.seller_id) else {
            tracing::warn!(product_id = %product, "stock row with a seller id that is not a UUID; low stock not announced");
            return Ok(false);
        };
        let event = StockLow {
            product_id: product,
            seller_id,
            available: stock.available(),
        };
        self.events
            .append(tx, Some(&product.to_string()), &event)
            .await?;
        tracing::info!(product_id = %product, available = event.available, "stock is low");
        Ok(true)
    }

    /// Runs [`Ledger::sweep`] every quarter of the TTL (at least every
    /// 30 s) until the server stops; a sweep under way is finished first.
    pub(crate) async fn sweep_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let period = (self.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        while shutdown
            .unless_requested(tokio::time::sleep(period))
            .await
            .is_some()
        {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "released expired reservations"),
                Err(e) => tracing::warn!(error = %e, "cannot release expired reservations"),
            }
        }
        Ok(())
    }
}
