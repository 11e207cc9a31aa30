//! The cart: its lines with their products (fetched concurrently after the
//! cart), changing a quantity, removing a line, adding from a product page.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;

use super::form::NoFields;
use super::wire::{Cart, Product};
use super::{back_to, parse_quantity, product_id};
use crate::App;
use crate::backend::Failure;
use crate::error::PageError;
use crate::layout::{self, Chrome, csrf_field, money};
use crate::session::{CsrfForm, Session, User};

/// A cart line with its product, when the catalog still has it.
#[derive(Debug, Clone)]
pub struct Line {
    /// The product's id.
    pub product_id: String,
    /// How many.
    pub quantity: i64,
    /// The product, unless it is no longer on sale.
    pub product: Option<Product>,
}

/// The user's cart with its products; the header's chrome is loaded at the
/// same time as the cart.
pub async fn load(
    app: &App,
    session: &Session,
    user: &User,
) -> Result<(Chrome, Vec<Line>), PageError> {
    let (chrome, cart) = tokio::join!(
        app.chrome(session),
        app.backend.json::<Cart>(
            app.backend
                .get("cart", "/api/v1/cart")
                .token(Some(&user.token))
        ),
    );
    let cart = cart?;
    let products = join_all(cart.items.iter().map(|line| {
        app.backend.json::<Product>(
            app.backend
                .get("catalog", format!("/api/v1/products/{}", line.product_id)),
        )
    }))
    .await;
    let mut lines = Vec::with_capacity(cart.items.len());
    for (line, product) in cart.items.into_iter().zip(products) {
        let product = match product {
            Ok(p) => Some(p),
            Err(f) if f.is_not_found() => None,
            Err(f) => return Err(f.into()),
        };
        lines.push(Line {
            product_id: line.product_id,
            quantity: line.quantity,
            product,
        });
    }
    Ok((chrome, lines))
}

/// The total of `lines`, one sum per currency.
pub fn totals(lines: &[Line]) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for line in lines {
        if let Some(p) = &line.product {
            *sums.entry(p.price.currency.clone()).or_insert(0) += p.price.amount * line.quantity;
        }
    }
    sums
}

