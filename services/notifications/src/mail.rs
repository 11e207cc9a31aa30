//! E-mail: what order e-mails say (maud templates, text and HTML as
//! one multipart/alternative message), how they leave (SMTP when
//! configured, else RFC 5322 `.eml` files under `<data dir>/mail/` that a
//! developer opens with any mail client), and the worker that sends them.
//!
//! An e-mail is recorded in the transaction of its notification (so a
//! redelivered event records none) and sent afterwards by the [`Postman`]
//! of any replica, which claims it for a while so two replicas do not send
//! it together, and marks it sent. Its id is the notification's: the
//! `Message-ID`, the MIME boundary and the file name derive from it, so a
//! resend after a crash writes the same file again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bazaar_platform::backoff::Backoff;
use bazaar_platform::db::Db;
use bazaar_platform::tasks::Shutdown;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use maud::{DOCTYPE, Markup, html};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::metrics::NotificationMetrics;
use crate::settings::Settings;
use crate::store::{self, Letter, Outgoing};

// ---- templates ----
//
// The HTML is maud's, so every value is escaped unless marked otherwise;
// the text part is plain `format!`.

/// A cell of the items table.
const CELL: &str = "padding:4px 8px";
/// A right-aligned cell of the items table.
const CELL_RIGHT: &str = "text-align:right;padding:4px 8px";
/// A left-aligned header cell of the items table.
const CELL_LEFT: &str = "text-align:left;padding:4px 8px";

/// One line of an order as an e-mail shows it.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) title: String,
    pub(crate) quantity: i64,
    /// The line's price, written out (`49.00 EUR`).
    pub(crate) price: String,
}

/// `Hello Ann,` — or just `Hello,` for a user identity has not announced yet.
fn greeting(name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("Hello {name},"),
        None => "Hello,".to_owned(),
    }
}

/// The e-mail of a confirmed order.
pub(crate) fn order_confirmed(
    name: Option<&str>,
    order: Uuid,
    lines: &[Line],
    total: &str,
    public_url: &str,
) -> Letter {
    let subject = format!("Your Bazaar order {order} is confirmed");
    let url = format!("{public_url}/orders/{order}");
    let hello = greeting(name);
    let items: String = lines
        .iter()
        .map(|l| format!("  {} x {}  {}\n", l.quantity, l.title, l.price))
        .collect();
    let text = format!(
        "{hello}\n\n\
         thank you for your order. It is confirmed: the items are reserved for you\n\
         and your card has been charged {total}.\n\n\
         Order {order}\n\n\
         {items}\n\
         Total: {total}\n\n\
         See your order: {url}\n\n\
         Bazaar\n",
        items = items.trim_end(),
    );
    let content = html! {
        p { (hello) }
        p {
            "thank you for your order. It is confirmed: the items are reserved for you \
             and your card has been charged " strong { (total) } "."
        }
        h2 style="font-size:16px;margin:24px 0 8px" { "Order " (order) }
        table style="border-collapse:collapse;width:100%" {
            thead {
                tr {
                    th style=(CELL_LEFT) { "Item" }
                    th style=(CELL_RIGHT) { "Quantity" }
                    th style=(CELL_RIGHT) { "Price" }
                }
            }
            tbody {
                @for line in lines {
                    tr {
                        td style=(CELL) { (line.title) }
                        td style=(CELL_RIGHT) { (line.quantity) }
                        td style=(CELL_RIGHT) { (line.price) }
                    }
                }
            }
            tfoot {
                tr {
                    th style=(CELL_LEFT) colspan="2" { "Total" }
                    th style=(CELL_RIGHT) { (total) }
                }
            }
        }
        p { a href=(url) { "See your order" } }
    };
    let html = layout(&subject, content);
    Letter {
        subject,
        text,
        html,
    }
}

