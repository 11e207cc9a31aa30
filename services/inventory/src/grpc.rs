//! `bazaar.inventory.v1.Inventory`: the ledger over gRPC. Failures are
//! statuses whose codes say what to do: INVALID_ARGUMENT (fix the call),
//! NOT_FOUND / FAILED_PRECONDITION / ALREADY_EXISTS (the answer will not
//! change by retrying), INTERNAL / UNAVAILABLE (retry).

use bazaar_proto::inventory::v1 as pb;
use prost::Message as _;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::Lines;
use crate::reservations::{Ledger, LedgerError, Shortage};
use crate::store::{Reservation, State};

/// The gRPC service.
pub(crate) struct Grpc {
    pub(crate) ledger: Ledger,
}

impl From<Reservation> for pb::Reservation {
    fn from(r: Reservation) -> Self {
        let state = match r.state {
            State::Reserved => pb::ReservationState::Reserved,
            State::Committed => pb::ReservationState::Committed,
            State::Released => pb::ReservationState::Released,
            State::Expired => pb::ReservationState::Expired,
        };
        Self {
            order_id: r.order_id.to_string(),
            state: state.into(),
            items: r
                .lines
                .iter()
                .map(|(product, quantity)| pb::Item {
                    product_id: product.to_string(),
                    quantity: quantity.get(),
                })
                .collect(),
            expires_at_ms: r.expires_at,
        }
    }
}

fn failure(
    code: tonic::Code,
    reason: pb::reserve_failure::Reason,
    products: &[Shortage],
) -> Status {
    let ids: Vec<String> = products.iter().map(|s| s.product_id.to_string()).collect();
    let message = match reason {
        pb::reserve_failure::Reason::UnknownProduct => {
            format!("unknown product: {}", ids.join(", "))
        }
        _ => format!("out of stock: {}", ids.join(", ")),
    };
    let details = pb::ReserveFailure {
        reason: reason.into(),
        products: products
            .iter()
            .map(|s| pb::Shortage {
                product_id: s.product_id.to_string(),
                requested: s.requested,
                available: s.available,
            })
            .collect(),
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

impl From<LedgerError> for Status {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::OutOfStock(products) => failure(
                tonic::Code::FailedPrecondition,
                pb::reserve_failure::Reason::OutOfStock,
                &products,
            ),
            LedgerError::UnknownProducts(products) => failure(
                tonic::Code::NotFound,
                pb::reserve_failure::Reason::UnknownProduct,
                &products,
            ),
            LedgerError::OtherItems => Status::already_exists(
                "this order id has a reservation of other items; reserve under a new order id",
            ),
            LedgerError::NotFound => Status::not_found("no reservation for this order id"),
            LedgerError::Settled(state) => Status::failed_precondition(format!(
                "the order's reservation is {}",
                state.as_str()
            )),
            e @ (LedgerError::Db(_) | LedgerError::Events(_)) => {
                // Logged once here; the caller learns nothing inside.
                tracing::error!(error = %e, "inventory call failed with an internal error");
                Status::internal("inventory failed; it has been logged, retry later")
            }
        }
    }
}

fn order_id(raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| Status::invalid_argument("order_id is not a UUID"))
}

#[tonic::async_trait]
impl pb::inventory_server::Inventory for Grpc {
    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let request = request.into_inner();
        let order = order_id(&request.order_id)?;
        let lines = Lines::parse(
            request
                .items
                .iter()
                .map(|i| (i.product_id.as_str(), i.quantity)),
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reservation = self.ledger.reserve(order, lines).await?;
        Ok(Response::new(reservation.into()))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let order = order_id(&request.get_ref().order_id)?;
        Ok(Response::new(self.ledger.commit(order).await?.into()))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let order = order_id(&request.get_ref().order_id)?;
        Ok(Response::new(self.ledger.release(order).await?.into()))
    }
}
