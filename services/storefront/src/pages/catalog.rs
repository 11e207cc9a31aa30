//! Browsing: the home page, the listing with search, category filter and
//! pages, and a product's page with its stock and the add-to-cart form.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::wire::{Category, Page, Product, Stock};
use super::{page_number, pager, product_id, query};
use crate::App;
use crate::error::PageError;
use crate::layout::{self, csrf_field, money};
use crate::session::Session;

/// Products per page of the listing (and on the home page).
const PER_PAGE: i64 = 12;
/// At or under this many units, the product page says how many are left.
const FEW_LEFT: i64 = 5;

/// `GET /`.
pub async fn home(State(app): State<App>, session: Session) -> Result<Markup, PageError> {
    let (chrome, categories, featured) = tokio::join!(
        app.chrome(&session),
        app.backend
            .json::<Vec<Category>>(app.backend.get("catalog", "/api/v1/categories")),
        app.backend.json::<Page<Product>>(
            app.backend
                .get("catalog", format!("/api/v1/products?limit={PER_PAGE}"))
        ),
    );
    let (categories, featured) = (categories?, featured?);
    let body = html! {
        section.hero {
            h1 { "Welcome to Bazaar" }
            p { "Small shops, one cart. Find something you like." }
        }
        section aria-labelledby="categories-heading" {
            h2 #categories-heading { "Categories" }
            (category_links(&categories))
        }
        section aria-labelledby="featured-heading" {
            h2 #featured-heading { "Featured products" }
            (product_grid(&featured.items))
            @if featured.total > featured.items.len() as i64 {
                p { a.button href="/products" { "See all " (featured.total) " products" } }
            }
        }
    };
    Ok(layout::page(&session, &chrome, "Home", body))
}

/// The listing's query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    category: Option<String>,
    page: Option<String>,
}

