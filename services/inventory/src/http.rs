//! The REST API (shared/API.md, "Inventory"): wire types, handlers and
//! their OpenAPI description.

// The platform's problem types, under the names the OpenAPI attributes use.
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router};
use bazaar_platform::auth::{self, BearerAuth, Verifier};
use bazaar_platform::problem::FieldError;
use bazaar_platform::problem::{
    FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use bazaar_platform::{Json, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::domain::OnHand;
use crate::reservations::{Ledger, LedgerError};
use crate::store::{self, Stock};

/// The service's routes; `verifier` checks the tokens of sellers.
pub(crate) fn router(ledger: Ledger, verifier: Verifier) -> Router {
    Router::new()
        .route(
            "/api/v1/inventory/{product_id}",
            get(get_stock).put(put_stock),
        )
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
        title = "Bazaar inventory",
        description = "Stock per product: what is available, and what sellers have on hand."
    ),
    paths(get_stock, put_stock),
    components(schemas(StockBody, OnHandRequest, ProblemBody, FieldErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "inventory", description = "Stock levels of products."))
)]
struct ApiDoc;

// ---- wire types ----

/// A product's stock as clients see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Stock)]
struct StockBody {
    product_id: Uuid,
    /// Units that can be ordered now: on hand minus reserved.
    #[schema(example = 12, minimum = 0)]
    available: i64,
    /// Units held by orders not yet confirmed.
    #[schema(example = 2, minimum = 0)]
    reserved: i64,
}

impl From<Stock> for StockBody {
    fn from(stock: Stock) -> Self {
        Self {
            product_id: stock.product_id,
            available: stock.available(),
            reserved: stock.reserved,
        }
    }
}

/// `PUT /api/v1/inventory/{product_id}`.
#[derive(Deserialize, ToSchema)]
struct OnHandRequest {
    /// Units the seller has, reserved ones included: 0 or more, and not
    /// fewer than are reserved.
    #[schema(example = 14, minimum = 0)]
    on_hand: i64,
}

// ---- handlers ----

fn no_such_product() -> Problem {
    Problem::not_found("There is no product with this id.")
}

fn internal(e: impl Into<LedgerError>) -> Problem {
    Problem::internal(&e.into())
}

/// The product named by the path: 404 for anything but a UUID.
fn product(path: Result<Path<String>, PathRejection>) -> Result<Uuid, Problem> {
    let Ok(Path(raw)) = path else {
        return Err(no_such_product());
    };
    Uuid::parse_str(&raw).map_err(|_| no_such_product())
}

#[utoipa::path(
    get,
    path = "/api/v1/inventory/{product_id}",
    tag = "inventory",
    params(("product_id" = Uuid, Path, description = "The product.")),
    responses(
        (status = 200, description = "The product's stock.", body = StockBody),
        (status = 404, description = "No product has this id.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_stock(
    State(ledger): State<Ledger>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StockBody>, Problem> {
    let product = product(path)?;
    let found = store::stock(ledger.db.pool(), product)
        .await
        .map_err(internal)?;
    Ok(Json(found.ok_or_else(no_such_product)?.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/inventory/{product_id}",
    tag = "inventory",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The product.")),
    request_body = OnHandRequest,
    responses(
        (status = 200, description = "The new stock.", body = StockBody),
        Unauthorized,
        (status = 403, description = "The product is another seller's.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No product has this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Fewer units than orders have reserved.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`on_hand` is not a whole number, 0 or more.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn put_stock(
    State(ledger): State<Ledger>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
    Json(body): Json<OnHandRequest>,
) -> Result<Json<StockBody>, Problem> {
    let product = product(path)?;
    let on_hand = OnHand::new(body.on_hand).ok_or_else(|| {
        Problem::validation(vec![FieldError {
            field: "on_hand".into(),
            message: "must be a whole number, 0 or more".into(),
        }])
    })?;
    let mut tx = ledger.db.begin_write().await.map_err(internal)?;
    let stock = store::stock(&mut *tx, product)
        .await
        .map_err(internal)?
        .ok_or_else(no_such_product)?;
    if stock.seller_id != user.id.to_string() {
        return Err(Problem::forbidden(
            "Only the seller of this product can change its stock.",
        ));
    }
    if !store::set_on_hand(&mut tx, product, on_hand)
        .await
        .map_err(internal)?
    {
        return Err(Problem::conflict(format!(
            "{} units are reserved by orders; on hand cannot be fewer.",
            stock.reserved
        ))
        .with_kind("below-reserved", "Fewer than reserved"));
    }
    let announced = ledger
        .check_low(&mut tx, product, true)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let updated = store::stock(&mut *tx, product)
        .await
        .map_err(internal)?
        .ok_or_else(no_such_product)?;
    tx.commit().await.map_err(internal)?;
    if announced {
        ledger.events.committed();
    }
    tracing::info!(product_id = %product, on_hand = on_hand.get(), "on hand set");
    Ok(Json(updated.into()))
}
