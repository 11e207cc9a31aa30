//! The REST API (shared/API.md, "Catalog"): wire types, handlers and their
//! OpenAPI description. Handlers turn raw input into domain values (or a
//! 422 naming each bad field), call the store, and shape the answer.

// The platform's problem types, under the names the OpenAPI attributes use.
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use bazaar_events::catalog::{ProductCreated, ProductDeleted, ProductUpdated};
use bazaar_platform::auth::{self, BearerAuth, Verifier};
use bazaar_platform::db::{Db, DbKind};
use bazaar_platform::events::Events;
use bazaar_platform::problem::FieldError;
use bazaar_platform::problem::{
    FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use bazaar_platform::{Json, Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::cache::Cache;
use crate::domain::{self, Currency, Description, Invalid, Money, SearchTerms, Title};
use crate::error::Error;
use crate::store::{self, CategoryCount, Filter, Product};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) kind: DbKind,
    pub(crate) events: Events,
    pub(crate) cache: Cache,
}

/// The service's routes; `verifier` checks access tokens for the `User`
/// extractor.
pub(crate) fn router(state: AppState, verifier: Verifier) -> Router {
    Router::new()
        .route("/api/v1/products", get(list).post(create))
        .route(
            "/api/v1/products/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/categories", get(categories))
        .layer(Extension(verifier))
        .with_state(state)
}

/// The OpenAPI description of these routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bazaar catalog",
        description = "Products and categories: browse, search, sellers create and edit."
    ),
    paths(list, show, create, update, remove, categories),
    components(schemas(ProblemBody, FieldErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "catalog", description = "What is on sale, and who sells it."))
)]
struct ApiDoc;

// ---- wire types ----

/// A price.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Money)]
struct MoneyBody {
    /// Minor units (cents), > 0.
    #[schema(example = 2999, minimum = 1)]
    amount: i64,
    /// ISO 4217 code, upper-case.
    #[schema(example = "EUR")]
    currency: String,
}

/// A product.
#[derive(Serialize, ToSchema)]
#[schema(as = Product)]
struct ProductBody {
    id: Uuid,
    seller_id: Uuid,
    #[schema(example = "Stainless steel kettle")]
    title: String,
    description: String,
    price: MoneyBody,
    /// The category's slug.
    #[schema(example = "home-kitchen")]
    category: String,
    /// RFC 3339, UTC.
    #[schema(example = "2026-01-31T12:00:00Z")]
    created_at: String,
    /// RFC 3339, UTC.
    #[schema(example = "2026-01-31T12:00:00Z")]
    updated_at: String,
}

impl From<Product> for ProductBody {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            seller_id: p.seller_id,
            title: p.title,
            description: p.description,
            price: MoneyBody {
                amount: p.price_amount,
                currency: p.currency,
            },
            category: p.category,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A page of products.
#[derive(Serialize, ToSchema)]
#[schema(as = ProductPage)]
struct PageBody {
    items: Vec<ProductBody>,
    #[schema(example = 1)]
    page: i64,
    #[schema(example = 20)]
    limit: i64,
    /// How many products match, over all pages.
    total: i64,
}

/// A category with its number of products on sale.
#[derive(Serialize, ToSchema)]
#[schema(as = Category)]
struct CategoryBody {
    #[schema(example = "home-kitchen")]
    slug: String,
    #[schema(example = "Home & Kitchen")]
    name: String,
    product_count: i64,
}

impl From<CategoryCount> for CategoryBody {
    fn from(c: CategoryCount) -> Self {
        Self {
            slug: c.slug,
            name: c.name,
            product_count: c.product_count,
        }
    }
}

/// `POST /api/v1/products`.
#[derive(Deserialize, ToSchema)]
struct CreateRequest {
    /// 1 to 200 characters.
    #[schema(example = "Stainless steel kettle", min_length = 1, max_length = 200)]
    title: String,
    /// Up to 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: String,
    price: MoneyBody,
    /// A category's slug (see `GET /api/v1/categories`).
    #[schema(example = "home-kitchen")]
    category: String,
    /// Units in stock to start with (0 to 1000000; default 0). Handed to
    /// inventory through the `catalog.product.created` event.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    initial_stock: Option<i64>,
}

/// `PATCH /api/v1/products/{id}`: the fields to change.
#[derive(Deserialize, ToSchema)]
struct UpdateRequest {
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(max_length = 5000)]
    description: Option<String>,
    price: Option<MoneyBody>,
    category: Option<String>,
}

/// The query of `GET /api/v1/products`. Every field arrives as text so a
/// bad one is a 422 naming it, not a bare 400.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Words to search for in titles and descriptions (any text; best
    /// match first).
    q: Option<String>,
    /// Only this category (slug).
    category: Option<String>,
    /// Only this seller's products.
    #[param(value_type = Option<Uuid>)]
    seller_id: Option<String>,
    /// 1-based page number (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Products per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

