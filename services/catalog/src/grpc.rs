//! `bazaar.catalog.v1.Catalog`: product lookups for orders, deleted
//! products included (as `on_sale = false`).

use bazaar_proto::catalog::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::http::AppState;
use crate::store;

/// The most ids one call may ask for.
const MAX_IDS: usize = 100;

/// The gRPC service, ready for `Routes::grpc`.
pub(crate) fn server(state: AppState) -> pb::catalog_server::CatalogServer<Lookups> {
    pb::catalog_server::CatalogServer::new(Lookups { state })
}

/// Answers `GetProducts` from the service's database.
pub(crate) struct Lookups {
    state: AppState,
}

#[tonic::async_trait]
impl pb::catalog_server::Catalog for Lookups {
    #[tracing::instrument(skip_all, fields(ids = request.get_ref().ids.len()))]
    async fn get_products(
        &self,
        request: Request<pb::GetProductsRequest>,
    ) -> Result<Response<pb::GetProductsResponse>, Status> {
        let raw = request.into_inner().ids;
        if raw.len() > MAX_IDS {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_IDS} ids per call"
            )));
        }
        let mut ids: Vec<Uuid> = Vec::with_capacity(raw.len());
        for id in &raw {
            let id = Uuid::parse_str(id)
                .map_err(|_| Status::invalid_argument(format!("{id:?} is not a product id")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let found = store::get_many(self.state.db.pool(), &ids)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read products");
                Status::unavailable("the catalog cannot read its database right now")
            })?;
        let mut answer = pb::GetProductsResponse::default();
        for id in ids {
            match found.iter().find(|p| p.id == id) {
                Some(p) => answer.products.push(pb::Product {
                    id: p.id.to_string(),
                    title: p.title.clone(),
                    seller_id: p.seller_id.to_string(),
                    price: Some(pb::Money {
                        amount: p.price_amount,
                        currency: p.currency.clone(),
                    }),
                    on_sale: !p.deleted,
                }),
                None => answer.missing.push(id.to_string()),
            }
        }
        Ok(Response::new(answer))
    }
}
