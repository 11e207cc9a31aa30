//! The ops console at `/ops`, for role `admin`: the fleet, its instances'
//! health and metrics, broker lag and recent orders' sagas.

use axum::Router;

use crate::App;
use crate::backend::Backend;

/// The console's state.
#[derive(Clone, Debug)]
pub struct Console {
    backend: Backend,
}

impl Console {
    /// A console over the services `backend` knows.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

/// The console's routes.
pub fn routes() -> Router<App> {
    Router::new()
}
