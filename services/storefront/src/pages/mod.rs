//! The shop's pages: catalog, cart, checkout, orders, account, the seller
//! area, notifications and the live stream the page script listens to.
//!
//! Each handler starts every backend call it can at once (`tokio::join!`),
//! the header's unread count ([`App::chrome`]) among them, and renders with
//! [`layout::page`]. What is shared by several pages lives here: the wire
//! types read from the services ([`wire`]), forms and their per-field
//! messages ([`form`]), and the small pure helpers (pagination, prices,
//! where a sign-in may send the browser back to).

mod account;
mod cart;
mod catalog;
mod checkout;
pub mod form;
mod live;
mod notifications;
mod orders;
mod sell;
pub mod wire;

use axum::Router;
use axum::extract::OriginalUri;
use axum::routing::{get, post};
use maud::{Markup, html};

use crate::App;
use crate::error::PageError;
use crate::layout::Chrome;
use crate::session::Session;

/// Every page of the shop.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(catalog::home))
        .route("/products", get(catalog::listing))
        .route("/products/{id}", get(catalog::product))
        .route("/cart", get(cart::show))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{id}", post(cart::update))
        .route("/cart/items/{id}/remove", post(cart::remove))
        .route("/checkout", get(checkout::show).post(checkout::place))
        .route("/orders", get(orders::history))
        .route("/orders/{id}", get(orders::show))
        .route("/orders/{id}/status", get(orders::status))
        .route("/notifications", get(notifications::feed))
        .route("/notifications/{id}/read", post(notifications::read))
        .route("/live", get(live::relay))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route("/sell", get(sell::dashboard))
        .route("/sell/new", get(sell::new_form).post(sell::create))
        .route(
            "/sell/products/{id}",
            get(sell::edit_form).post(sell::update),
        )
        .route("/sell/products/{id}/stock", post(sell::stock))
}

/// Every path no route claims: the 404 page.
pub async fn not_found(OriginalUri(uri): OriginalUri) -> PageError {
    PageError::NotFound(format!("There is no page at {}.", uri.path()))
}

impl App {
    /// What the header needs beyond the session: the signed-in user's
    /// unread count and newest notification (where the live stream
    /// resumes). Join it with the page's own calls; a failure only leaves
    /// the bell without a count.
    pub async fn chrome(&self, session: &Session) -> Chrome {
        let Some(token) = session.token() else {
            return Chrome::default();
        };
        let call = self
            .backend
            .get("notifications", "/api/v1/notifications?limit=1")
            .token(Some(token))
            .optional();
        match self
            .backend
            .json::<wire::Page<wire::Notification>>(call)
            .await
        {
            Ok(page) => Chrome::from_feed(&page),
            Err(error) => {
                tracing::debug!(%error, "no unread count for the header");
                Chrome::default()
            }
        }
    }
}

impl Chrome {
    /// The header's part of a page of the feed.
    pub fn from_feed(page: &wire::Page<wire::Notification>) -> Self {
        Self {
            unread: page.unread,
            newest: page.items.first().map(|n| n.id.clone()),
        }
    }
}

/// A product id from a path: a UUID, or the 404 page.
fn product_id(raw: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| PageError::NotFound("There is no such product.".to_owned()))
}

/// A 1-based page number from a query value; anything else is page 1.
pub fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|r| r.trim().parse::<u32>().ok())
        .filter(|n| (1..=1_000_000).contains(n))
        .unwrap_or(1)
}

/// How many pages `total` items make at `limit` a page (at least one).
pub fn page_count(total: i64, limit: i64) -> i64 {
    if total <= 0 || limit <= 0 {
        return 1;
    }
    (total + limit - 1) / limit
}

/// Previous/next links and "Page N of M"; `href(n)` is page `n`'s address.
pub fn pager(page: i64, total: i64, limit: i64, href: impl Fn(i64) -> String) -> Markup {
    let pages = page_count(total, limit);
    html! {
        @if pages > 1 || page > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 {
                    a rel="prev" href=(href((page - 1).min(pages))) { "← Previous" }
                }
                span { "Page " (page) " of " (pages) }
                @if page < pages {
                    a rel="next" href=(href(page + 1)) { "Next →" }
                }
            }
        }
    }
}