/// `GET /products?q=&category=&page=`.
pub async fn listing(
    State(app): State<App>,
    session: Session,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Markup, PageError> {
    let params = params.map(|Query(q)| q).unwrap_or_default();
    let q = params.q.as_deref().unwrap_or("").trim().to_owned();
    let category = params.category.as_deref().unwrap_or("").trim().to_owned();
    let page = page_number(params.page.as_deref());
    let page_str = page.to_string();
    let limit = PER_PAGE.to_string();
    let api_query = query(&[
        ("q", &q),
        ("category", &category),
        ("page", &page_str),
        ("limit", &limit),
    ]);
    let (chrome, categories, products) = tokio::join!(
        app.chrome(&session),
        app.backend
            .json::<Vec<Category>>(app.backend.get("catalog", "/api/v1/categories")),
        app.backend.json::<Page<Product>>(
            app.backend
                .get("catalog", format!("/api/v1/products?{api_query}"))
        ),
    );
    let categories = categories?;
    let products = match products {
        Ok(p) => p,
        // A query the catalog refuses (a page far beyond the end): nothing.
        Err(f) if f.status() == Some(http::StatusCode::UNPROCESSABLE_ENTITY) => Page {
            items: Vec::new(),
            page: i64::from(page),
            limit: PER_PAGE,
            total: 0,
            unread: None,
        },
        Err(f) => return Err(f.into()),
    };
    let category_name = categories
        .iter()
        .find(|c| c.slug == category)
        .map(|c| c.name.clone());
    let heading = match (&q, &category_name) {
        (q, Some(name)) if !q.is_empty() => format!("“{q}” in {name}"),
        (q, None) if !q.is_empty() => format!("Results for “{q}”"),
        (_, Some(name)) => name.clone(),
        _ => "All products".to_owned(),
    };
    let mut options = vec![(String::new(), "All categories".to_owned())];
    options.extend(
        categories
            .iter()
            .map(|c| (c.slug.clone(), format!("{} ({})", c.name, c.product_count))),
    );
    let href = |n: i64| {
        let n = n.to_string();
        format!(
            "/products?{}",
            query(&[("q", &q), ("category", &category), ("page", &n)])
        )
    };
    let body = html! {
        h1 { (heading) }
        form.filters role="search" action="/products" method="get" {
            div.field {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(q);
            }
            div.field {
                label for="category" { "Category" }
                select #category name="category" {
                    @for (value, text) in &options {
                        option value=(value) selected[*value == category] { (text) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        p.count aria-live="polite" {
            (products.total) @if products.total == 1 { " product" } @else { " products" }
        }
        @if products.items.is_empty() {
            div.notice.empty {
                p { "No products match your search." }
                p { "Try other words, or " a href="/products" { "browse every product" } "." }
            }
        } @else {
            (product_grid(&products.items))
        }
        (pager(products.page, products.total, products.limit.max(1), href))
    };
    Ok(layout::page(&session, &chrome, &heading, body))
}

/// `GET /products/{id}`.
pub async fn product(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Markup, PageError> {
    let id = product_id(&raw)?;
    let (chrome, product, stock) = tokio::join!(
        app.chrome(&session),
        app.backend
            .json::<Product>(app.backend.get("catalog", format!("/api/v1/products/{id}"))),
        app.backend.json::<Stock>(
            app.backend
                .get("inventory", format!("/api/v1/inventory/{id}"))
                .optional()
        ),
    );
    let product = match product {
        Ok(p) => p,
        Err(f)
            if f.is_not_found() || f.status() == Some(http::StatusCode::UNPROCESSABLE_ENTITY) =>
        {
            return Err(PageError::NotFound("There is no such product.".to_owned()));
        }
        Err(f) => return Err(f.into()),
    };
    // Without inventory the page still shows; the cart and checkout check.
    let available = stock.ok().map(|s| s.available);
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/products" { "Products" }
            @if !product.category.is_empty() {
                " › "
                a href={ "/products?category=" (product.category) } { (product.category) }
            }
        }
        article.product {
            h1 { (product.title) }
            p.price { (money(product.price.amount, &product.price.currency)) }
            (stock_state(available))
            div.description {
                @for para in product.description.split("\n\n") {
                    p { (para) }
                }
            }
            @if available != Some(0) {
                form.add action="/cart/items" method="post" {
                    (csrf_field(&session))
                    input type="hidden" name="product_id" value=(product.id);
                    div.field {
                        label for="quantity" { "Quantity" }
                        input #quantity type="number" name="quantity" value="1" min="1"
                            max=(available.map_or(99, |a| a.clamp(1, 99))) required inputmode="numeric";
                    }
                    button type="submit" { "Add to cart" }
                }
            }
        }
    };
    Ok(layout::page(&session, &chrome, &product.title, body))
}

/// In stock, only N left, out of stock (or nothing when unknown).
fn stock_state(available: Option<i64>) -> Markup {
    html! {
        @match available {
            Some(n) if n <= 0 => p.stock.out { "Out of stock" },
            Some(n) if n <= FEW_LEFT => p.stock.few { "Only " (n) " left" },
            Some(_) => p.stock.in { "In stock" },
            None => p.stock { "Stock unknown right now" },
        }
    }
}

/// Links to every category, with their counts.
fn category_links(categories: &[Category]) -> Markup {
    html! {
        ul.categories {
            @for c in categories {
                li {
                    a href={ "/products?category=" (c.slug) } {
                        (c.name) " " span.muted { "(" (c.product_count) ")" }
                    }
                }
            }
        }
    }
}

/// Products as cards.
pub fn product_grid(products: &[Product]) -> Markup {
    html! {
        ul.grid {
            @for p in products {
                li.card {
                    h3 { a href={ "/products/" (p.id) } { (p.title) } }
                    p.price { (money(p.price.amount, &p.price.currency)) }
                    @if !p.category.is_empty() {
                        p.muted { (p.category) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_told_in_words() {
        assert!(stock_state(Some(0)).into_string().contains("Out of stock"));
        assert!(stock_state(Some(3)).into_string().contains("Only 3 left"));
        assert!(stock_state(Some(50)).into_string().contains("In stock"));
    }
}
