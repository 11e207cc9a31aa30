//! The frame around every page: head, header with navigation, search and
//! the notification bell, and the footer. Markup comes from `maud`, so the
//! templates are Rust, checked when the crate compiles, and every
//! interpolated value is HTML-escaped.

use bazaar_events::money::Money;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::assets;
use crate::session::{CSRF_FIELD, Session};

/// What the header shows beyond the session: loaded with each page's own
/// calls, concurrently.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// Unread notifications of the signed-in user, when known.
    pub unread: Option<i64>,
    /// The id of the user's newest notification: the live stream resumes
    /// after it, so nothing stored between the page and the stream is lost.
    pub newest: Option<String>,
}

/// A full page for `session`.
pub fn page(session: &Session, chrome: &Chrome, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                (header(session, chrome))
                main #main tabindex="-1" { (body) }
                (footer())
            }
        }
    }
}

/// A page without the session's parts (error pages).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.site {
                    nav.bar aria-label="Main" {
                        a.brand href="/" { "Bazaar" }
                    }
                }
                main #main tabindex="-1" { (body) }
                (footer())
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Bazaar" }
            link rel="stylesheet" href=(assets::CSS.url());
            script src=(assets::JS.url()) defer {}
        }
    }
}

fn header(session: &Session, chrome: &Chrome) -> Markup {
    html! {
        header.site {
            nav.bar aria-label="Main" {
                a.brand href="/" { "Bazaar" }
                form.search role="search" action="/products" method="get" {
                    label.visually-hidden for="site-search" { "Search products" }
                    input #site-search type="search" name="q" placeholder="Search products";
                    button type="submit" { "Search" }
                }
                ul.links {
                    @if let Some(user) = &session.user {
                        li { a href="/cart" { "Cart" } }
                        li { a href="/orders" { "Orders" } }
                        @if user.can_sell() {
                            li { a href="/sell" { "Sell" } }
                        }
                        @if user.is_admin() {
                            li { a href="/ops" { "Ops" } }
                        }
                        li {
                            a.bell href="/notifications" data-live="bell" data-after=[chrome.newest.as_deref()] {
                                "Notifications "
                                span.count data-unread aria-live="polite" {
                                    (chrome.unread.unwrap_or(0))
                                }
                                span.visually-hidden { " unread" }
                            }
                        }
                        li {
                            form.inline action="/logout" method="post" {
                                (csrf_field(session))
                                button.link type="submit" { "Log out " span.who { "(" (user.name) ")" } }
                            }
                        }
                    } @else {
                        li { a href="/login" { "Log in" } }
                        li { a href="/register" { "Register" } }
                    }
                }
            }
        }
    }
}

fn footer() -> Markup {
    html! {
        footer.site {
            p { "Bazaar — a marketplace of small services. Test cards are listed at checkout." }
        }
    }
}

/// The hidden CSRF field every form must carry.
pub fn csrf_field(session: &Session) -> Markup {
    html! {
        input type="hidden" name=(CSRF_FIELD) value=(session.csrf);
    }
}

/// Money in minor units as text: `12.50 EUR`.
pub fn money(amount: i64, currency: &str) -> String {
    Money::new(amount, currency).to_string()
}

/// Raw, trusted markup (only for constants of this crate).
#[allow(dead_code, reason = "kept for the ops console's constant markup")]
pub fn trusted(markup: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(1250, "EUR"), "12.50 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-199, "EUR"), "-1.99 EUR");
        assert_eq!(money(1200, "JPY"), "1200 JPY", "no minor unit");
    }

    #[test]
    fn values_are_escaped() {
        let session = Session {
            user: None,
            csrf: "\"><script>".to_owned(),
        };
        let html = csrf_field(&session).into_string();
        assert!(!html.contains("<script>"), "{html}");
    }
}
