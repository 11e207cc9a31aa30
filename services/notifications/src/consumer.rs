//! What notifications makes of other services' events. Runs in the
//! subscription's transaction, so the inbox row, the notifications, their
//! live events and their e-mails commit together or not at all.
//!
//! Besides notifying, it keeps notifications' own copies of what it needs:
//! users (address and name, from identity), the follow graph (from
//! identity's follow events) and products (titles, from catalog). It never
//! asks another service.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_bus::subscription::Handler;
use bazaar_bus::{Envelope, Event as _};
use bazaar_events::catalog::{ProductCreated, ProductUpdated};
use bazaar_events::identity::{Role, SellerFollowed, SellerUnfollowed, UserRegistered};
use bazaar_events::inventory::StockLow;
use bazaar_events::orders::{OrderCancelled, OrderConfirmed};
use bazaar_platform::events::Events;
use sqlx::{Any, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{Kind, Link, money};
use crate::live::NotificationCreated;
use crate::mail;
use crate::metrics::NotificationMetrics;
use crate::store::{self, Draft, Letter, Product};

/// The topics notifications consumes.
pub(crate) const TOPICS: &[&str] = &[
    UserRegistered::TOPIC,
    SellerFollowed::TOPIC,
    SellerUnfollowed::TOPIC,
    ProductCreated::TOPIC,
    ProductUpdated::TOPIC,
    StockLow::TOPIC,
    OrderConfirmed::TOPIC,
    OrderCancelled::TOPIC,
];

/// Products of a newly followed seller notified at most, when the follow
/// is handled after products it predates.
const FOLLOW_CATCH_UP: i64 = 20;

/// Stores notifications: the one way one is made.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    pub(crate) events: Events,
    pub(crate) metrics: NotificationMetrics,
    /// Rings the mail worker.
    pub(crate) mail: Arc<Notify>,
    /// The storefront's base URL, for e-mails.
    pub(crate) public_url: String,
}

impl Feed {
    /// Stores `draft` made from event `source`, announces it to every
    /// replica's streams and records its e-mail, all in `tx`; `false` when
    /// that event had already made it.
    async fn notify(
        &self,
        tx: &mut Transaction<'_, Any>,
        source: &str,
        draft: &Draft,
        letter: Option<Letter>,
    ) -> anyhow::Result<bool> {
        let Some(notification) = store::insert_notification(tx, draft, source).await? else {
            tracing::debug!(user_id = %draft.user_id, kind = draft.kind.as_str(), "already notified");
            return Ok(false);
        };
        self.events
            .append(
                tx,
                Some(&notification.user_id.to_string()),
                &NotificationCreated::from(&notification),
            )
            .await?;
        if let Some(letter) = letter {
            store::enqueue_mail(tx, &notification, &letter).await?;
            self.mail.notify_one();
        }
        // The relay publishes once this commits; it polls shortly after.
        self.events.committed();
        self.metrics.created(notification.kind);
        tracing::info!(
            notification_id = %notification.id,
            user_id = %notification.user_id,
            kind = notification.kind.as_str(),
            "notification stored"
        );
        Ok(true)
    }
}

/// Handles the events notifications consumes.
pub(crate) struct Inbound {
    pub(crate) feed: Feed,
}

