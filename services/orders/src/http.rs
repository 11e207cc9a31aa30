//! The REST API (shared/API.md, "Orders"): wire types, handlers and their
//! OpenAPI description. Every route needs a user's token. A user sees only
//! their own orders; an admin (role `admin` in the token) may read any order
//! and list every user's (`?all=true`).

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bazaar_platform::auth::{self, BearerAuth, Verifier};
use bazaar_platform::db::is_unique_violation;
use bazaar_platform::problem::{
    FieldError, FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use bazaar_platform::{Json, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::domain::{
    Address, Card, CardError, CardNumber, Checkout, Cvc, Expiry, FieldIssue, IdempotencyKey, Lines,
};
use crate::engine::Engine;
use crate::error::Error;
use crate::store::{self, NewOrder, Order};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    engine: Arc<Engine>,
}

/// The service's routes; `verifier` checks users' tokens.
pub(crate) fn router(engine: Arc<Engine>, verifier: Verifier) -> Router {
    Router::new()
        .route("/api/v1/orders", get(list).post(place))
        .route("/api/v1/orders/{id}", get(one))
        .layer(Extension(verifier))
        .with_state(AppState { engine })
}

/// The OpenAPI description of these routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bazaar orders",
        description = "Checkout and order history: an order is accepted at once and completed by a saga (price, reserve stock, authorize, commit, capture) whose steps its timeline shows."
    ),
    paths(place, list, one),
    components(schemas(
        PlaceRequest, ItemRequest, PaymentRequest, AddressRequest,
        OrderBody, LineBody, MoneyBody, AddressBody, EntryBody, PageBody,
        ProblemBody, FieldErrorBody
    )),
    modifiers(&BearerAuth),
    tags((name = "orders", description = "A customer's orders; every user's for an admin."))
)]
struct ApiDoc;

// ---- wire types: requests ----

/// `POST /api/v1/orders`. Every field is checked and every problem named
/// at once (422), before anything is stored.
#[derive(Deserialize, ToSchema)]
#[schema(as = PlaceOrder)]
struct PlaceRequest {
    /// 1 to 50 lines. The same product twice is one line of their summed
    /// quantity (at most 99). Leave it out to order the cart.
    #[serde(default)]
    items: Option<Vec<ItemRequest>>,
    /// The card; kept only until the payment is authorized.
    #[schema(required)]
    payment: Option<PaymentRequest>,
    /// Where the order goes.
    #[schema(required)]
    shipping_address: Option<AddressRequest>,
}

/// One line of a new order.
#[derive(Deserialize, ToSchema)]
#[schema(as = PlaceOrderItem)]
struct ItemRequest {
    /// The product (UUID).
    #[schema(required)]
    product_id: Option<String>,
    /// 1 to 99.
    #[schema(required, minimum = 1, maximum = 99, example = 1)]
    quantity: Option<i64>,
}

/// A card. Test cards: 4242424242424242 approves, 4000000000000002 is
/// declined, 4000000000009995 lacks funds, 4000000000000119 fails
/// transiently.
#[derive(Deserialize, ToSchema)]
#[schema(as = CardDetails)]
struct PaymentRequest {
    /// 12 to 19 digits; spaces are ignored.
    #[schema(required, example = "4242 4242 4242 4242")]
    card_number: Option<String>,
    /// 1 to 12.
    #[schema(required, minimum = 1, maximum = 12, example = 12)]
    exp_month: Option<i64>,
    /// Four digits.
    #[schema(required, example = 2030)]
    exp_year: Option<i64>,
    /// 3 or 4 digits.
    #[schema(required, example = "123")]
    cvc: Option<String>,
}

/// Where an order goes.
#[derive(Deserialize, ToSchema)]
#[schema(as = ShippingAddressInput)]
struct AddressRequest {
    /// 1 to 100 characters.
    #[schema(required, example = "Ada Lovelace")]
    name: Option<String>,
    /// 1 to 200 characters.
    #[schema(required, example = "12 St James's Square")]
    line1: Option<String>,
    /// 1 to 100 characters.
    #[schema(required, example = "London")]
    city: Option<String>,
    /// 1 to 20 characters.
    #[schema(required, example = "SW1Y 4JH")]
    postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(required, example = "GB")]
    country: Option<String>,
}

/// `GET /api/v1/orders` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// 1-based page number (default 1).
    page: Option<String>,
    /// Orders per page, 1 to 100 (default 20).
    limit: Option<String>,
    /// `true`: every user's orders, not only the caller's; admins only
    /// (403 for anyone else). `false` is the default.
    #[param(value_type = Option<bool>)]
    all: Option<String>,
}