/// Where a sign-in may send the browser: a path of this site only (one
/// leading `/`, not `//` or `/\`, which browsers read as another host).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A price typed as decimal text (`12.50`, `12,5`, `12`) in minor units.
///
/// # Errors
/// What is wrong with it, as a sentence's end for the field's message.
pub fn parse_price(raw: &str) -> Result<i64, &'static str> {
    const BAD: &str = "must be an amount like 12.50";
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("is required");
    }
    let (whole, cents) = match raw.split_once(['.', ',']) {
        Some((w, c)) => (w, c),
        None => (raw, ""),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(cents) || cents.len() > 2 {
        return Err(BAD);
    }
    if whole.len() > 9 {
        return Err("is too large");
    }
    let whole: i64 = whole.parse().map_err(|_| BAD)?;
    let cents: i64 = match cents.len() {
        0 => 0,
        1 => cents.parse::<i64>().map_err(|_| BAD)? * 10,
        _ => cents.parse().map_err(|_| BAD)?,
    };
    let amount = whole * 100 + cents;
    if amount <= 0 {
        return Err("must be more than 0");
    }
    Ok(amount)
}

/// Minor units as the decimal text [`parse_price`] reads back.
pub fn price_text(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, (amount % 100).abs())
}

/// A quantity from a form: 1 to 99.
///
/// # Errors
/// The field's message.
pub fn parse_quantity(raw: &str) -> Result<i64, &'static str> {
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=99).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 99"),
    }
}

/// A path with its query string, for coming back after signing in.
fn back_to(uri: &http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

/// A query string of `pairs`, skipping empty values.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_as_decimal_text() {
        assert_eq!(parse_price("12.50"), Ok(1250));
        assert_eq!(parse_price(" 12,5 "), Ok(1250));
        assert_eq!(parse_price("12"), Ok(1200));
        assert_eq!(parse_price("0.05"), Ok(5));
        assert_eq!(parse_price("12."), Ok(1200));
        for bad in ["", "abc", "1.234", "-1", "1e3", ".5", "1.2.3", "12 50"] {
            assert!(parse_price(bad).is_err(), "{bad:?}");
        }
        assert!(parse_price("0").is_err());
        assert!(parse_price("0.00").is_err());
        assert!(parse_price("1234567890").is_err(), "too large");
        assert_eq!(price_text(1250), "12.50");
        assert_eq!(price_text(5), "0.05");
        assert_eq!(parse_price(&price_text(99_999)), Ok(99_999));
    }

    #[test]
    fn pages_are_counted_and_numbers_clamped() {
        assert_eq!(page_count(0, 20), 1);
        assert_eq!(page_count(20, 20), 1);
        assert_eq!(page_count(21, 20), 2);
        assert_eq!(page_count(45, 12), 4);
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("3")), 3);
        for bad in ["0", "-2", "x", "", "99999999999"] {
            assert_eq!(page_number(Some(bad)), 1, "{bad:?}");
        }
    }

    #[test]
    fn the_pager_links_both_ways() {
        let html = pager(2, 45, 12, |n| format!("/products?page={n}")).into_string();
        assert!(html.contains("Page 2 of 4"), "{html}");
        assert!(html.contains("href=\"/products?page=1\""), "{html}");
        assert!(html.contains("href=\"/products?page=3\""), "{html}");
        let single = pager(1, 5, 12, |n| n.to_string()).into_string();
        assert!(single.is_empty(), "{single}");
        let last = pager(4, 45, 12, |n| n.to_string()).into_string();
        assert!(!last.contains("rel=\"next\""), "{last}");
    }

    #[test]
    fn sign_in_returns_only_to_local_paths() {
        assert_eq!(safe_next(Some("/cart")), "/cart");
        assert_eq!(
            safe_next(Some("/products?q=tea&page=2")),
            "/products?q=tea&page=2"
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "",
            "/a\nb",
            "/\\/x",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn quantities_are_one_to_ninety_nine() {
        assert_eq!(parse_quantity("1"), Ok(1));
        assert_eq!(parse_quantity(" 99 "), Ok(99));
        for bad in ["0", "100", "-1", "two", ""] {
            assert!(parse_quantity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queries_skip_empty_values() {
        assert_eq!(
            query(&[("q", "tea pot"), ("category", ""), ("page", "2")]),
            "q=tea+pot&page=2"
        );
    }
}
