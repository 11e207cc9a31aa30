//! The SQL. One query string serves both engines where they agree; the
//! full-text search is the one place they differ (SQLite FTS5 with bm25,
//! PostgreSQL `tsvector` with `ts_rank`). Listings only ever read live
//! (not deleted) products; lookups by id for orders read deleted ones too.

use bazaar_platform::db::DbKind;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row as _, Transaction};
use uuid::Uuid;

use crate::domain::{Money, SearchTerms};

/// A stored product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub title: String,
    pub description: String,
    pub price_amount: i64,
    pub currency: String,
    pub category: String,
    pub created_at: String,
    pub updated_at: String,
    /// Taken off sale by its seller (the row stays, for orders).
    pub deleted: bool,
}

/// A category and how many live products it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryCount {
    pub slug: String,
    pub name: String,
    pub product_count: i64,
}

/// A row that does not read back as a product.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored id is not a UUID.
    #[error("stored id {0:?} is not a UUID")]
    BadId(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "p.id, p.seller_id, p.title, p.description, p.price_amount, p.currency, \
                       p.category, p.created_at, p.updated_at, p.deleted_at";

fn uuid(raw: String) -> Result<Uuid, StoreError> {
    Uuid::parse_str(&raw).map_err(|_| StoreError::BadId(raw))
}

fn product(row: &AnyRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: uuid(row.try_get("id")?)?,
        seller_id: uuid(row.try_get("seller_id")?)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        price_amount: row.try_get("price_amount")?,
        currency: row.try_get("currency")?,
        category: row.try_get("category")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted: row.try_get::<Option<String>, _>("deleted_at")?.is_some(),
    })
}

/// What a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub terms: Option<SearchTerms>,
    pub category: Option<String>,
    pub seller_id: Option<Uuid>,
    /// 1-based.
    pub page: i64,
    pub limit: i64,
}

/// A bound parameter of a query built piece by piece.
enum Arg {
    Text(String),
    Int(i64),
}

/// One page of live products matching `filter` (best match first when
/// searching, else newest first), and how many match in all.
pub async fn list(
    pool: &AnyPool,
    kind: DbKind,
    filter: &Filter,
) -> Result<(Vec<Product>, i64), StoreError> {
    let mut args: Vec<Arg> = Vec::new();
    let mut from = String::from("products p");
    let mut conditions = vec!["p.deleted_at IS NULL".to_owned()];
    let mut order = String::from("p.id DESC");
    if let Some(terms) = &filter.terms {
        match kind {
            DbKind::Sqlite => {
                args.push(Arg::Text(terms.fts5()));
                from.push_str(" JOIN products_fts ON products_fts.rowid = p.seq");
                conditions.push(format!("products_fts MATCH ${}", args.len()));
                // Title matches weigh ten times description matches.
                order = "bm25(products_fts, 10.0, 1.0), p.id DESC".to_owned();
            }
            DbKind::Postgres => {
                args.push(Arg::Text(terms.plain()));
                let n = args.len();
                conditions.push(format!("p.search @@ plainto_tsquery('english', ${n})"));
                order =
                    format!("ts_rank(p.search, plainto_tsquery('english', ${n})) DESC, p.id DESC");
            }
        }
    }
    if let Some(category) = &filter.category {
        args.push(Arg::Text(category.clone()));
        conditions.push(format!("p.category = ${}", args.len()));
    }
    if let Some(seller) = filter.seller_id {
        args.push(Arg::Text(seller.to_string()));
        conditions.push(format!("p.seller_id = ${}", args.len()));
    }
    let filters = format!("FROM {from} WHERE {}", conditions.join(" AND "));

    let count_sql = format!("SELECT COUNT(*) AS n {filters}");
    let mut count = sqlx::query(&count_sql);
    for arg in &args {
        count = match arg {
            Arg::Text(s) => count.bind(s.clone()),
            Arg::Int(i) => count.bind(*i),
        };
    }
    let total: i64 = count.fetch_one(pool).await?.try_get("n")?;

    let offset = (filter.page - 1).saturating_mul(filter.limit);
    args.push(Arg::Int(filter.limit));
    args.push(Arg::Int(offset));
    let page_sql = format!(
        "SELECT {COLUMNS} {filters} ORDER BY {order} LIMIT ${} OFFSET ${}",
        args.len() - 1,
        args.len()
    );
    let mut page = sqlx::query(&page_sql);
    for arg in args {
        page = match arg {
            Arg::Text(s) => page.bind(s),
            Arg::Int(i) => page.bind(i),
        };
    }
    let rows = page.fetch_all(pool).await?;
    let items = rows.iter().map(product).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// A live product.
pub async fn get(pool: &AnyPool, id: Uuid) -> Result<Option<Product>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM products p WHERE p.id = $1 AND p.deleted_at IS NULL");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(product).transpose()
}