// ---- wire types: answers ----

/// An amount of money.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderMoney)]
struct MoneyBody {
    /// Minor units (cents).
    #[schema(example = 2999)]
    amount: i64,
    /// ISO 4217.
    #[schema(example = "EUR")]
    currency: String,
}

/// One line of an order.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderLine)]
struct LineBody {
    product_id: Uuid,
    /// The product's title when priced; null until then.
    title: Option<String>,
    #[schema(example = 1)]
    quantity: i64,
    /// Price of one unit when priced; null until then.
    unit_price: Option<MoneyBody>,
}

/// Where an order goes.
#[derive(Serialize, ToSchema)]
#[schema(as = ShippingAddress)]
struct AddressBody {
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
}

/// One step of an order's checkout.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderTimelineEntry)]
struct EntryBody {
    /// RFC 3339, UTC.
    #[schema(example = "2025-01-31T12:00:00.123Z")]
    at: String,
    /// `accepted`, `priced`, `reserved`, `retrying`, `authorized`,
    /// `committed`, `captured`, `confirmed`, `cart_cleared`, `cancelling`,
    /// `voiding`, `voided`, `releasing`, `released` or `cancelled`.
    #[schema(example = "reserved")]
    step: String,
    /// What happened, in a sentence.
    detail: String,
}

/// An order.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
struct OrderBody {
    id: Uuid,
    /// Who placed it.
    user_id: Uuid,
    /// `pending` while the checkout runs, then `confirmed` or `cancelled`.
    #[schema(example = "pending")]
    status: &'static str,
    items: Vec<LineBody>,
    /// Null until priced.
    total: Option<MoneyBody>,
    /// Why it was cancelled, for a person (only when cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_reason: Option<String>,
    /// Why it was cancelled, for a program: `out_of_stock`,
    /// `card_declined`, `insufficient_funds`, `invalid_card`,
    /// `payment_unavailable`, `not_on_sale`, `unknown_product`,
    /// `currency_mismatch` or `timed_out` (only when cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_code: Option<String>,
    /// The card's last four digits: all the order keeps of it.
    #[schema(example = "4242")]
    card_last4: String,
    shipping_address: AddressBody,
    /// Oldest first.
    timeline: Vec<EntryBody>,
    /// RFC 3339, UTC.
    created_at: String,
}

/// A page of orders, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderPage)]
struct PageBody {
    items: Vec<OrderBody>,
    page: i64,
    limit: i64,
    /// How many orders the caller has (with `all=true`: how many there are).
    total: i64,
}

/// Milliseconds since the epoch as RFC 3339.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl From<Order> for OrderBody {
    fn from(order: Order) -> Self {
        let currency = order.currency.clone();
        Self {
            id: order.id,
            user_id: order.user_id,
            status: order.status.as_str(),
            items: order
                .lines
                .into_iter()
                .map(|line| LineBody {
                    product_id: line.product_id,
                    title: line.title,
                    quantity: line.quantity.get(),
                    unit_price: line
                        .unit_amount
                        .zip(currency.clone())
                        .map(|(amount, currency)| MoneyBody { amount, currency }),
                })
                .collect(),
            total: order
                .total
                .zip(order.currency)
                .map(|(amount, currency)| MoneyBody { amount, currency }),
            cancel_reason: order.cancel_reason,
            cancel_code: order.cancel_code,
            card_last4: order.card_last4,
            shipping_address: AddressBody {
                name: order.address.name,
                line1: order.address.line1,
                city: order.address.city,
                postal_code: order.address.postal_code,
                country: order.address.country,
            },
            timeline: order
                .timeline
                .into_iter()
                .map(|e| EntryBody {
                    at: rfc3339(e.at),
                    step: e.step,
                    detail: e.detail,
                })
                .collect(),
            created_at: rfc3339(order.created_at),
        }
    }
}

// ---- validation ----

fn field_errors(issues: Vec<FieldIssue>) -> Vec<FieldError> {
    issues
        .into_iter()
        .map(|i| FieldError {
            field: i.field,
            message: i.message.to_owned(),
        })
        .collect()
}

/// One part of the card, if given and well-formed; else what is wrong is
/// noted under `field`.
fn card_part<T>(
    note: &mut impl FnMut(&str, &str),
    field: &str,
    given: Option<Result<T, CardError>>,
) -> Option<T> {
    match given {
        Some(Ok(part)) => Some(part),
        Some(Err(e)) => {
            note(field, e.message());
            None
        }
        None => {
            note(field, "is required");
            None
        }
    }
}

