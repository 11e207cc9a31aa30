//! The notifications service: each user's feed of what concerns them, live
//! push to browsers over Server-Sent Events, and e-mail (shared/API.md,
//! "Notifications"). It owns notifications and the e-mails it sends, in
//! its own database.
//!
//! # What makes a notification
//!
//! Events, consumed in the consumer group `notifications` (replicas share
//! it): `identity.user.registered` (a welcome), `orders.order.confirmed` and
//! `orders.order.cancelled` (to the buyer, with an e-mail),
//! `inventory.stock.low` (to the seller) and `catalog.product.created` (to
//! every follower of its seller). What it needs to write them it keeps as
//! its own copies fed by events — users' addresses and names, the follow
//! graph (`identity.seller.followed|unfollowed`), product titles — and
//! never reads another service's database. A notification is stored with
//! its kind, title, body, read flag and the storefront link of what it is
//! about (`/orders/{id}`, `/products/{id}`).
//!
//! Delivery is at least once; a notification is made once: the bus's inbox
//! drops a redelivered event, and `UNIQUE (source_event_id, user_id)`
//! drops a second notification from one event even when the inbox would
//! not (a follow arriving after a product it predates notifies of that
//! product; the product's own handling may have, too).
//!
//! # Live push, across replicas
//!
//! The replica that stores a notification appends the internal event
//! `notifications.notification.created` to its outbox in the same
//! transaction. Every replica consumes that topic in a consumer group of
//! its own (`<instance>-live`) and hands each notification to the streams
//! of its user connected to it ([`live`]). So a client connected to replica
//! A sees what replica B handled, through the broker — the embedded log or
//! NATS — and nothing is shared in process memory.
//!
//! A user's notification ids (UUIDv7) only grow, in the order they were
//! committed: storing one takes the user's feed head row first. A stream
//! that reconnects with `Last-Event-ID` therefore gets exactly what it
//! missed with "every notification after this id", then the live ones.
//!
//! # E-mail
//!
//! Order confirmations and cancellations are e-mailed: text and HTML from
//! compiled-in templates (maud for the HTML), recorded in the notification's
//! transaction, sent by a worker on every replica (claiming each e-mail for
//! a while) through SMTP when `BAZAAR_NOTIFICATIONS_SMTP_URL` is set, else
//! written as `<data dir>/mail/<id>.eml`. The address is the one identity
//! announced at registration.
//!
//! # Variables and metrics
//!
//! See [`VARS`]. Beside the platform's metrics:
//! `notifications_created_total{kind}`, `notifications_pushed_total`,
//! `notifications_streams` and `notifications_mail_total{outcome}`.

mod consumer;
pub mod domain;
mod error;
mod http;
mod live;
mod mail;
mod metrics;
mod settings;
mod store;

use std::sync::Arc;

use bazaar_platform::db::Migrations;
use bazaar_platform::events::Subscription;
use bazaar_platform::server::{Context, Routes, Service};

pub use settings::{
    KEEP_ALIVE, MAIL_FROM, MAX_STREAMS, MAX_STREAMS_PER_USER, PUBLIC_URL, SMTP_URL, SMTP_URL_FILE,
    Settings, VARS,
};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The consumer group of the events that make notifications.
pub const GROUP: &str = "notifications";

/// The topic of the internal event that carries a new notification to
/// every replica's streams.
pub const LIVE_TOPIC: &str = "notifications.notification.created";

/// The notifications service, tuned by its variables ([`VARS`]).
#[derive(Debug)]
pub struct Notifications;

impl Service for Notifications {
    const NAME: &'static str = "notifications";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds notifications' routes with explicit `settings` (what
/// [`Notifications`] does with the environment's), for tests that need,
/// say, a short keep-alive or an SMTP server of their own.
///
/// # Errors
/// When the context has no database or no address of identity, or the
/// mail settings cannot be used.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    use bazaar_bus::Event as _;
    debug_assert_eq!(live::NotificationCreated::TOPIC, LIVE_TOPIC);

    let db = ctx.db()?;
    let events = ctx.events()?;
    let verifier = ctx.verifier()?;
    let metrics = metrics::NotificationMetrics::registered(ctx.metrics());
    let mailer = mail::Mailer::new(&settings, &ctx.config().data_dir.join("mail"))?;
    let from: lettre::message::Mailbox = settings
        .mail_from
        .parse()
        .map_err(|_| anyhow::anyhow!("{MAIL_FROM} is not an e-mail address"))?;
    if ctx.config().environment == bazaar_platform::config::Environment::Production
        && matches!(mailer, mail::Mailer::Files(_))
    {
        tracing::warn!("no SMTP server ({SMTP_URL}): e-mails are only written as files");
    }
    let live_group = live::group(&ctx.config().instance);
    tracing::info!(
        mail = %mailer.describe(),
        from = %settings.mail_from,
        keep_alive = ?settings.keep_alive,
        live_group = %live_group,
        "notifications settings"
    );

    let wake = Arc::new(tokio::sync::Notify::new());
    let postman = mail::Postman {
        db: db.clone(),
        mailer,
        from,
        metrics: metrics.clone(),
        wake: wake.clone(),
    };
    ctx.spawn("mail", |shutdown| postman.run(shutdown));

    let hub = live::Hub::new(settings.max_streams_per_user, settings.max_streams);
    let feed = consumer::Feed {
        events,
        metrics: metrics.clone(),
        mail: wake,
        public_url: settings.public_url.clone(),
    };
    let state = http::AppState {
        db,
        hub: hub.clone(),
        metrics: metrics.clone(),
        keep_alive: settings.keep_alive,
    };
    Ok(Routes::new(http::router(state, verifier))
        .subscribe(Subscription::new(
            GROUP,
            consumer::TOPICS,
            consumer::Inbound { feed },
        ))
        .subscribe(Subscription::new(
            &live_group,
            &[LIVE_TOPIC],
            live::Fanout { hub, metrics },
        ))
        .openapi(http::openapi()))
}
