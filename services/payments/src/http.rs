//! The REST API (shared/API.md, "Payments"): a buyer reads the payments of
//! an order. Someone else's order answers an empty list, the same as an
//! order without payments, so the answer reveals nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Router};
use bazaar_platform::Json;
use bazaar_platform::auth::{self, BearerAuth, Verifier};
use bazaar_platform::problem::{
    FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::error::Error;
use crate::ledger::Ledger;
use crate::store::Payment;

/// The service's routes; `verifier` checks the buyers' tokens.
pub(crate) fn router(ledger: Ledger, verifier: Verifier) -> Router {
    Router::new()
        .route("/api/v1/payments", get(list))
        .layer(Extension(verifier))
        .with_state(ledger)
}

/// The OpenAPI description of these routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bazaar payments",
        description = "Card payments of orders, as their buyers see them."
    ),
    paths(list),
    components(schemas(PaymentBody, ProblemBody, FieldErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Payments of orders."))
)]
struct ApiDoc;

// ---- wire types ----

/// An order's payment as its buyer sees it.
#[derive(Serialize, ToSchema)]
#[schema(as = Payment)]
struct PaymentBody {
    id: Uuid,
    order_id: Uuid,
    /// `authorized`, `captured`, `voided`, `refunded` or `declined`.
    #[schema(example = "captured")]
    status: &'static str,
    /// Minor units (cents).
    #[schema(example = 2999, minimum = 1)]
    amount: i64,
    /// ISO 4217.
    #[schema(example = "EUR")]
    currency: String,
    /// The card's last four digits: all of it payments keeps.
    #[schema(example = "4242")]
    card_last4: String,
    /// RFC 3339, UTC.
    #[schema(example = "2025-01-31T12:00:00Z")]
    created_at: String,
}

impl From<Payment> for PaymentBody {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id,
            order_id: p.order_id,
            status: p.state.as_str(),
            amount: p.amount.get(),
            currency: p.currency.as_str().to_owned(),
            card_last4: p.card_last4,
            created_at: p.created_at,
        }
    }
}

/// The query of `GET /api/v1/payments`. The id arrives as text so a bad
/// one is a 422 naming it, not a bare 400.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// The order whose payments to list (required).
    #[param(value_type = Uuid)]
    order_id: Option<String>,
}

// ---- handlers ----

#[utoipa::path(
    get,
    path = "/api/v1/payments",
    tag = "payments",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The order's payments if the caller bought it; an empty list otherwise.", body = [PaymentBody]),
        Unauthorized,
        (status = 422, description = "`order_id` is missing or not a UUID.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn list(
    State(ledger): State<Ledger>,
    user: auth::User,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<PaymentBody>>, Error> {
    let Query(params) = params.map_err(|_| {
        Error::invalid(
            "query",
            "is not a valid query string (each parameter at most once)",
        )
    })?;
    let order = match params.order_id.as_deref().map(str::trim) {
        None | Some("") => return Err(Error::invalid("order_id", "is required")),
        Some(raw) => {
            Uuid::parse_str(raw).map_err(|_| Error::invalid("order_id", "must be a UUID"))?
        }
    };
    let buyer = user.id;
    let payments = ledger.of_user_order(order, buyer).await?;
    Ok(Json(payments.into_iter().map(PaymentBody::from).collect()))
}
