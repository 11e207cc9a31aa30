//! `bazaar.cart.v1.Cart`: carts for orders over gRPC. Failures are
//! statuses whose codes say what to do: INVALID_ARGUMENT (fix the call),
//! UNAVAILABLE (the store failed; both calls are idempotent, retry).

use bazaar_proto::cart::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::carts::Carts;
use crate::domain::{Line, Taken};
use crate::store::StoreError;

/// The gRPC service.
pub(crate) struct Grpc {
    pub(crate) carts: Carts,
}

fn user_id(raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| Status::invalid_argument("user_id is not a UUID"))
}

fn unavailable(error: &StoreError) -> Status {
    // Logged once here; the caller learns nothing inside.
    tracing::error!(error = %error, "cart call failed: the store did not answer");
    Status::unavailable("the cart store failed; it has been logged, retry later")
}

fn item(line: Line) -> pb::Item {
    pb::Item {
        product_id: line.product_id.to_string(),
        quantity: line.quantity.get(),
    }
}

#[tonic::async_trait]
impl pb::cart_server::Cart for Grpc {
    #[tracing::instrument(skip_all, fields(user_id = %request.get_ref().user_id))]
    async fn get_cart(
        &self,
        request: Request<pb::GetCartRequest>,
    ) -> Result<Response<pb::CartContents>, Status> {
        let user = user_id(&request.get_ref().user_id)?;
        let lines = self.carts.lines(user).await.map_err(|e| unavailable(&e))?;
        Ok(Response::new(pb::CartContents {
            user_id: user.to_string(),
            items: lines.into_iter().map(item).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(user_id = %request.get_ref().user_id))]
    async fn clear_cart(
        &self,
        request: Request<pb::ClearCartRequest>,
    ) -> Result<Response<pb::ClearCartResponse>, Status> {
        let request = request.into_inner();
        let user = user_id(&request.user_id)?;
        let done = if request.only_items.is_empty() {
            self.carts.clear(user).await
        } else {
            let taken = Taken::parse(
                request
                    .only_items
                    .iter()
                    .map(|i| (i.product_id.as_str(), i.quantity)),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
            self.carts.remove_taken(user, &taken).await
        };
        done.map_err(|e| unavailable(&e))?;
        Ok(Response::new(pb::ClearCartResponse {}))
    }
}