// ---- input checks ----

/// Collects the bad fields of one request.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    /// The value, or `None` after noting why `field` is bad.
    fn take<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError {
                    field: field.to_owned(),
                    message: e.message().to_owned(),
                });
                None
            }
        }
    }

    fn note(&mut self, field: &str, message: &str) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    }

    fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.0))
        }
    }
}

fn price(fields: &mut Fields, body: &MoneyBody) -> Option<Money> {
    let currency = fields.take("price.currency", Currency::parse(&body.currency));
    let amount = if body.amount > 0 {
        Some(body.amount)
    } else {
        fields.note(
            "price.amount",
            "must be a positive number of minor units (cents)",
        );
        None
    };
    let (amount, currency) = (amount?, currency?);
    fields.take("price.amount", Money::new(amount, currency))
}

/// Checks that `slug` is a category, noting it otherwise.
async fn category(state: &AppState, fields: &mut Fields, slug: &str) -> Result<(), Error> {
    if !store::category_exists(state.db.pool(), slug).await? {
        fields.note(
            "category",
            "is not a category; GET /api/v1/categories lists them",
        );
    }
    Ok(())
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The caller's user id; refuses anyone but a seller.
fn seller(user: &auth::User) -> Result<Uuid, Error> {
    if user.can_sell() {
        Ok(user.id)
    } else {
        Err(Error::NotSeller)
    }
}

/// The product id of the path: anything but a UUID is no product.
fn product_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, Error> {
    let Ok(Path(raw)) = path else {
        return Err(Error::NoSuchProduct);
    };
    Uuid::parse_str(&raw).map_err(|_| Error::NoSuchProduct)
}

/// Parses the listing query, naming each bad parameter.
fn filter(params: ListParams) -> Result<Filter, Problem> {
    let mut fields = Fields::default();
    let page = match params.page.as_deref().map(str::trim) {
        None | Some("") => Some(1),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Some(n),
            _ => {
                fields.note("page", "must be a whole number from 1 to 1000000");
                None
            }
        },
    };
    let limit = match params.limit.as_deref().map(str::trim) {
        None | Some("") => Some(20),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Some(n),
            _ => {
                fields.note("limit", "must be a whole number from 1 to 100");
                None
            }
        },
    };
    let seller_id = match params.seller_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                fields.note("seller_id", "must be a UUID");
                None
            }
        },
    };
    fields.finish()?;
    Ok(Filter {
        terms: params.q.as_deref().and_then(SearchTerms::parse),
        category: params
            .category
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
        seller_id,
        page: page.unwrap_or(1),
        limit: limit.unwrap_or(20),
    })
}

// ---- handlers ----

