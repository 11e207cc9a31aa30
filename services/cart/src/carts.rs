//! What REST and gRPC do to carts: the store's operations, counted.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{Line, Taken};
use crate::metrics::CartMetrics;
use crate::store::{CartStore, Put, StoreError};

/// The carts of every user, as handlers use them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Carts {
    store: Arc<dyn CartStore>,
    metrics: CartMetrics,
}

impl Carts {
    pub(crate) fn new(store: Arc<dyn CartStore>, metrics: CartMetrics) -> Self {
        Self { store, metrics }
    }

    fn counted<T>(&self, op: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.metrics
            .count(op, if result.is_ok() { "ok" } else { "failed" });
        result
    }

    /// `user`'s lines, first added first.
    pub(crate) async fn lines(&self, user: Uuid) -> Result<Vec<Line>, StoreError> {
        self.counted("get", self.store.lines(user).await)
    }

    /// Sets a line of `user`'s cart.
    pub(crate) async fn put(&self, user: Uuid, line: Line) -> Result<Put, StoreError> {
        let result = self.store.put(user, line).await;
        let outcome = match &result {
            Ok(Put::Done(_)) => "ok",
            Ok(Put::Full) => "full",
            Err(_) => "failed",
        };
        self.metrics.count("put", outcome);
        result
    }

    /// Removes a line of `user`'s cart.
    pub(crate) async fn remove(&self, user: Uuid, product: Uuid) -> Result<Vec<Line>, StoreError> {
        self.counted("remove", self.store.remove(user, product).await)
    }

    /// Empties `user`'s cart.
    pub(crate) async fn clear(&self, user: Uuid) -> Result<(), StoreError> {
        self.counted("clear", self.store.clear(user).await)
    }

    /// Removes what an order took from `user`'s cart.
    pub(crate) async fn remove_taken(&self, user: Uuid, taken: &Taken) -> Result<(), StoreError> {
        self.counted("clear_items", self.store.remove_taken(user, taken).await)
    }
}
