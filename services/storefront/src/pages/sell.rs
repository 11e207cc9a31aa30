//! The seller area (role `seller` or `admin`): the seller's own products
//! with their stock, a new product, editing one and setting its stock.

use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::form::{Errors, Field, select};
use super::wire::{Category, Created, Money, Page, Product, Stock};
use super::{back_to, parse_price, price_text, product_id};
use crate::App;
use crate::error::PageError;
use crate::layout::{self, Chrome, csrf_field, money};
use crate::session::{CsrfForm, Session, User};

/// Currencies offered (the catalog accepts more; these are the usual).
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"];

/// The signed-in seller, or the 403 page for anyone else.
fn seller<'a>(session: &'a Session, back: &str) -> Result<&'a User, PageError> {
    let user = session.require(back)?;
    if user.can_sell() {
        Ok(user)
    } else {
        Err(PageError::Forbidden(
            "Only sellers can open the seller area. Register a seller account to sell.".to_owned(),
        ))
    }
}

/// `GET /sell`.
pub async fn dashboard(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
) -> Result<Markup, PageError> {
    let user = seller(&session, &back_to(&uri))?;
    let (chrome, products) = tokio::join!(
        app.chrome(&session),
        app.backend.json::<Page<Product>>(app.backend.get(
            "catalog",
            format!("/api/v1/products?seller_id={}&limit=100", user.id)
        )),
    );
    let products = products?;
    let stocks = join_all(products.items.iter().map(|p| {
        app.backend.json::<Stock>(
            app.backend
                .get("inventory", format!("/api/v1/inventory/{}", p.id)),
        )
    }))
    .await;
    let body = html! {
        h1 { "Your products" }
        p { a.button href="/sell/new" { "Add a product" } }
        @if products.items.is_empty() {
            div.notice.empty { p { "You have nothing on sale yet." } }
        } @else {
            table.products {
                caption.visually-hidden { "Your products on sale" }
                thead { tr { th scope="col" { "Product" } th scope="col" { "Price" } th scope="col" { "Category" } th scope="col" { "Available" } } }
                tbody {
                    @for (p, stock) in products.items.iter().zip(&stocks) {
                        tr {
                            td { a href={ "/sell/products/" (p.id) } { (p.title) } }
                            td { (money(p.price.amount, &p.price.currency)) }
                            td { (p.category) }
                            td { @match stock { Ok(s) => (s.available), Err(_) => "unknown" } }
                        }
                    }
                }
            }
            @if products.total > products.items.len() as i64 {
                p.muted { "Showing your newest " (products.items.len()) " of " (products.total) "." }
            }
        }
    };
    Ok(layout::page(&session, &chrome, "Your products", body))
}

/// The product form, new or edited.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProductForm {
    title: String,
    description: String,
    price: String,
    currency: String,
    category: String,
    stock: String,
}

#[derive(Serialize)]
struct NewProduct<'a> {
    title: &'a str,
    description: &'a str,
    price: MoneyBody<'a>,
    category: &'a str,
    initial_stock: i64,
}

#[derive(Serialize)]
struct MoneyBody<'a> {
    amount: i64,
    currency: &'a str,
}

#[derive(Serialize)]
struct Changes<'a> {
    title: &'a str,
    description: &'a str,
    price: MoneyBody<'a>,
    category: &'a str,
}

const RENAME: &[(&str, &str)] = &[
    ("title", "title"),
    ("description", "description"),
    ("price.amount", "price"),
    ("price", "price"),
    ("price.currency", "currency"),
    ("category", "category"),
    ("initial_stock", "stock"),
    ("on_hand", "stock"),
];

const LABELS: &[(&str, &str)] = &[
    ("title", "Title"),
    ("description", "Description"),
    ("price", "Price"),
    ("currency", "Currency"),
    ("category", "Category"),
    ("stock", "Stock"),
];

async fn categories(app: &App) -> Result<Vec<Category>, PageError> {
    Ok(app
        .backend
        .json::<Vec<Category>>(app.backend.get("catalog", "/api/v1/categories"))
        .await?)
}

/// `GET /sell/new`.
pub async fn new_form(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
) -> Result<Markup, PageError> {
    seller(&session, &back_to(&uri))?;
    let (chrome, categories) = tokio::join!(app.chrome(&session), categories(&app));
    let form = ProductForm {
        currency: "EUR".to_owned(),
        stock: "10".to_owned(),
        ..ProductForm::default()
    };
    Ok(new_page(
        &session,
        &chrome,
        &categories?,
        &form,
        &Errors::new(),
    ))
}