/// The e-mail of a cancelled order, with the reason a person can read.
pub(crate) fn order_cancelled(
    name: Option<&str>,
    order: Uuid,
    reason: &str,
    public_url: &str,
) -> Letter {
    let subject = format!("Your Bazaar order {order} was cancelled");
    let url = format!("{public_url}/orders/{order}");
    let hello = greeting(name);
    let text = format!(
        "{hello}\n\n\
         we are sorry: your order {order} was cancelled.\n\n\
         {reason}\n\n\
         Nothing was charged for it, and whatever it held is free again. You can\n\
         place the order again at any time.\n\n\
         See your order: {url}\n\n\
         Bazaar\n"
    );
    let content = html! {
        p { (hello) }
        p { "we are sorry: your order " strong { (order) } " was cancelled." }
        p style="padding:8px 12px;background:#fff4e5;border-left:4px solid #f0a020" { (reason) }
        p {
            "Nothing was charged for it, and whatever it held is free again. You can \
             place the order again at any time."
        }
        p { a href=(url) { "See your order" } }
    };
    let html = layout(&subject, content);
    Letter {
        subject,
        text,
        html,
    }
}

/// The frame of every e-mail's HTML part.
fn layout(subject: &str, content: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (subject) }
            }
            body style="margin:0;padding:24px;background:#f4f4f6;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1d1d24" {
                div style="max-width:560px;margin:0 auto;padding:24px;background:#ffffff;border-radius:8px" {
                    p style="margin:0 0 16px;font-size:20px;font-weight:bold" { "Bazaar" }
                    (content)
                    p style="margin:24px 0 0;font-size:12px;color:#6b6b76" {
                        "You get this e-mail because you placed an order at Bazaar."
                    }
                }
            }
        }
    }
    .into_string()
}

// ---- messages and transports ----

/// The RFC 5322 message of `out` from `from` to `to`: `Message-ID`, `Date`
/// and the MIME boundary derive from the e-mail itself, so building it
/// again gives the same message.
pub(crate) fn message(
    from: &Mailbox,
    to: Mailbox,
    out: &Outgoing,
) -> Result<Message, lettre::error::Error> {
    let date = SystemTime::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(out.created_at).unwrap_or_default());
    Message::builder()
        .message_id(Some(format!("<{}@{}>", out.id, from.email.domain())))
        .date(date)
        .from(from.clone())
        .to(to)
        .subject(&out.letter.subject)
        .multipart(
            MultiPart::alternative()
                .boundary(format!("bazaar-{}", out.id.simple()))
                .singlepart(SinglePart::plain(out.letter.text.clone()))
                .singlepart(SinglePart::html(out.letter.html.clone())),
        )
}

/// Why a send failed, and whether trying again could help.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The server refused it for good (5xx), or it cannot be built.
    #[error("refused: {0}")]
    Permanent(String),
    /// Try again later: the server or the disk is not answering now.
    #[error("{0}")]
    Transient(String),
}

/// Where e-mail goes.
#[derive(Clone)]
pub(crate) enum Mailer {
    /// An SMTP server (its URL is a secret, kept inside the transport).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The transport's own Debug would show the server's details.
            Self::Smtp(_) => f.write_str("Mailer::Smtp"),
            Self::Files(dir) => write!(f, "Mailer::Files({})", dir.display()),
        }
    }
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Mailer {
    /// SMTP if `settings` name a server, else files in `mail_dir` (created).
    pub(crate) fn new(settings: &Settings, mail_dir: &Path) -> anyhow::Result<Self> {
        match &settings.smtp_url {
            Some(url) => {
                // lettre's error can quote the URL: say only which variable.
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|_| {
                        anyhow::anyhow!("{} is not a usable SMTP URL", crate::settings::SMTP_URL)
                    })?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Self::Smtp(transport))
            }
            None => {
                std::fs::create_dir_all(mail_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create the mail directory {}: {e}",
                        mail_dir.display()
                    )
                })?;
                Ok(Self::Files(mail_dir.to_owned()))
            }
        }
    }

    /// Where e-mail goes, for a log line (no secret in it).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Smtp(_) => "SMTP".to_owned(),
            Self::Files(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends `message`, the e-mail `id`.
    pub(crate) async fn send(&self, id: Uuid, message: &Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(transport) => transport
                .send(message.clone())
                .await
                .map(drop)
                .map_err(|e| {
                    if e.is_permanent() {
                        SendError::Permanent(e.to_string())
                    } else {
                        SendError::Transient(e.to_string())
                    }
                }),
            Self::Files(dir) => {
                // Written whole, then renamed: a reader never sees half a file.
                let path = dir.join(format!("{id}.eml"));
                let partial = dir.join(format!(".{id}.eml.partial"));
                let write = async {
                    tokio::fs::write(&partial, message.formatted()).await?;
                    tokio::fs::rename(&partial, &path).await
                };
                write.await.map_err(|e| {
                    SendError::Transient(format!("cannot write {}: {e}", path.display()))
                })
            }
        }
    }
}

