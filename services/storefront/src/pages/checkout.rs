//! Checkout: the cart's summary, the shipping address and the card, and a
//! hidden idempotency key made when the form is rendered, so a form sent
//! twice (a double click, a retry after a timeout) places one order.

use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::back_to;
use super::cart::{self, Line, total_text};
use super::form::{Errors, Field};
use super::wire::Created;
use crate::App;
use crate::error::PageError;
use crate::layout::{self, Chrome, csrf_field, money};
use crate::session::{CsrfForm, Session};

/// The checkout form as sent (and re-rendered: never the card's number or
/// code).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckoutForm {
    idempotency_key: String,
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
    card_number: String,
    exp_month: String,
    exp_year: String,
    cvc: String,
}

/// Form fields by the orders service's names for them.
const RENAME: &[(&str, &str)] = &[
    ("shipping_address.name", "name"),
    ("shipping_address.line1", "line1"),
    ("shipping_address.city", "city"),
    ("shipping_address.postal_code", "postal_code"),
    ("shipping_address.country", "country"),
    ("payment.card_number", "card_number"),
    ("payment.exp_month", "exp_month"),
    ("payment.exp_year", "exp_year"),
    ("payment.cvc", "cvc"),
];

/// Labels of the fields, for the summary of messages.
const LABELS: &[(&str, &str)] = &[
    ("name", "Full name"),
    ("line1", "Address"),
    ("city", "City"),
    ("postal_code", "Postal code"),
    ("country", "Country"),
    ("card_number", "Card number"),
    ("exp_month", "Expiry month"),
    ("exp_year", "Expiry year"),
    ("cvc", "Security code (CVC)"),
];

#[derive(Serialize)]
struct Place<'a> {
    payment: Payment<'a>,
    shipping_address: Address<'a>,
}

#[derive(Serialize)]
struct Payment<'a> {
    card_number: &'a str,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
    cvc: &'a str,
}

#[derive(Serialize)]
struct Address<'a> {
    name: &'a str,
    line1: &'a str,
    city: &'a str,
    postal_code: &'a str,
    country: &'a str,
}

/// `GET /checkout`.
pub async fn show(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let user = session.require(&back_to(&uri))?;
    let (chrome, lines) = cart::load(&app, &session, user).await?;
    let form = CheckoutForm {
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        name: user.name.clone(),
        ..CheckoutForm::default()
    };
    Ok(render(&session, &chrome, &lines, &form, &Errors::new()).into_response())
}

/// `POST /checkout`: places the order (the cart's lines), then shows it.
pub async fn place(
    State(app): State<App>,
    session: Session,
    CsrfForm(form): CsrfForm<CheckoutForm>,
) -> Result<Response, PageError> {
    let user = session.require("/checkout")?;
    let mut errors = Errors::new();
    let number = |field: &str, raw: &str, errors: &mut Errors| -> Option<i64> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let parsed = raw.parse::<i64>().ok();
        if parsed.is_none() {
            errors.add(field, "Must be a number.");
        }
        parsed
    };
    let exp_month = number("exp_month", &form.exp_month, &mut errors);
    let exp_year = number("exp_year", &form.exp_year, &mut errors);
    // People type card numbers with spaces.
    let card: String = form
        .card_number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let key = if form.idempotency_key.trim().is_empty() {
        uuid::Uuid::now_v7().to_string()
    } else {
        form.idempotency_key.trim().to_owned()
    };
    let body = Place {
        payment: Payment {
            card_number: &card,
            exp_month,
            exp_year,
            cvc: form.cvc.trim(),
        },
        shipping_address: Address {
            name: form.name.trim(),
            line1: form.line1.trim(),
            city: form.city.trim(),
            postal_code: form.postal_code.trim(),
            country: form.country.trim(),
        },
    };
    let call = app
        .backend
        .call("orders", Method::POST, "/api/v1/orders")
        .token(Some(&user.token))
        .header("idempotency-key", &key)
        .json(&body);
    let failure = match app.backend.json::<Created>(call).await {
        Ok(order) if errors.is_empty() => {
            return Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response());
        }
        // Our own check failed but the service took it: cannot happen (a
        // number that does not parse was sent as missing); show the order.
        Ok(order) => return Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response()),
        Err(failure) => failure,
    };
    let status = match failure.status() {
        Some(s) if s.is_client_error() && s != StatusCode::NOT_FOUND => s,
        _ => return Err(failure.into()),
    };
    errors.add_failure(&failure, RENAME);
    let (chrome, lines) = cart::load(&app, &session, user).await?;
    let form = CheckoutForm {
        idempotency_key: key,
        ..form
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, render(&session, &chrome, &lines, &form, &errors)).into_response())
}