#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(ListParams),
    responses(
        (status = 200, description = "A page of products on sale: best match first when searching, else newest first.", body = PageBody),
        (status = 422, description = "`page`, `limit` or `seller_id` is invalid; `errors` names each.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<PageBody>, Error> {
    let Query(params) = params.map_err(|_| {
        Problem::validation(vec![FieldError {
            field: "query".to_owned(),
            message: "is not a valid query string (each parameter at most once)".to_owned(),
        }])
    })?;
    let filter = filter(params)?;
    let (items, total) = store::list(state.db.pool(), state.kind, &filter).await?;
    Ok(Json(PageBody {
        items: items.into_iter().map(ProductBody::from).collect(),
        page: filter.page,
        limit: filter.limit,
        total,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "The product.")),
    responses(
        (status = 200, description = "The product.", body = ProductBody),
        (status = 404, description = "No product on sale has this id.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ProductBody>, Error> {
    let id = product_id(path)?;
    if let Some(hit) = state.cache.product(id) {
        return Ok(Json(hit.into()));
    }
    let product = store::get(state.db.pool(), id)
        .await?
        .ok_or(Error::NoSuchProduct)?;
    state.cache.put_product(&product);
    Ok(Json(product.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/products",
    tag = "catalog",
    security(("bearer" = [])),
    request_body = CreateRequest,
    responses(
        (status = 201, description = "The product is on sale.", body = ProductBody),
        Unauthorized,
        (status = 403, description = "The caller is not a seller.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `errors` names each.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id, product_id = tracing::field::Empty))]
async fn create(
    State(state): State<AppState>,
    user: auth::User,
    Json(body): Json<CreateRequest>,
) -> Result<(StatusCode, Json<ProductBody>), Error> {
    let seller_id = seller(&user)?;
    let mut fields = Fields::default();
    let title = fields.take("title", Title::parse(&body.title));
    let description = fields.take("description", Description::parse(&body.description));
    let price = price(&mut fields, &body.price);
    let stock = fields.take(
        "initial_stock",
        domain::initial_stock(body.initial_stock.unwrap_or(0)),
    );
    let slug = body.category.trim().to_owned();
    category(&state, &mut fields, &slug).await?;
    fields.finish()?;
    let (Some(title), Some(description), Some(price), Some(stock)) =
        (title, description, price, stock)
    else {
        unreachable!("a missing value was noted as a bad field");
    };

    let now = now();
    let product = Product {
        id: Uuid::now_v7(),
        seller_id,
        title: title.as_str().to_owned(),
        description: description.as_str().to_owned(),
        price_amount: price.amount,
        currency: price.currency.code().to_owned(),
        category: slug,
        created_at: now.clone(),
        updated_at: now,
        deleted: false,
    };
    tracing::Span::current().record("product_id", tracing::field::display(product.id));
    let mut tx = state.db.begin_write().await?;
    store::insert(&mut tx, &product).await?;
    let event = ProductCreated {
        product_id: product.id,
        seller_id,
        title: product.title.clone(),
        price_amount: product.price_amount,
        currency: product.currency.clone(),
        category: product.category.clone(),
        initial_stock: stock,
    };
    state
        .events
        .append(&mut tx, Some(&product.id.to_string()), &event)
        .await?;
    tx.commit().await?;
    state.events.committed();
    state.cache.invalidate(product.id);
    tracing::info!(initial_stock = stock, "product created");
    Ok((StatusCode::CREATED, Json(product.into())))
}

#[utoipa::path(
    patch,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The product as it is now.", body = ProductBody),
        Unauthorized,
        (status = 403, description = "The product is not the caller's.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No product on sale has this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `errors` names each.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn update(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
    Json(body): Json<UpdateRequest>,
) -> Result<Json<ProductBody>, Error> {
    let seller_id = seller(&user)?;
    let id = product_id(path)?;
    let mut fields = Fields::default();
    let title = body
        .title
        .as_deref()
        .and_then(|t| fields.take("title", Title::parse(t)));
    let description = body
        .description
        .as_deref()
        .and_then(|d| fields.take("description", Description::parse(d)));
    let price = body.price.as_ref().and_then(|p| price(&mut fields, p));
    let slug = body.category.as_deref().map(|c| c.trim().to_owned());
    if let Some(slug) = &slug {
        category(&state, &mut fields, slug).await?;
    }

    let mut tx = state.db.begin_write().await?;
    let mut product = store::get_for_update(&mut tx, state.kind, id)
        .await?
        .ok_or(Error::NoSuchProduct)?;
    if product.seller_id != seller_id {
        return Err(Error::NotOwner);
    }
    fields.finish()?;
    if let Some(title) = title {
        product.title = title.as_str().to_owned();
    }
    if let Some(description) = description {
        product.description = description.as_str().to_owned();
    }
    if let Some(price) = price {
        product.set_price(price);
    }
    if let Some(slug) = slug {
        product.category = slug;
    }
    product.updated_at = now();
    store::update(&mut tx, &product).await?;
    let event = ProductUpdated {
        product_id: product.id,
        seller_id,
        title: product.title.clone(),
        price_amount: product.price_amount,
        currency: product.currency.clone(),
        category: product.category.clone(),
    };
    state
        .events
        .append(&mut tx, Some(&product.id.to_string()), &event)
        .await?;
    tx.commit().await?;
    state.events.committed();
    state.cache.invalidate(product.id);
    tracing::info!(product_id = %product.id, "product updated");
    Ok(Json(product.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product.")),
    responses(
        (status = 204, description = "The product is off sale."),
        Unauthorized,
        (status = 403, description = "The product is not the caller's.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No product on sale has this id.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn remove(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Error> {
    let seller_id = seller(&user)?;
    let id = product_id(path)?;
    let mut tx = state.db.begin_write().await?;
    let product = store::get_for_update(&mut tx, state.kind, id)
        .await?
        .ok_or(Error::NoSuchProduct)?;
    if product.seller_id != seller_id {
        return Err(Error::NotOwner);
    }
    if !store::soft_delete(&mut tx, id, &now()).await? {
        return Err(Error::NoSuchProduct);
    }
    let event = ProductDeleted {
        product_id: id,
        seller_id,
    };
    state
        .events
        .append(&mut tx, Some(&id.to_string()), &event)
        .await?;
    tx.commit().await?;
    state.events.committed();
    state.cache.invalidate(id);
    tracing::info!(product_id = %id, "product deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/categories",
    tag = "catalog",
    responses(
        (status = 200, description = "Every category, with its number of products on sale.", body = [CategoryBody]),
    )
)]
#[tracing::instrument(skip_all)]
async fn categories(State(state): State<AppState>) -> Result<Json<Vec<CategoryBody>>, Error> {
    let list = match state.cache.categories() {
        Some(hit) => hit,
        None => {
            let fresh = store::categories(state.db.pool()).await?;
            state.cache.put_categories(&fresh);
            fresh
        }
    };
    Ok(Json(list.into_iter().map(CategoryBody::from).collect()))
}