/// Checks a whole request, naming every bad field.
fn checkout(body: &PlaceRequest) -> Result<Checkout, Problem> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut note = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    };
    // `Err` when the items were named and are not valid.
    let items: Result<Option<Lines>, ()> = match &body.items {
        None => Ok(None),
        Some(items) => {
            let raw: Vec<(Option<&str>, Option<i64>)> = items
                .iter()
                .map(|i| (i.product_id.as_deref(), i.quantity))
                .collect();
            Lines::parse("items", &raw).map(Some).map_err(|issues| {
                for issue in issues {
                    note(&issue.field, issue.message);
                }
            })
        }
    };
    let card = match &body.payment {
        None => {
            note("payment", "is required");
            None
        }
        Some(p) => {
            let number = card_part(
                &mut note,
                "payment.card_number",
                p.card_number.as_deref().map(CardNumber::typed),
            );
            let month = card_part(
                &mut note,
                "payment.exp_month",
                p.exp_month.map(Expiry::month_of),
            );
            let year = card_part(
                &mut note,
                "payment.exp_year",
                p.exp_year.map(Expiry::year_of),
            );
            let cvc = card_part(
                &mut note,
                "payment.cvc",
                p.cvc.as_deref().map(|cvc| Cvc::parse(cvc.trim())),
            );
            let expiry = month
                .zip(year)
                .and_then(|(m, y)| Expiry::new(m.into(), y.into()).ok());
            match (number, expiry, cvc) {
                (Some(number), Some(expiry), Some(cvc)) => Some(Card {
                    number,
                    expiry,
                    cvc,
                }),
                _ => None,
            }
        }
    };
    let address = match &body.shipping_address {
        None => {
            note("shipping_address", "is required");
            None
        }
        Some(a) => Address::parse(
            "shipping_address",
            a.name.as_deref(),
            a.line1.as_deref(),
            a.city.as_deref(),
            a.postal_code.as_deref(),
            a.country.as_deref(),
        )
        .map_err(|issues| {
            for issue in issues {
                note(&issue.field, issue.message);
            }
        })
        .ok(),
    };
    match (items, card, address) {
        (Ok(items), Some(card), Some(address)) => Ok(Checkout {
            items,
            card,
            address,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// The `Idempotency-Key` header.
fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Error> {
    let raw = headers.get("idempotency-key").ok_or(Error::MissingKey)?;
    IdempotencyKey::parse(raw.as_bytes()).map_err(|e| Error::BadKey(e.0))
}

fn location(id: Uuid) -> String {
    format!("/api/v1/orders/{id}")
}

/// The answer to a key used before: the same order if the request is the
/// same, else 422.
fn replay(existing: Order, fingerprint: &str) -> Result<Response, Error> {
    if existing.fingerprint != fingerprint {
        return Err(Error::KeyReused);
    }
    let id = existing.id;
    Ok((
        StatusCode::OK,
        [(header::LOCATION, location(id))],
        Json(OrderBody::from(existing)),
    )
        .into_response())
}

/// The cart of `user` as lines: 503 if it cannot be read, 422 if empty.
async fn cart_lines(state: &AppState, user: Uuid) -> Result<Lines, Error> {
    let items = state
        .engine
        .upstreams
        .cart(user)
        .await
        .map_err(Error::CartUnavailable)?;
    if items.is_empty() {
        return Err(Error::EmptyCart);
    }
    let raw: Vec<(Option<&str>, Option<i64>)> = items
        .iter()
        .map(|(p, q)| (Some(p.as_str()), Some(*q)))
        .collect();
    Lines::parse("cart", &raw).map_err(|issues| Problem::validation(field_errors(issues)).into())
}

// ---- handlers ----

#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "A unique string per order (1 to 200 visible ASCII characters); send the same one again only to retry the same request. Keys are per user.")),
    request_body = PlaceRequest,
    responses(
        (status = 202, description = "Accepted: the order is pending while its checkout runs; `Location` names it.", body = OrderBody,
            headers(("Location" = String, description = "The order's URL."))),
        (status = 200, description = "The key was used before for the same request: that order, as it is now.", body = OrderBody),
        (status = 400, description = "No or a malformed `Idempotency-Key`, or a body that is not JSON.", body = ProblemBody, content_type = "application/problem+json"),
        Unauthorized,
        (status = 422, description = "Invalid fields (`errors` names each; nothing is stored), an empty cart, or a key used before for a different request.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The cart cannot be read right now.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id, order_id = tracing::field::Empty))]
async fn place(
    State(state): State<AppState>,
    user: auth::User,
    headers: HeaderMap,
    body: Result<Json<PlaceRequest>, Problem>,
) -> Result<Response, Error> {
    let user_id = user.id;
    let key = idempotency_key(&headers)?;
    let Json(body) = body?;
    let checkout = checkout(&body)?;
    let fingerprint = checkout.fingerprint();
    let db = &state.engine.db;
    if let Some(existing) = store::by_key(db, user_id, key.as_str()).await? {
        tracing::Span::current().record("order_id", tracing::field::display(existing.id));
        return replay(existing, &fingerprint);
    }
    let (lines, from_cart) = match &checkout.items {
        Some(lines) => (lines.clone(), false),
        None => (cart_lines(&state, user_id).await?, true),
    };
    let id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let now = store::now_ms();
    let units = lines.units();
    let accepted = format!(
        "{units} item{} {}; checkout started.",
        if units == 1 { "" } else { "s" },
        if from_cart {
            "from your cart"
        } else {
            "ordered"
        }
    );
    let order = NewOrder {
        id,
        user_id,
        key: key.as_str(),
        fingerprint: &fingerprint,
        from_cart,
        lines: &lines,
        card: &checkout.card,
        address: &checkout.address,
        now,
        lease_owner: state.engine.owner(),
        lease_until: state.engine.lease_until(now),
    };
    let mut tx = db.begin_write().await?;
    // Answered as stored (pending, unpriced, only `accepted` on its
    // timeline), without reading it back.
    let placed = match store::insert(&mut tx, &order, &accepted).await {
        Ok(placed) => {
            tx.commit().await?;
            placed
        }
        // The same key raced in from another request: answer that one.
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            let existing = store::by_key(db, user_id, key.as_str())
                .await?
                .ok_or(Error::NoSuchOrder)?;
            return replay(existing, &fingerprint);
        }
        Err(e) => return Err(e.into()),
    };
    state.engine.start(id);
    tracing::info!(lines = lines.len(), from_cart, "order accepted");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location(id))],
        Json(OrderBody::from(placed)),
    )
        .into_response())
}