fn render(
    session: &Session,
    chrome: &Chrome,
    lines: &[Line],
    form: &CheckoutForm,
    errors: &Errors,
) -> Markup {
    let body = html! {
        h1 { "Checkout" }
        @if lines.is_empty() {
            (errors.summary(LABELS))
            div.notice.empty {
                p { "Your cart is empty, so there is nothing to check out." }
                p { a href="/products" { "Browse the shop" } }
            }
        } @else {
            div.checkout {
                section.summary aria-labelledby="summary-heading" {
                    h2 #summary-heading { "Your order" }
                    ul.lines {
                        @for line in lines {
                            li {
                                @if let Some(p) = &line.product {
                                    span { (line.quantity) " × " (p.title) }
                                    span { (money(p.price.amount * line.quantity, &p.price.currency)) }
                                } @else {
                                    span.muted { (line.quantity) " × a product no longer on sale" }
                                }
                            }
                        }
                    }
                    p.total { "Total: " strong { (total_text(lines)) } }
                    p { a href="/cart" { "Change the cart" } }
                }
                form.pay action="/checkout" method="post" novalidate {
                    (errors.summary(LABELS))
                    (csrf_field(session))
                    input type="hidden" name="idempotency_key" value=(form.idempotency_key);
                    fieldset {
                        legend { "Shipping address" }
                        (Field::text("name", "Full name", &form.name).autocomplete("name").render(errors))
                        (Field::text("line1", "Address", &form.line1).autocomplete("address-line1").render(errors))
                        (Field::text("city", "City", &form.city).autocomplete("address-level2").render(errors))
                        (Field::text("postal_code", "Postal code", &form.postal_code).autocomplete("postal-code").render(errors))
                        (Field::text("country", "Country", &form.country).autocomplete("country").hint("Two letters, like DE, FR or US.").render(errors))
                    }
                    fieldset {
                        legend { "Card" }
                        div.notice.hint #test-cards {
                            p { strong { "Test cards" } " (no real money moves):" }
                            ul {
                                li { code { "4242424242424242" } " approves" }
                                li { code { "4000000000000002" } " is declined" }
                                li { code { "4000000000009995" } " is declined: insufficient funds" }
                                li { code { "4000000000000119" } " fails with a processor error (retried until the order's deadline, then cancelled)" }
                            }
                            p { "Any future expiry date and any three digits as the code." }
                        }
                        // Never echoed back: the card number and code are typed again.
                        (Field::text("card_number", "Card number", "").autocomplete("cc-number").inputmode("numeric").hint("See the test cards above.").render(errors))
                        div.row {
                            (Field::text("exp_month", "Expiry month", &form.exp_month).kind("number").range(1, 12).autocomplete("cc-exp-month").inputmode("numeric").render(errors))
                            (Field::text("exp_year", "Expiry year", &form.exp_year).kind("number").range(2000, 2200).autocomplete("cc-exp-year").inputmode("numeric").render(errors))
                            (Field::text("cvc", "Security code (CVC)", "").autocomplete("cc-csc").inputmode("numeric").render(errors))
                        }
                    }
                    button.primary type="submit" { "Place order" }
                }
            }
        }
    };
    layout::page(session, chrome, "Checkout", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::wire::{Money, Product};

    #[test]
    fn a_refused_form_never_echoes_the_card() {
        let session = Session {
            user: None,
            csrf: "c".repeat(43),
        };
        let lines = [Line {
            product_id: "p".to_owned(),
            quantity: 1,
            product: Some(Product {
                id: "p".to_owned(),
                seller_id: "s".to_owned(),
                title: "Teapot".to_owned(),
                description: String::new(),
                price: Money {
                    amount: 2450,
                    currency: "EUR".to_owned(),
                },
                category: String::new(),
            }),
        }];
        let form = CheckoutForm {
            idempotency_key: "k".to_owned(),
            card_number: "4000000000000002".to_owned(),
            cvc: "123".to_owned(),
            exp_month: "12".to_owned(),
            ..CheckoutForm::default()
        };
        let mut errors = Errors::new();
        errors.add("card_number", "Is not a valid card number.");
        let html = render(&session, &Chrome::default(), &lines, &form, &errors).into_string();
        assert!(!html.contains("value=\"4000000000000002\""), "card echoed");
        assert!(!html.contains("value=\"123\""), "code echoed");
        assert!(html.contains("value=\"12\""), "the month stays");
        assert!(html.contains("aria-describedby=\"card_number-hint card_number-error\""));
    }
}