/// The totals as text: `49.00 EUR` (or `10.00 EUR + 5.00 USD`).
pub fn total_text(lines: &[Line]) -> String {
    let sums = totals(lines);
    if sums.is_empty() {
        return money(0, "EUR");
    }
    sums.iter()
        .map(|(currency, amount)| money(*amount, currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// `GET /cart`.
pub async fn show(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let user = session.require(&back_to(&uri))?;
    let (chrome, lines) = load(&app, &session, user).await?;
    Ok(render(&session, &chrome, &lines, None).into_response())
}

/// The cart page, with a message about one line.
fn render(
    session: &Session,
    chrome: &Chrome,
    lines: &[Line],
    error: Option<(&str, &str)>,
) -> Markup {
    let body = html! {
        h1 { "Your cart" }
        @if lines.is_empty() {
            div.notice.empty {
                p { "Your cart is empty." }
                p { a href="/products" { "Browse the shop" } }
            }
        } @else {
            table.cart {
                caption.visually-hidden { "Products in your cart" }
                thead { tr { th scope="col" { "Product" } th scope="col" { "Unit price" } th scope="col" { "Quantity" } th scope="col" { "Subtotal" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for line in lines {
                        @let qid = format!("qty-{}", line.product_id);
                        @let eid = format!("qty-{}-error", line.product_id);
                        @let err = error.filter(|(id, _)| *id == line.product_id).map(|(_, m)| m);
                        tr {
                            td {
                                @if let Some(p) = &line.product {
                                    a href={ "/products/" (p.id) } { (p.title) }
                                } @else {
                                    span.muted { "No longer on sale" }
                                }
                            }
                            td { @if let Some(p) = &line.product { (money(p.price.amount, &p.price.currency)) } }
                            td {
                                form.qty action={ "/cart/items/" (line.product_id) } method="post" {
                                    (csrf_field(session))
                                    label.visually-hidden for=(qid) {
                                        "Quantity of " (line.product.as_ref().map_or("this product", |p| p.title.as_str()))
                                    }
                                    input id=(qid) type="number" name="quantity" min="1" max="99" required inputmode="numeric"
                                        value=(line.quantity)
                                        aria-describedby=[err.map(|_| eid.as_str())]
                                        aria-invalid=[err.map(|_| "true")];
                                    button.secondary type="submit" { "Update" }
                                    @if let Some(message) = err {
                                        p.field-error id=(eid) role="alert" { (message) }
                                    }
                                }
                            }
                            td { @if let Some(p) = &line.product { (money(p.price.amount * line.quantity, &p.price.currency)) } }
                            td {
                                form.inline action={ "/cart/items/" (line.product_id) "/remove" } method="post" {
                                    (csrf_field(session))
                                    button.secondary type="submit" {
                                        "Remove" span.visually-hidden { " " (line.product.as_ref().map_or("", |p| p.title.as_str())) }
                                    }
                                }
                            }
                        }
                    }
                }
                tfoot {
                    tr { th scope="row" colspan="3" { "Total" } td.total colspan="2" { (total_text(lines)) } }
                }
            }
            p.actions { a.button href="/checkout" { "Checkout" } }
        }
    };
    layout::page(session, chrome, "Cart", body)
}

/// The add-to-cart form.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
}

/// `POST /cart/items`: puts a product in the cart, then shows the cart.
pub async fn add(
    State(app): State<App>,
    session: Session,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<Response, PageError> {
    let id = product_id(&form.product_id)?;
    let user = session.require(&format!("/products/{id}"))?;
    let quantity = parse_quantity(&form.quantity)
        .map_err(|m| PageError::BadRequest(format!("The quantity {m}.")))?;
    put(&app, user, &id.to_string(), quantity).await?;
    Ok(Redirect::to("/cart").into_response())
}

/// A quantity form.
#[derive(Debug, Deserialize)]
pub struct QuantityForm {
    #[serde(default)]
    quantity: String,
}

/// `POST /cart/items/{id}`: another quantity for a line.
pub async fn update(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
    CsrfForm(form): CsrfForm<QuantityForm>,
) -> Result<Response, PageError> {
    let id = product_id(&raw)?.to_string();
    let user = session.require("/cart")?;
    match parse_quantity(&form.quantity) {
        Ok(quantity) => {
            put(&app, user, &id, quantity).await?;
            Ok(Redirect::to("/cart").into_response())
        }
        Err(message) => {
            let (chrome, lines) = load(&app, &session, user).await?;
            let message = format!("The quantity {message}.");
            let page = render(&session, &chrome, &lines, Some((&id, &message)));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `POST /cart/items/{id}/remove`.
pub async fn remove(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let id = product_id(&raw)?;
    let user = session.require("/cart")?;
    let call = app
        .backend
        .call("cart", Method::DELETE, format!("/api/v1/cart/items/{id}"))
        .token(Some(&user.token));
    match app.backend.empty(call).await {
        Ok(_) => {}
        Err(f) if f.is_not_found() => {}
        Err(f) => return Err(f.into()),
    }
    Ok(Redirect::to("/cart").into_response())
}

async fn put(app: &App, user: &User, id: &str, quantity: i64) -> Result<(), PageError> {
    let call = app
        .backend
        .call("cart", Method::PUT, format!("/api/v1/cart/items/{id}"))
        .token(Some(&user.token))
        .json(&serde_json::json!({ "quantity": quantity }));
    match app.backend.empty(call).await {
        Ok(_) => Ok(()),
        Err(f @ Failure::Refused { .. })
            if f.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) =>
        {
            Err(PageError::BadRequest(
                f.problem().map_or_else(String::new, |p| p.detail.clone()),
            ))
        }
        Err(f) => Err(f.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::wire::Money;

    fn line(amount: i64, currency: &str, quantity: i64) -> Line {
        Line {
            product_id: "p".to_owned(),
            quantity,
            product: Some(Product {
                id: "p".to_owned(),
                seller_id: "s".to_owned(),
                title: "t".to_owned(),
                description: String::new(),
                price: Money {
                    amount,
                    currency: currency.to_owned(),
                },
                category: String::new(),
            }),
        }
    }

    #[test]
    fn totals_are_per_currency() {
        let lines = [
            line(1250, "EUR", 2),
            line(100, "EUR", 1),
            line(500, "USD", 3),
        ];
        assert_eq!(total_text(&lines), "26.00 EUR + 15.00 USD");
        let gone = Line {
            product: None,
            ..line(1, "EUR", 1)
        };
        assert_eq!(total_text(&[gone]), "0.00 EUR");
    }
}