// ---- the worker ----

/// E-mails taken per round.
const BATCH: i64 = 16;
/// How long a claimed e-mail stays with its worker: longer than a send.
const CLAIM: Duration = Duration::from_secs(60);
/// Polling while nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// Sends before an e-mail is given up.
const MAX_ATTEMPTS: i64 = 10;

/// The wait before try `attempts + 1`: 5 s doubling, at most 15 minutes.
fn backoff(attempts: i64) -> Duration {
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15 * 60));
    BACKOFF.delay(u32::try_from(attempts.clamp(0, 31)).unwrap_or(0))
}

/// Sends recorded e-mails and marks them sent.
#[derive(Debug, Clone)]
pub(crate) struct Postman {
    pub(crate) db: Db,
    pub(crate) mailer: Mailer,
    pub(crate) from: Mailbox,
    pub(crate) metrics: NotificationMetrics,
    /// Rung when an e-mail was recorded.
    pub(crate) wake: Arc<Notify>,
}

impl Postman {
    /// Sends e-mails as they are recorded (and retries due ones) until the
    /// server stops; a round under way is finished first.
    pub(crate) async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        while !shutdown.is_requested() {
            match self.round().await {
                // A full batch: there may be more due now.
                Ok(n) if n >= BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the e-mails to send"),
            }
            tokio::select! {
                () = self.wake.notified() => {
                    // Rung inside the transaction that records the
                    // e-mail; give it a moment to commit.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.requested() => {}
            }
        }
        Ok(())
    }

    /// Sends what is due; how many it took.
    async fn round(&self) -> Result<usize, sqlx::Error> {
        let now = store::now_ms();
        let due = store::due_mail(self.db.pool(), now, BATCH).await?;
        let until = now + i64::try_from(CLAIM.as_millis()).unwrap_or(i64::MAX / 2);
        for id in &due {
            if !store::claim_mail(self.db.writer(), id, now, until).await? {
                continue;
            }
            let Some(out) = store::outgoing(self.db.pool(), id).await? else {
                continue;
            };
            self.deliver(out).await?;
        }
        Ok(due.len())
    }