/// `POST /sell/new`.
pub async fn create(
    State(app): State<App>,
    session: Session,
    CsrfForm(form): CsrfForm<ProductForm>,
) -> Result<Response, PageError> {
    let user = seller(&session, "/sell/new")?;
    let mut errors = Errors::new();
    let amount = parse_price(&form.price).unwrap_or_else(|m| {
        errors.add("price", format!("The price {m}."));
        0
    });
    let stock = parse_stock(&form.stock).unwrap_or_else(|m| {
        errors.add("stock", m);
        0
    });
    if errors.is_empty() {
        let call = app
            .backend
            .call("catalog", Method::POST, "/api/v1/products")
            .token(Some(&user.token))
            .json(&NewProduct {
                title: form.title.trim(),
                description: form.description.trim(),
                price: MoneyBody {
                    amount,
                    currency: form.currency.trim(),
                },
                category: form.category.trim(),
                initial_stock: stock,
            });
        match app.backend.json::<Created>(call).await {
            Ok(product) => {
                return Ok(
                    Redirect::to(&format!("/sell/products/{}?created=1", product.id))
                        .into_response(),
                );
            }
            Err(f) if f.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                errors.add_failure(&f, RENAME);
            }
            Err(f) => return Err(f.into()),
        }
    }
    let (chrome, categories) = tokio::join!(app.chrome(&session), categories(&app));
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        new_page(&session, &chrome, &categories?, &form, &errors),
    )
        .into_response())
}

fn parse_stock(raw: &str) -> Result<i64, &'static str> {
    match raw.trim().parse::<i64>() {
        Ok(n) if (0..=1_000_000).contains(&n) => Ok(n),
        _ => Err("The stock must be a whole number from 0 to 1000000."),
    }
}

fn product_fields(form: &ProductForm, categories: &[Category], errors: &Errors) -> Markup {
    let mut options = vec![(String::new(), "Choose a category".to_owned())];
    options.extend(categories.iter().map(|c| (c.slug.clone(), c.name.clone())));
    let mut currencies: Vec<(String, String)> = CURRENCIES
        .iter()
        .map(|c| ((*c).to_owned(), (*c).to_owned()))
        .collect();
    if !form.currency.is_empty() && !CURRENCIES.contains(&form.currency.as_str()) {
        currencies.push((form.currency.clone(), form.currency.clone()));
    }
    html! {
        (Field::text("title", "Title", &form.title).render(errors))
        (Field::text("description", "Description", &form.description).kind("textarea").render(errors))
        div.row {
            (Field::text("price", "Price", &form.price).inputmode("decimal").hint("Like 12.50").render(errors))
            (select("currency", "Currency", &currencies, &form.currency, errors))
        }
        (select("category", "Category", &options, &form.category, errors))
    }
}

fn new_page(
    session: &Session,
    chrome: &Chrome,
    categories: &[Category],
    form: &ProductForm,
    errors: &Errors,
) -> Markup {
    let body = html! {
        div.narrow {
            h1 { "Add a product" }
            form.product action="/sell/new" method="post" novalidate {
                (errors.summary(LABELS))
                (csrf_field(session))
                (product_fields(form, categories, errors))
                (Field::text("stock", "Initial stock", &form.stock).kind("number").range(0, 1_000_000).inputmode("numeric").render(errors))
                button.primary type="submit" { "Put on sale" }
            }
            p { a href="/sell" { "Back to your products" } }
        }
    };
    layout::page(session, chrome, "Add a product", body)
}

/// The seller's product and its stock, or 403/404.
async fn own_product(
    app: &App,
    user: &User,
    id: &str,
) -> Result<(Product, Option<Stock>, Vec<Category>), PageError> {
    let (product, stock, categories) = tokio::join!(
        app.backend
            .json::<Product>(app.backend.get("catalog", format!("/api/v1/products/{id}"))),
        app.backend.json::<Stock>(
            app.backend
                .get("inventory", format!("/api/v1/inventory/{id}"))
        ),
        categories(app),
    );
    let product = product.map_err(|f| {
        if f.is_not_found() {
            PageError::NotFound("There is no such product.".to_owned())
        } else {
            f.into()
        }
    })?;
    if product.seller_id != user.id {
        return Err(PageError::Forbidden(
            "This product is another seller's.".to_owned(),
        ));
    }
    Ok((product, stock.ok(), categories?))
}

/// `?created=1` after a new product.
#[derive(Debug, Default, Deserialize)]
pub struct EditQuery {
    created: Option<String>,
}