/// What a list asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listing {
    page: i64,
    limit: i64,
    /// Every user's orders (`all=true`), not only the caller's.
    all: bool,
}

/// Parses the list query, naming each bad parameter.
fn listing(query: Result<Query<ListParams>, QueryRejection>) -> Result<Listing, Problem> {
    let Ok(Query(params)) = query else {
        return Err(Problem::bad_request("The query string cannot be read."));
    };
    let mut errors = Vec::new();
    let all = match params.all.as_deref().map(str::trim) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => {
            errors.push(FieldError {
                field: "all".into(),
                message: "must be true or false".into(),
            });
            false
        }
    };
    let mut number =
        |raw: Option<&str>, default: i64, max: i64, field: &str, message: &str| match raw
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            None => default,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    errors.push(FieldError {
                        field: field.into(),
                        message: message.into(),
                    });
                    default
                }
            },
        };
    let page = number(
        params.page.as_deref(),
        1,
        1_000_000,
        "page",
        "must be a whole number from 1 to 1000000",
    );
    let limit = number(
        params.limit.as_deref(),
        20,
        100,
        "limit",
        "must be a whole number from 1 to 100",
    );
    if errors.is_empty() {
        Ok(Listing { page, limit, all })
    } else {
        Err(Problem::validation(errors))
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of the caller's orders, newest first; with `all=true` (admins only), of every user's. Each item is the whole order, with its status and saga timeline.", body = PageBody),
        Unauthorized,
        (status = 403, description = "`all=true` from a caller who is not an admin.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`page`, `limit` or `all` is invalid.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn list(
    State(state): State<AppState>,
    user: auth::User,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<PageBody>, Error> {
    let user_id = user.id;
    let Listing { page, limit, all } = listing(query)?;
    let (orders, total) = if all {
        if !user.is_admin() {
            return Err(Error::AdminOnly);
        }
        store::page_all(&state.engine.db, page, limit).await?
    } else {
        store::page(&state.engine.db, user_id, page, limit).await?
    };
    Ok(Json(PageBody {
        items: orders.into_iter().map(OrderBody::from).collect(),
        page,
        limit,
        total,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order.")),
    responses(
        (status = 200, description = "The order with its timeline: one of the caller's, or any order for an admin.", body = OrderBody),
        Unauthorized,
        (status = 404, description = "The caller has no order with this id (for an admin: there is none).", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn one(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderBody>, Error> {
    let user_id = user.id;
    let Ok(Path(raw)) = path else {
        return Err(Error::NoSuchOrder);
    };
    let id = Uuid::parse_str(&raw).map_err(|_| Error::NoSuchOrder)?;
    let order = if user.is_admin() {
        store::by_id(&state.engine.db, id).await?
    } else {
        store::of_user(&state.engine.db, id, user_id).await?
    };
    Ok(Json(order.ok_or(Error::NoSuchOrder)?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> PlaceRequest {
        serde_json::from_value(json).expect("a request body")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "items": [{"product_id": Uuid::now_v7().to_string(), "quantity": 2}],
            "payment": {"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "fr"}
        })
    }

    fn fields(problem: &Problem) -> Vec<&str> {
        problem.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_good_request_passes() {
        let checkout = checkout(&body(good())).unwrap();
        assert_eq!(checkout.items.unwrap().units(), 2);
        assert_eq!(checkout.card.number.last4(), "4242");
        assert_eq!(checkout.address.country, "FR");
    }

    #[test]
    fn no_items_means_the_cart() {
        let mut json = good();
        json.as_object_mut().unwrap().remove("items");
        assert!(checkout(&body(json)).unwrap().items.is_none());
    }

    #[test]
    fn every_bad_field_is_named() {
        let json = serde_json::json!({
            "items": [{"product_id": "nope", "quantity": 0}],
            "payment": {"card_number": "4242", "exp_month": 13, "exp_year": 30, "cvc": "12"},
            "shipping_address": {"name": "", "line1": "x", "city": "y", "postal_code": "z", "country": "FRA"}
        });
        let problem = checkout(&body(json)).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(
            fields(&problem),
            [
                "items[0].product_id",
                "items[0].quantity",
                "payment.card_number",
                "payment.exp_month",
                "payment.exp_year",
                "payment.cvc",
                "shipping_address.name",
                "shipping_address.country"
            ]
        );
    }

    #[test]
    fn missing_parts_are_required() {
        let problem = checkout(&body(serde_json::json!({"items": []}))).unwrap_err();
        assert_eq!(fields(&problem), ["items", "payment", "shipping_address"]);
        let problem = checkout(&body(
            serde_json::json!({"payment": {}, "shipping_address": {}}),
        ))
        .unwrap_err();
        assert_eq!(problem.errors.len(), 4 + 5);
    }

    #[test]
    fn the_openapi_description_names_every_route() {
        let spec = serde_json::to_value(openapi()).unwrap();
        assert!(spec["paths"]["/api/v1/orders"]["post"].is_object());
        assert!(spec["paths"]["/api/v1/orders"]["get"].is_object());
        assert!(spec["paths"]["/api/v1/orders/{id}"]["get"].is_object());
        let list = &spec["paths"]["/api/v1/orders"]["get"];
        assert!(list["responses"]["403"].is_object(), "{list}");
        let all = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "all")
            .expect("the all parameter");
        assert_eq!(all["in"], "query");
        assert!(all["schema"].to_string().contains("boolean"), "{all}");
        assert!(spec["components"]["schemas"]["Order"]["properties"]["user_id"].is_object());
        for schema in [
            "PlaceOrder",
            "CardDetails",
            "Order",
            "OrderPage",
            "OrderTimelineEntry",
        ] {
            assert!(
                spec["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
        assert_eq!(
            spec["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn paging_defaults_and_bounds() {
        let q = |page: Option<&str>, limit: Option<&str>, all: Option<&str>| {
            listing(Ok(Query(ListParams {
                page: page.map(str::to_owned),
                limit: limit.map(str::to_owned),
                all: all.map(str::to_owned),
            })))
        };
        let at = |page, limit, all| Listing { page, limit, all };
        assert_eq!(q(None, None, None).unwrap(), at(1, 20, false));
        assert_eq!(q(Some("3"), Some("100"), None).unwrap(), at(3, 100, false));
        assert_eq!(q(None, None, Some("true")).unwrap(), at(1, 20, true));
        assert_eq!(q(None, None, Some("false")).unwrap(), at(1, 20, false));
        let problem = q(Some("0"), Some("101"), Some("yes")).unwrap_err();
        assert_eq!(fields(&problem), ["all", "page", "limit"]);
    }
}