    #[tracing::instrument(skip_all, fields(mail_id = %out.id, attempt = out.attempts + 1))]
    async fn deliver(&self, out: Outgoing) -> Result<(), sqlx::Error> {
        let result = match &out.to {
            None => Err(SendError::Transient(
                "the recipient's address is not known yet (no identity.user.registered)".into(),
            )),
            Some((email, name)) => match email.parse() {
                Err(_) => Err(SendError::Permanent(format!("{email:?} is not an address"))),
                Ok(address) => {
                    let name = (!name.trim().is_empty()).then(|| name.clone());
                    match message(&self.from, Mailbox::new(name, address), &out) {
                        Err(e) => Err(SendError::Permanent(e.to_string())),
                        Ok(message) => self.mailer.send(out.id, &message).await,
                    }
                }
            },
        };
        match result {
            Ok(()) => {
                store::mail_sent(self.db.writer(), out.id, store::now_ms()).await?;
                self.metrics.mail("sent");
                tracing::info!("e-mail sent");
            }
            Err(SendError::Transient(error)) if out.attempts + 1 < MAX_ATTEMPTS => {
                let wait = backoff(out.attempts);
                let next =
                    store::now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                store::mail_failed(self.db.writer(), out.id, Some(next), &error).await?;
                self.metrics.mail("retried");
                tracing::warn!(error = %error, retry_in = ?wait, "e-mail not sent; will try again");
            }
            Err(error) => {
                store::mail_failed(self.db.writer(), out.id, None, &error.to_string()).await?;
                self.metrics.mail("failed");
                tracing::error!(error = %error, "e-mail given up");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<Line> {
        vec![
            Line {
                title: "Cast iron <teapot>".into(),
                quantity: 2,
                price: "49.00 EUR".into(),
            },
            Line {
                title: "Cups & saucers".into(),
                quantity: 1,
                price: "12.00 EUR".into(),
            },
        ]
    }

    #[test]
    fn every_placeholder_is_filled() {
        let order = Uuid::now_v7();
        let confirmed = order_confirmed(Some("Ann"), order, &lines(), "61.00 EUR", "http://shop");
        let cancelled = order_cancelled(None, order, "The card was declined.", "http://shop");
        for letter in [&confirmed, &cancelled] {
            for part in [&letter.subject, &letter.text, &letter.html] {
                assert!(!part.contains("{{"), "{part}");
                assert!(part.contains(&order.to_string()), "{part}");
            }
            assert!(letter.text.contains(&format!("http://shop/orders/{order}")));
            assert!(
                letter
                    .html
                    .contains(&format!("href=\"http://shop/orders/{order}\""))
            );
        }
        assert!(confirmed.text.starts_with("Hello Ann,"));
        assert!(confirmed.text.contains("2 x Cast iron <teapot>  49.00 EUR"));
        assert!(confirmed.text.contains("Total: 61.00 EUR"));
        assert!(cancelled.text.starts_with("Hello,"));
        assert!(cancelled.text.contains("The card was declined."));
    }

    #[test]
    fn html_escapes_what_users_wrote() {
        let letter = order_confirmed(
            Some("<b>Eve</b>"),
            Uuid::now_v7(),
            &lines(),
            "61.00 EUR",
            "http://shop",
        );
        assert!(letter.html.contains("Cast iron &lt;teapot&gt;"));
        assert!(letter.html.contains("Cups &amp; saucers"));
        assert!(letter.html.contains("Hello &lt;b&gt;Eve&lt;/b&gt;,"));
        assert!(!letter.html.contains("<teapot>"));
        let cancelled = order_cancelled(None, Uuid::now_v7(), "<script>x</script>", "http://s");
        assert!(cancelled.html.contains("&lt;script&gt;"));
    }

    #[test]
    fn messages_are_multipart_alternative_and_the_same_every_time() {
        let id = Uuid::now_v7();
        let out = Outgoing {
            id,
            letter: order_cancelled(Some("Ann"), Uuid::now_v7(), "Out of stock.", "http://shop"),
            attempts: 0,
            created_at: 1_700_000_000_000,
            to: None,
        };
        let from: Mailbox = "Bazaar <no-reply@bazaar.localhost>".parse().unwrap();
        let to: Mailbox = "Ann <ann@example.com>".parse().unwrap();
        let first = message(&from, to.clone(), &out).unwrap().formatted();
        let again = message(&from, to, &out).unwrap().formatted();
        assert_eq!(first, again);
        let text = String::from_utf8(first).unwrap();
        assert!(
            text.contains("Content-Type: multipart/alternative"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Message-ID: <{id}@bazaar.localhost>")),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(text.contains("Content-Type: text/html"), "{text}");
    }

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(100), Duration::from_secs(15 * 60));
    }
}