/// `GET /sell/products/{id}`.
pub async fn edit_form(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    query: Result<axum::extract::Query<EditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, PageError> {
    let user = seller(&session, &back_to(&uri))?;
    let id = product_id(&raw)?.to_string();
    let (chrome, loaded) = tokio::join!(app.chrome(&session), own_product(&app, user, &id));
    let (product, stock, categories) = loaded?;
    let created = query.ok().and_then(|q| q.0.created).is_some();
    let form = form_of(&product, stock.as_ref());
    let notice = created.then_some("Your product is on sale.");
    Ok(edit_page(
        &session,
        &chrome,
        &product,
        &categories,
        &form,
        &Errors::new(),
        notice,
    ))
}

fn form_of(product: &Product, stock: Option<&Stock>) -> ProductForm {
    ProductForm {
        title: product.title.clone(),
        description: product.description.clone(),
        price: price_text(product.price.amount),
        currency: product.price.currency.clone(),
        category: product.category.clone(),
        stock: stock.map_or_else(String::new, |s| s.available.to_string()),
    }
}

/// `POST /sell/products/{id}`: new title, description, price, category.
pub async fn update(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
    CsrfForm(form): CsrfForm<ProductForm>,
) -> Result<Response, PageError> {
    let id = product_id(&raw)?.to_string();
    let user = seller(&session, &format!("/sell/products/{id}"))?;
    let mut errors = Errors::new();
    let amount = parse_price(&form.price).unwrap_or_else(|m| {
        errors.add("price", format!("The price {m}."));
        0
    });
    if errors.is_empty() {
        let call = app
            .backend
            .call("catalog", Method::PATCH, format!("/api/v1/products/{id}"))
            .token(Some(&user.token))
            .json(&Changes {
                title: form.title.trim(),
                description: form.description.trim(),
                price: MoneyBody {
                    amount,
                    currency: form.currency.trim(),
                },
                category: form.category.trim(),
            });
        match app.backend.empty(call).await {
            Ok(_) => return Ok(Redirect::to("/sell").into_response()),
            Err(f) if f.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                errors.add_failure(&f, RENAME);
            }
            Err(f) => return Err(f.into()),
        }
    }
    rerender(&app, &session, user, &id, form, errors).await
}

/// The stock form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StockForm {
    stock: String,
}

/// `POST /sell/products/{id}/stock`.
pub async fn stock(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
    CsrfForm(stock_form): CsrfForm<StockForm>,
) -> Result<Response, PageError> {
    let id = product_id(&raw)?.to_string();
    let user = seller(&session, &format!("/sell/products/{id}"))?;
    let mut errors = Errors::new();
    match parse_stock(&stock_form.stock) {
        Ok(on_hand) => {
            let call = app
                .backend
                .call("inventory", Method::PUT, format!("/api/v1/inventory/{id}"))
                .token(Some(&user.token))
                .json(&serde_json::json!({ "on_hand": on_hand }));
            match app.backend.empty(call).await {
                Ok(_) => return Ok(Redirect::to("/sell").into_response()),
                Err(f) if f.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                    errors.add_failure(&f, RENAME);
                }
                Err(f) => return Err(f.into()),
            }
        }
        Err(m) => errors.add("stock", m),
    }
    let (product, stock, _) = own_product(&app, user, &id).await?;
    let form = ProductForm {
        stock: stock_form.stock,
        ..form_of(&product, stock.as_ref())
    };
    rerender(&app, &session, user, &id, form, errors).await
}

async fn rerender(
    app: &App,
    session: &Session,
    user: &User,
    id: &str,
    form: ProductForm,
    errors: Errors,
) -> Result<Response, PageError> {
    let (chrome, loaded) = tokio::join!(app.chrome(session), own_product(app, user, id));
    let (product, _, categories) = loaded?;
    let page = edit_page(
        session,
        &chrome,
        &product,
        &categories,
        &form,
        &errors,
        None,
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

fn edit_page(
    session: &Session,
    chrome: &Chrome,
    product: &Product,
    categories: &[Category],
    form: &ProductForm,
    errors: &Errors,
    notice: Option<&str>,
) -> Markup {
    let title = format!("Edit {}", product.title);
    let current: &Money = &product.price;
    let body = html! {
        div.narrow {
            h1 { (title) }
            @if let Some(notice) = notice {
                div.notice.ok role="status" { p { (notice) " " a href={ "/products/" (product.id) } { "See its page" } } }
            }
            p.muted { "Now on sale for " (money(current.amount, &current.currency)) ". " a href={ "/products/" (product.id) } { "View in the shop" } }
            (errors.summary(LABELS))
            form.product action={ "/sell/products/" (product.id) } method="post" novalidate {
                (csrf_field(session))
                (product_fields(form, categories, errors))
                button.primary type="submit" { "Save changes" }
            }
            form.stock action={ "/sell/products/" (product.id) "/stock" } method="post" novalidate {
                h2 { "Stock" }
                (csrf_field(session))
                (Field::text("stock", "Units on hand", &form.stock).kind("number").range(0, 1_000_000).inputmode("numeric").render(errors))
                button.primary type="submit" { "Set stock" }
            }
            p { a href="/sell" { "Back to your products" } }
        }
    };
    layout::page(session, chrome, &title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_a_whole_number() {
        assert_eq!(parse_stock("0"), Ok(0));
        assert_eq!(parse_stock(" 25 "), Ok(25));
        assert!(parse_stock("-1").is_err());
        assert!(parse_stock("2.5").is_err());
    }
}
