//! The REST API (shared/API.md, "Cart"): wire types, handlers and their
//! OpenAPI description. Every route is the signed-in user's own cart.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Router};
use bazaar_platform::auth::{self, BearerAuth, Verifier};
use bazaar_platform::problem::FieldError;
// The platform's problem types, under the names the OpenAPI attributes use.
use bazaar_platform::problem::{
    FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use bazaar_platform::{Json, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::carts::Carts;
use crate::domain::{Line, Quantity};
use crate::error::Error;
use crate::store::Put;

/// The service's routes; `verifier` checks users' tokens.
pub(crate) fn router(carts: Carts, verifier: Verifier) -> Router {
    Router::new()
        .route("/api/v1/cart", get(get_cart).delete(clear_cart))
        .route(
            "/api/v1/cart/items/{product_id}",
            put(put_item).delete(remove_item),
        )
        .layer(Extension(verifier))
        .with_state(carts)
}

/// The OpenAPI description of these routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bazaar cart",
        description = "The signed-in customer's cart: which products, how many of each."
    ),
    paths(get_cart, put_item, remove_item, clear_cart),
    components(schemas(CartBody, ItemBody, QuantityRequest, ProblemBody, FieldErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "cart", description = "The customer's cart."))
)]
struct ApiDoc;

// ---- wire types ----

/// A cart as clients see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Cart)]
struct CartBody {
    /// The lines, in the order their products were first added; at most 50.
    items: Vec<ItemBody>,
}

/// One line of a cart.
#[derive(Serialize, ToSchema)]
#[schema(as = CartItem)]
struct ItemBody {
    product_id: Uuid,
    #[schema(example = 2, minimum = 1, maximum = 99)]
    quantity: i64,
}

impl From<Vec<Line>> for CartBody {
    fn from(lines: Vec<Line>) -> Self {
        Self {
            items: lines
                .into_iter()
                .map(|line| ItemBody {
                    product_id: line.product_id,
                    quantity: line.quantity.get(),
                })
                .collect(),
        }
    }
}

/// `PUT /api/v1/cart/items/{product_id}`.
#[derive(Deserialize, ToSchema)]
struct QuantityRequest {
    /// How many units of the product the cart holds from now on.
    #[schema(example = 2, minimum = 1, maximum = 99)]
    quantity: i64,
}

// ---- handlers ----

/// The product named by the path, if it is a UUID.
fn product(path: Result<Path<String>, PathRejection>) -> Option<Uuid> {
    let Path(raw) = path.ok()?;
    Uuid::parse_str(&raw).ok()
}

const NOT_A_UUID: &str = "is not a UUID";

fn invalid(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/cart",
    tag = "cart",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's cart (no lines when there is none).", body = CartBody),
        Unauthorized,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn get_cart(State(carts): State<Carts>, user: auth::User) -> Result<Json<CartBody>, Error> {
    let lines = carts.lines(user.id).await?;
    Ok(Json(lines.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The product.")),
    request_body = QuantityRequest,
    responses(
        (status = 200, description = "The line is set; the cart after it.", body = CartBody),
        (status = 400, description = "The body is not JSON.", body = ProblemBody, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "The product is new and the cart holds 50 lines already.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The product id is not a UUID, or `quantity` is not a whole number from 1 to 99.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn put_item(
    State(carts): State<Carts>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
    Json(body): Json<QuantityRequest>,
) -> Result<Json<CartBody>, Error> {
    let owner = user.id;
    let product = product(path);
    let quantity = Quantity::new(body.quantity);
    let (Some(product), Some(quantity)) = (product, quantity) else {
        let mut errors = Vec::new();
        if product.is_none() {
            errors.push(invalid("product_id", NOT_A_UUID));
        }
        if quantity.is_none() {
            errors.push(invalid("quantity", "must be a whole number from 1 to 99"));
        }
        return Err(Problem::validation(errors).into());
    };
    match carts.put(owner, Line::new(product, quantity)).await? {
        Put::Done(lines) => Ok(Json(lines.into())),
        Put::Full => Err(Error::Full),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The product.")),
    responses(
        (status = 200, description = "The line is gone (or was not there); the cart after it.", body = CartBody),
        Unauthorized,
        (status = 422, description = "The product id is not a UUID.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn remove_item(
    State(carts): State<Carts>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CartBody>, Error> {
    let owner = user.id;
    let Some(product) = product(path) else {
        return Err(Problem::validation(vec![invalid("product_id", NOT_A_UUID)]).into());
    };
    Ok(Json(carts.remove(owner, product).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/cart",
    tag = "cart",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The cart is empty."),
        Unauthorized,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn clear_cart(State(carts): State<Carts>, user: auth::User) -> Result<StatusCode, Error> {
    carts.clear(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
