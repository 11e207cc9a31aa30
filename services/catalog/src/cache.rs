//! A small in-process cache of the hottest reads: a product by id and the
//! category list with counts.
//!
//! Entries live for a short TTL (`BAZAAR_CATALOG_CACHE_TTL`, 1 s by
//! default; 0 turns the cache off). This instance's own writes drop what
//! they change at once, so a seller sees their edit immediately from the
//! instance that made it; other replicas cannot see those writes, so they
//! may answer the old state for at most one TTL. That bound is the whole
//! consistency promise, which is why the TTL is short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::{CategoryCount, Product};

/// At most this many products are cached; past it the map starts over
/// (entries are short-lived anyway, so a full sweep is simpler than LRU).
const MAX_PRODUCTS: usize = 10_000;

/// The cache; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Cache {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    products: HashMap<Uuid, (Instant, Product)>,
    categories: Option<(Instant, Vec<CategoryCount>)>,
}

impl Cache {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every
        // operation is a single insert or remove.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// A live product, if cached and fresh.
    pub fn product(&self, id: Uuid) -> Option<Product> {
        let inner = self.lock();
        let (at, product) = inner.products.get(&id)?;
        self.fresh(*at).then(|| product.clone())
    }

    /// Remembers a live product.
    pub fn put_product(&self, product: &Product) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.products.len() >= MAX_PRODUCTS {
            inner.products.clear();
        }
        inner
            .products
            .insert(product.id, (Instant::now(), product.clone()));
    }

    /// The category list, if cached and fresh.
    pub fn categories(&self) -> Option<Vec<CategoryCount>> {
        let inner = self.lock();
        let (at, list) = inner.categories.as_ref()?;
        self.fresh(*at).then(|| list.clone())
    }

    /// Remembers the category list.
    pub fn put_categories(&self, list: &[CategoryCount]) {
        if self.ttl.is_zero() {
            return;
        }
        self.lock().categories = Some((Instant::now(), list.to_vec()));
    }

    /// Forgets what a write to product `id` changed: the product and the
    /// counts.
    pub fn invalidate(&self, id: Uuid) {
        let mut inner = self.lock();
        inner.products.remove(&id);
        inner.categories = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: Uuid) -> Product {
        Product {
            id,
            seller_id: Uuid::now_v7(),
            title: "Kettle".into(),
            description: String::new(),
            price_amount: 100,
            currency: "EUR".into(),
            category: "home-kitchen".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            deleted: false,
        }
    }

    #[test]
    fn writes_invalidate_and_entries_expire() {
        let cache = Cache::new(Duration::from_millis(50));
        let id = Uuid::now_v7();
        cache.put_product(&product(id));
        cache.put_categories(&[]);
        assert!(cache.product(id).is_some());
        assert!(cache.categories().is_some());
        cache.invalidate(id);
        assert!(cache.product(id).is_none());
        assert!(cache.categories().is_none());
        cache.put_product(&product(id));
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.product(id).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = Cache::new(Duration::ZERO);
        let id = Uuid::now_v7();
        cache.put_product(&product(id));
        assert!(cache.product(id).is_none());
    }
}