/// A live product, locked for a change in `tx` (PostgreSQL: `FOR UPDATE`;
/// on SQLite `Db::begin_write` holds the write lock already).
pub async fn get_for_update(
    tx: &mut Transaction<'_, Any>,
    kind: DbKind,
    id: Uuid,
) -> Result<Option<Product>, StoreError> {
    let lock = match kind {
        DbKind::Sqlite => "",
        DbKind::Postgres => " FOR UPDATE",
    };
    let sql =
        format!("SELECT {COLUMNS} FROM products p WHERE p.id = $1 AND p.deleted_at IS NULL{lock}");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(product).transpose()
}

/// Products with these ids, deleted ones included (orders needs to know
/// they are off sale).
pub async fn get_many(pool: &AnyPool, ids: &[Uuid]) -> Result<Vec<Product>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM products p WHERE p.id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(product).collect()
}

/// Whether `slug` names a category.
pub async fn category_exists(pool: &AnyPool, slug: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 AS one FROM categories WHERE slug = $1")
        .bind(slug.to_owned())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Every category in display order, with its number of live products.
pub async fn categories(pool: &AnyPool) -> Result<Vec<CategoryCount>, StoreError> {
    let rows = sqlx::query(
        // Counting first, over the covering `products_live_category`
        // index, then joining eight rows: several times faster than
        // grouping the joined rows.
        "SELECT c.slug, c.name, COALESCE(n.product_count, 0) AS product_count \
         FROM categories c \
         LEFT JOIN (SELECT category, COUNT(*) AS product_count FROM products \
                    WHERE deleted_at IS NULL GROUP BY category) n ON n.category = c.slug \
         ORDER BY c.position",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CategoryCount {
                slug: row.try_get("slug")?,
                name: row.try_get("name")?,
                product_count: row.try_get("product_count")?,
            })
        })
        .collect()
}

/// Stores a new product.
pub async fn insert(tx: &mut Transaction<'_, Any>, p: &Product) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO products (id, seller_id, title, description, price_amount, currency, \
         category, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(p.id.to_string())
    .bind(p.seller_id.to_string())
    .bind(p.title.clone())
    .bind(p.description.clone())
    .bind(p.price_amount)
    .bind(p.currency.clone())
    .bind(p.category.clone())
    .bind(p.created_at.clone())
    .bind(p.updated_at.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes a product's editable fields and `updated_at`.
pub async fn update(tx: &mut Transaction<'_, Any>, p: &Product) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE products SET title = $2, description = $3, price_amount = $4, currency = $5, \
         category = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(p.id.to_string())
    .bind(p.title.clone())
    .bind(p.description.clone())
    .bind(p.price_amount)
    .bind(p.currency.clone())
    .bind(p.category.clone())
    .bind(p.updated_at.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes a live product off sale; `false` when it was not live.
pub async fn soft_delete(
    tx: &mut Transaction<'_, Any>,
    id: Uuid,
    now: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE products SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.to_string())
    .bind(now.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Product {
    /// Sets the price.
    pub fn set_price(&mut self, money: Money) {
        self.price_amount = money.amount;
        self.currency = money.currency.code().to_owned();
    }
}