/// An event's time in milliseconds since the epoch.
fn millis(event: &Envelope) -> i64 {
    i64::try_from(event.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[async_trait]
impl Handler for Inbound {
    async fn handle(&self, tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()> {
        let feed = &self.feed;
        let at = millis(event);
        match event.topic.as_str() {
            UserRegistered::TOPIC => {
                let user: UserRegistered = event.decode()?;
                let role = match user.role {
                    Role::Customer => "customer",
                    Role::Seller => "seller",
                    Role::Admin => "admin",
                };
                store::upsert_user(tx, user.user_id, &user.email, &user.name, role, at).await?;
                feed.notify(tx, &event.id, &welcome(user.user_id, &user.name), None)
                    .await?;
            }
            SellerFollowed::TOPIC => {
                let follow: SellerFollowed = event.decode()?;
                let applied =
                    store::set_follow(tx, follow.seller_id, follow.follower_id, true, at).await?;
                if applied && follow.follower_id != follow.seller_id {
                    // Products created after the follow whose events were
                    // handled before it: the follower hears of them too.
                    let seller = store::user_name(tx, follow.seller_id).await?;
                    for product in
                        store::products_since(tx, follow.seller_id, at, FOLLOW_CATCH_UP).await?
                    {
                        let draft = new_product(follow.follower_id, seller.as_deref(), &product);
                        feed.notify(tx, &product.event_id, &draft, None).await?;
                    }
                }
            }
            SellerUnfollowed::TOPIC => {
                let unfollow: SellerUnfollowed = event.decode()?;
                store::set_follow(tx, unfollow.seller_id, unfollow.follower_id, false, at).await?;
            }
            ProductCreated::TOPIC => {
                let created: ProductCreated = event.decode()?;
                let product = Product {
                    product_id: created.product_id,
                    seller_id: created.seller_id,
                    title: created.title,
                    price_amount: created.price_amount,
                    currency: created.currency,
                    event_id: event.id.clone(),
                    created_at: at,
                };
                store::insert_product(tx, &product).await?;
                let seller = store::user_name(tx, product.seller_id).await?;
                // In follower id order: every transaction takes feed heads
                // in the same order.
                for follower in store::followers(tx, product.seller_id, at).await? {
                    if follower != product.seller_id {
                        let draft = new_product(follower, seller.as_deref(), &product);
                        feed.notify(tx, &event.id, &draft, None).await?;
                    }
                }
            }
            ProductUpdated::TOPIC => {
                let updated: ProductUpdated = event.decode()?;
                store::update_product(
                    tx,
                    updated.product_id,
                    &updated.title,
                    updated.price_amount,
                    &updated.currency,
                )
                .await?;
            }
            StockLow::TOPIC => {
                let low: StockLow = event.decode()?;
                let title = store::product_title(tx, low.product_id).await?;
                feed.notify(tx, &event.id, &stock_low(&low, title.as_deref()), None)
                    .await?;
            }
            OrderConfirmed::TOPIC => {
                let order: OrderConfirmed = event.decode()?;
                let name = store::user_name(tx, order.user_id).await?;
                let lines: Vec<mail::Line> = order
                    .items
                    .iter()
                    .map(|l| mail::Line {
                        title: l.title.clone(),
                        quantity: l.quantity,
                        price: money(
                            l.unit_price.amount.saturating_mul(l.quantity),
                            &l.unit_price.currency,
                        ),
                    })
                    .collect();
                let total = money(order.total.amount, &order.total.currency);
                let letter = mail::order_confirmed(
                    name.as_deref(),
                    order.order_id,
                    &lines,
                    &total,
                    &feed.public_url,
                );
                feed.notify(tx, &event.id, &confirmed(&order, &total), Some(letter))
                    .await?;
            }
            OrderCancelled::TOPIC => {
                let order: OrderCancelled = event.decode()?;
                let name = store::user_name(tx, order.user_id).await?;
                let letter = mail::order_cancelled(
                    name.as_deref(),
                    order.order_id,
                    &order.reason,
                    &feed.public_url,
                );
                feed.notify(tx, &event.id, &cancelled(&order), Some(letter))
                    .await?;
            }
            other => tracing::debug!(topic = other, "event ignored"),
        }
        Ok(())
    }
}

// ---- what each notification says ----

fn welcome(user: Uuid, name: &str) -> Draft {
    let name = name.trim();
    Draft {
        user_id: user,
        kind: Kind::Welcome,
        title: if name.is_empty() {
            "Welcome to Bazaar".to_owned()
        } else {
            format!("Welcome to Bazaar, {name}")
        },
        body: "Your account is ready. Follow the sellers you like and their new products show up here.".to_owned(),
        link: Link::home(),
    }
}

fn new_product(follower: Uuid, seller: Option<&str>, product: &Product) -> Draft {
    let seller = seller.map(str::trim).filter(|s| !s.is_empty());
    Draft {
        user_id: follower,
        kind: Kind::NewProduct,
        title: match seller {
            Some(name) => format!("New from {name}"),
            None => "New from a seller you follow".to_owned(),
        },
        body: format!(
            "{} is on sale for {}.",
            product.title,
            money(product.price_amount, &product.currency)
        ),
        link: Link::product(product.product_id),
    }
}

fn stock_low(low: &StockLow, title: Option<&str>) -> Draft {
    let units = if low.available == 1 { "unit" } else { "units" };
    Draft {
        user_id: low.seller_id,
        kind: Kind::StockLow,
        title: "Stock is running low".to_owned(),
        body: match title {
            Some(title) => format!(
                "Only {} {units} of {title} left for new orders.",
                low.available
            ),
            None => format!(
                "One of your products has only {} {units} left for new orders.",
                low.available
            ),
        },
        link: Link::product(low.product_id),
    }
}

fn confirmed(order: &OrderConfirmed, total: &str) -> Draft {
    let what = match order.items.as_slice() {
        [] => "Your order".to_owned(),
        [one] => format!("Your order of {} x {}", one.quantity, one.title),
        [first, rest @ ..] => format!(
            "Your order of {} x {} and {} more item{}",
            first.quantity,
            first.title,
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    };
    Draft {
        user_id: order.user_id,
        kind: Kind::OrderConfirmed,
        title: "Order confirmed".to_owned(),
        body: format!("{what} is confirmed; {total} was charged."),
        link: Link::order(order.order_id),
    }
}

fn cancelled(order: &OrderCancelled) -> Draft {
    Draft {
        user_id: order.user_id,
        kind: Kind::OrderCancelled,
        title: "Order cancelled".to_owned(),
        body: format!(
            "Your order was cancelled and nothing was charged. {}",
            order.reason.trim()
        )
        .trim_end()
        .to_owned(),
        link: Link::order(order.order_id),
    }
}

#[cfg(test)]
mod tests {
    use bazaar_events::orders::{Money, OrderLine};

    use super::*;

    fn line(title: &str, quantity: i64) -> OrderLine {
        OrderLine {
            product_id: Uuid::now_v7(),
            seller_id: Uuid::now_v7(),
            title: title.into(),
            quantity,
            unit_price: Money {
                amount: 1000,
                currency: "EUR".into(),
            },
        }
    }

    #[test]
    fn an_order_is_summed_up_in_one_sentence() {
        let mut order = OrderConfirmed {
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            items: vec![line("Teapot", 2)],
            total: Money {
                amount: 2000,
                currency: "EUR".into(),
            },
        };
        let draft = confirmed(&order, "20.00 EUR");
        assert_eq!(
            draft.body,
            "Your order of 2 x Teapot is confirmed; 20.00 EUR was charged."
        );
        assert_eq!(draft.link, Link::order(order.order_id));
        order.items.push(line("Cup", 1));
        order.items.push(line("Saucer", 1));
        assert_eq!(
            confirmed(&order, "40.00 EUR").body,
            "Your order of 2 x Teapot and 2 more items is confirmed; 40.00 EUR was charged."
        );
    }

    #[test]
    fn stock_warnings_name_the_product_when_known() {
        let low = StockLow {
            product_id: Uuid::now_v7(),
            seller_id: Uuid::now_v7(),
            available: 1,
        };
        assert_eq!(
            stock_low(&low, Some("Kettle")).body,
            "Only 1 unit of Kettle left for new orders."
        );
        assert!(
            stock_low(&low, None)
                .body
                .starts_with("One of your products")
        );
        assert_eq!(stock_low(&low, None).user_id, low.seller_id);
    }

    #[test]
    fn new_products_name_their_seller_when_known() {
        let product = Product {
            product_id: Uuid::now_v7(),
            seller_id: Uuid::now_v7(),
            title: "Kettle".into(),
            price_amount: 2999,
            currency: "EUR".into(),
            event_id: "e".into(),
            created_at: 0,
        };
        let follower = Uuid::now_v7();
        let draft = new_product(follower, Some("Tea House"), &product);
        assert_eq!(draft.title, "New from Tea House");
        assert_eq!(draft.body, "Kettle is on sale for 29.99 EUR.");
        assert_eq!(draft.link, Link::product(product.product_id));
        assert_eq!(
            new_product(follower, None, &product).title,
            "New from a seller you follow"
        );
    }
}
