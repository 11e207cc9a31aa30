//! Orders: the history, one order, and the fragment of an order that
//! changes while its checkout runs (`/orders/{id}/status`), which the page
//! script fetches again when the live stream says so, once when the stream
//! opens, and every 2 s while the order is pending.

use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::wire::{Order, Page, when};
use super::{back_to, page_number, pager};
use crate::App;
use crate::error::PageError;
use crate::layout::{self, money};
use crate::session::Session;

/// Orders per page of the history.
const PER_PAGE: i64 = 10;

/// An order id from a path; anything but a UUID is the 404 page.
fn order_id(raw: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| PageError::NotFound("There is no such order.".to_owned()))
}

/// The order's page query.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

/// `GET /orders?page=`.
pub async fn history(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Markup, PageError> {
    let user = session.require(&back_to(&uri))?;
    let page = page_number(params.ok().and_then(|Query(q)| q.page).as_deref());
    let (chrome, orders) = tokio::join!(
        app.chrome(&session),
        app.backend.json::<Page<Order>>(
            app.backend
                .get(
                    "orders",
                    format!("/api/v1/orders?page={page}&limit={PER_PAGE}")
                )
                .token(Some(&user.token))
        ),
    );
    let orders = orders?;
    let body = html! {
        h1 { "Your orders" }
        @if orders.items.is_empty() {
            div.notice.empty {
                p { "No orders here yet." }
                p { a href="/products" { "Browse the shop" } }
            }
        } @else {
            table.orders {
                caption.visually-hidden { "Your orders, newest first" }
                thead { tr { th scope="col" { "Order" } th scope="col" { "Placed" } th scope="col" { "Status" } th scope="col" { "Total" } } }
                tbody {
                    @for o in &orders.items {
                        tr {
                            td { a href={ "/orders/" (o.id) } { "Order " (short(&o.id)) } }
                            td { (when(&o.created_at)) }
                            td { span class={ "status status-" (o.status) } { (o.status) } }
                            td { @if let Some(t) = &o.total { (money(t.amount, &t.currency)) } @else { "—" } }
                        }
                    }
                }
            }
        }
        (pager(orders.page, orders.total, orders.limit.max(1), |n| format!("/orders?page={n}")))
    };
    Ok(layout::page(&session, &chrome, "Your orders", body))
}

/// `GET /orders/{id}`: someone else's order is the 404 page (orders
/// answers 404 for it).
pub async fn show(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Markup, PageError> {
    let user = session.require(&back_to(&uri))?;
    let id = order_id(&raw)?;
    let (chrome, order) = tokio::join!(
        app.chrome(&session),
        app.backend.json::<Order>(
            app.backend
                .get("orders", format!("/api/v1/orders/{id}"))
                .token(Some(&user.token))
        ),
    );
    let order = order.map_err(not_found)?;
    let title = format!("Order {}", short(&order.id));
    let body = html! {
        h1 { (title) }
        p.muted { "Placed " (when(&order.created_at)) }
        div.order-live #order-live
            data-order-live={ "/orders/" (order.id) "/status" }
            data-order-link={ "/orders/" (order.id) }
            data-status=(order.status) {
            (fragment(&order))
        }
        p { a href="/orders" { "All your orders" } }
    };
    Ok(layout::page(&session, &chrome, &title, body))
}

/// `GET /orders/{id}/status`: the part of the order page that changes, as
/// an HTML fragment for the page script (401 rather than a redirect for
/// a session that ended).
pub async fn status(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let Some(user) = &session.user else {
        return Ok((StatusCode::UNAUTHORIZED, "Sign in to see this order.").into_response());
    };
    let id = order_id(&raw)?;
    let order = app
        .backend
        .json::<Order>(
            app.backend
                .get("orders", format!("/api/v1/orders/{id}"))
                .token(Some(&user.token)),
        )
        .await
        .map_err(not_found)?;
    let mut response = fragment(&order).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}

fn not_found(failure: crate::backend::Failure) -> PageError {
    if failure.is_not_found() {
        PageError::NotFound("There is no such order.".to_owned())
    } else {
        failure.into()
    }
}

/// What changes as the checkout runs: status, reason, lines, total, steps.
fn fragment(order: &Order) -> Markup {
    html! {
        div.order-status data-status=(order.status) {
            p.status-line {
                "Status: "
                strong class={ "status status-" (order.status) } data-order-status { (status_text(&order.status)) }
            }
            @if order.status == "pending" {
                p.muted { "We are checking stock and your card. This page updates by itself." }
            }
            @if let Some(reason) = &order.cancel_reason {
                div.notice.error role="alert" {
                    p { strong { "Cancelled: " } span data-cancel-reason { (reason) } }
                }
            }
            @if order.status == "confirmed" {
                div.notice.ok { p { "Thank you! Your order is confirmed." } }
            }
        }
        table.items {
            caption.visually-hidden { "Products in this order" }
            thead { tr { th scope="col" { "Product" } th scope="col" { "Quantity" } th scope="col" { "Unit price" } } }
            tbody {
                @for line in &order.items {
                    tr {
                        td {
                            a href={ "/products/" (line.product_id) } {
                                (line.title.as_deref().unwrap_or("A product"))
                            }
                        }
                        td { (line.quantity) }
                        td { @if let Some(p) = &line.unit_price { (money(p.amount, &p.currency)) } @else { "—" } }
                    }
                }
            }
            tfoot {
                tr {
                    th scope="row" colspan="2" { "Total" }
                    td { @if let Some(t) = &order.total { (money(t.amount, &t.currency)) } @else { "being priced" } }
                }
            }
        }
        section.timeline aria-labelledby="timeline-heading" {
            h2 #timeline-heading { "Timeline" }
            ol {
                @for step in &order.timeline {
                    li {
                        time datetime=(step.at) { (when(&step.at)) }
                        " — " strong { (step.step) } ": " (step.detail)
                    }
                }
            }
        }
    }
}

fn status_text(status: &str) -> &str {
    match status {
        "pending" => "Pending",
        "confirmed" => "Confirmed",
        "cancelled" => "Cancelled",
        other => other,
    }
}

/// The last part of an id, enough for a person to tell orders apart (a
/// UUIDv7 begins with its time, so orders of one minute share a start).
fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}
