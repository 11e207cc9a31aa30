//! The services orders calls, over gRPC through the platform's resilient
//! [`GrpcClient`], each answer turned into what the saga decides on.
//!
//! A definite answer of the upstream (out of stock, declined, nothing to
//! undo) comes back as `Ok` of an enum; only failures whose outcome is
//! unknown or that a retry may change are `Err(CallError)`. The saga
//! clients do not retry inside a call (`max_retries: 0`): the saga retries
//! steps itself, with its own bounds, and a step's attempts are what its
//! timeline shows. Every call is idempotent by order id.

use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bazaar_platform::client::{
    CallError, Endpoints, GrpcClient, Idempotency, Policy, UpstreamStatus,
};
use bazaar_platform::server::Context;
use bazaar_proto::cart::v1 as cart;
use bazaar_proto::cart::v1::cart_client::CartClient;
use bazaar_proto::catalog::v1 as catalog;
use bazaar_proto::catalog::v1::catalog_client::CatalogClient;
use bazaar_proto::inventory::v1 as inventory;
use bazaar_proto::inventory::v1::inventory_client::InventoryClient;
use bazaar_proto::payments::v1 as payments;
use bazaar_proto::payments::v1::payments_client::PaymentsClient;
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::domain::{CancelCode, Card, Lines, Money};
use crate::saga::Shortage;
use crate::settings::Settings;

/// Clients of the four services orders calls.
#[derive(Debug, Clone)]
pub(crate) struct Upstreams {
    catalog: GrpcClient,
    inventory: GrpcClient,
    payments: GrpcClient,
    cart: GrpcClient,
}

/// Inventory's answer to Reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// Every line is held.
    Held,
    /// Some products have fewer units than asked.
    OutOfStock(Vec<Shortage>),
    /// Some products have no stock record (unknown or deleted).
    Unknown(Vec<Uuid>),
    /// The order's reservation was released or expired already.
    Settled,
}

/// Inventory's answer to Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Taken from stock.
    Committed,
    /// The reservation expired, was released or never existed.
    Gone,
}

/// Inventory's answer to Release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Given back (now or before, or expired).
    Released,
    /// There was no reservation.
    Nothing,
    /// Committed: nothing can be given back.
    Committed,
}

/// Payments' answer to Authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// The amount is held (or was taken already).
    Approved,
    /// The processor said no.
    Declined(CancelCode),
}

/// An Authorize without an answer.
#[derive(Debug)]
pub(crate) struct AuthorizeFailed {
    /// What went wrong.
    pub(crate) error: CallError,
    /// Whether the request may have reached payments and held money: false
    /// when it never left (connection refused, breaker open) or payments
    /// answered ABORTED (its processor failed), which by its contract records
    /// nothing.
    pub(crate) may_have_held: bool,
}

/// Payments' answer to Void.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Void {
    /// Let go (now or before), or it was declined: nothing is held.
    Voided,
    /// No payment for the order.
    Nothing,
    /// Captured: it needs a refund instead.
    Captured,
}

impl Upstreams {
    /// Clients of `catalog`, `inventory`, `payments` and `cart` as this
    /// process was told (`BAZAAR_UPSTREAM_*`).
    ///
    /// # Errors
    /// When one of them has no address.
    pub(crate) fn new(ctx: &Context, settings: &Settings) -> anyhow::Result<Self> {
        let endpoints = |name: &str| -> anyhow::Result<Endpoints> {
            let urls = ctx.upstream(name).to_vec();
            anyhow::ensure!(
                !urls.is_empty(),
                "orders calls {name}: set BAZAAR_UPSTREAM_{}",
                name.to_ascii_uppercase()
            );
            Ok(Endpoints::new(name, urls))
        };
        // Saga calls: one attempt each, the saga retries.
        let saga = Policy {
            deadline: settings.call_timeout,
            max_retries: 0,
            ..Policy::default()
        };
        // Cart calls: answered while a client waits (GetCart) or after the
        // fact (ClearCart); a couple of quick retries inside the call.
        let cart = Policy {
            deadline: Duration::from_secs(3),
            ..Policy::default()
        };
        Ok(Self {
            catalog: GrpcClient::new(endpoints("catalog")?, saga.clone()),
            inventory: GrpcClient::new(endpoints("inventory")?, saga.clone()),
            payments: GrpcClient::new(endpoints("payments")?, saga),
            cart: GrpcClient::new(endpoints("cart")?, cart),
        })
    }

    /// Catalog's products for `lines`.
    pub(crate) async fn products(
        &self,
        lines: &Lines,
    ) -> Result<catalog::GetProductsResponse, CallError> {
        let ids = lines.iter().map(|(p, _)| p.to_string()).collect();
        send(
            &self.catalog,
            &catalog::GetProductsRequest { ids },
            |channel, request| async move {
                CatalogClient::new(channel).get_products(request).await
            },
        )
        .await
    }

    /// Holds `lines` for `order`.
    pub(crate) async fn reserve(&self, order: Uuid, lines: &Lines) -> Result<Reserve, CallError> {
        let items = lines
            .iter()
            .map(|(p, q)| inventory::Item {
                product_id: p.to_string(),
                quantity: q.get(),
            })
            .collect();
        let request = inventory::ReserveRequest {
            order_id: order.to_string(),
            items,
        };
        let answer = ask(
            &self.inventory,
            &request,
            REFUSED,
            |channel, request| async move { InventoryClient::new(channel).reserve(request).await },
        )
        .await?;
        let Err(status) = answer else {
            return Ok(Reserve::Held);
        };
        let failure = inventory::ReserveFailure::decode(status.details()).ok();
        let shortages = |f: &inventory::ReserveFailure| -> Vec<Shortage> {
            f.products
                .iter()
                .filter_map(|s| {
                    Some(Shortage {
                        product_id: Uuid::parse_str(&s.product_id).ok()?,
                        requested: s.requested,
                        available: s.available,
                    })
                })
                .collect()
        };
        use inventory::reserve_failure::Reason;
        Ok(match failure {
            Some(f) if f.reason() == Reason::OutOfStock => Reserve::OutOfStock(shortages(&f)),
            Some(f) if f.reason() == Reason::UnknownProduct => {
                Reserve::Unknown(shortages(&f).into_iter().map(|s| s.product_id).collect())
            }
            _ if status.code() == Code::NotFound => Reserve::Unknown(Vec::new()),
            _ => Reserve::Settled,
        })
    }

    /// Takes `order`'s reservation out of stock.
    pub(crate) async fn commit(&self, order: Uuid) -> Result<Commit, CallError> {
        let request = inventory::CommitRequest {
            order_id: order.to_string(),
        };
        let answer = ask(
            &self.inventory,
            &request,
            REFUSED,
            |channel, request| async move { InventoryClient::new(channel).commit(request).await },
        )
        .await?;
        Ok(match answer {
            Ok(_) => Commit::Committed,
            Err(_) => Commit::Gone,
        })
    }

    /// Gives `order`'s reservation back.
    pub(crate) async fn release(&self, order: Uuid) -> Result<Release, CallError> {
        let request = inventory::ReleaseRequest {
            order_id: order.to_string(),
        };
        let answer = ask(
            &self.inventory,
            &request,
            REFUSED,
            |channel, request| async move { InventoryClient::new(channel).release(request).await },
        )
        .await?;
        Ok(match answer {
            Ok(_) => Release::Released,
            Err(status) if status.code() == Code::NotFound => Release::Nothing,
            Err(_) => Release::Committed,
        })
    }

    /// Holds `amount` on `card` for `order` of `user`. INVALID_ARGUMENT
    /// (a card payments will not even try) is an `invalid_card` decline.
    pub(crate) async fn authorize(
        &self,
        order: Uuid,
        user: Uuid,
        amount: &Money,
        card: &Card,
    ) -> Result<Authorization, AuthorizeFailed> {
        let message = payments::AuthorizeRequest {
            order_id: order.to_string(),
            user_id: user.to_string(),
            amount: amount.amount,
            currency: amount.currency.clone(),
            card: Some(card.to_wire()),
        };
        let reached = AtomicBool::new(false);
        let reply = self
            .payments
            .call(Idempotency::Idempotent, |channel, left| {
                let request = GrpcClient::request(message.clone(), left);
                let reached = &reached;
                async move {
                    let reply = PaymentsClient::new(channel).authorize(request).await;
                    if let Err(status) = &reply
                        && may_have_held(status)
                    {
                        reached.store(true, Ordering::Relaxed);
                    }
                    answer(reply, &[Code::InvalidArgument, Code::Aborted])
                }
            })
            .await;
        let failed = |error: CallError| AuthorizeFailed {
            // Cut off mid-call: payments may have acted on it.
            may_have_held: reached.load(Ordering::Relaxed)
                || matches!(error, CallError::Timeout { .. }),
            error,
        };
        let payment = match reply.map_err(failed)? {
            Ok(payment) => payment,
            // The processor failed and payments recorded nothing: a definite
            // answer (no retry by the stack, no mark against payments'
            // breaker); the saga decides whether to ask again.
            Err(status) if status.code() == Code::Aborted => {
                return Err(AuthorizeFailed {
                    error: CallError::Status {
                        service: "payments".into(),
                        status: UpstreamStatus::Grpc(Code::Aborted),
                        message: status.message().to_owned(),
                    },
                    // An earlier attempt of this call may still have.
                    may_have_held: reached.load(Ordering::Relaxed),
                });
            }
            Err(_) => return Ok(Authorization::Declined(CancelCode::InvalidCard)),
        };
        use payments::{DeclineReason, PaymentState};
        Ok(match payment.state() {
            PaymentState::Authorized | PaymentState::Captured => Authorization::Approved,
            PaymentState::Declined => Authorization::Declined(match payment.decline_reason() {
                DeclineReason::InsufficientFunds => CancelCode::InsufficientFunds,
                DeclineReason::InvalidCard => CancelCode::InvalidCard,
                DeclineReason::CardDeclined | DeclineReason::Unspecified => {
                    CancelCode::CardDeclined
                }
            }),
            // Voided or refunded: this order's money cannot be held again.
            other => {
                return Err(AuthorizeFailed {
                    error: CallError::Status {
                        service: "payments".into(),
                        status: UpstreamStatus::Grpc(Code::FailedPrecondition),
                        message: format!("Authorize answered a payment in state {other:?}"),
                    },
                    may_have_held: true,
                });
            }
        })
    }

    /// Takes the held amount of `order`.
    pub(crate) async fn capture(&self, order: Uuid) -> Result<(), CallError> {
        send(
            &self.payments,
            &order_ref(order),
            |channel, request| async move { PaymentsClient::new(channel).capture(request).await },
        )
        .await
        .map(drop)
    }

    /// Lets go of `order`'s authorization.
    pub(crate) async fn void(&self, order: Uuid) -> Result<Void, CallError> {
        let answer = ask(
            &self.payments,
            &order_ref(order),
            REFUSED,
            |channel, request| async move { PaymentsClient::new(channel).void(request).await },
        )
        .await?;
        Ok(match answer {
            Ok(_) => Void::Voided,
            Err(status) if status.code() == Code::NotFound => Void::Nothing,
            Err(_) => Void::Captured,
        })
    }

    /// Gives `order`'s captured amount back.
    pub(crate) async fn refund(&self, order: Uuid) -> Result<(), CallError> {
        send(
            &self.payments,
            &order_ref(order),
            |channel, request| async move { PaymentsClient::new(channel).refund(request).await },
        )
        .await
        .map(drop)
    }

    /// `user`'s cart lines as `(product_id, quantity)`.
    pub(crate) async fn cart(&self, user: Uuid) -> Result<Vec<(String, i64)>, CallError> {
        let request = cart::GetCartRequest {
            user_id: user.to_string(),
        };
        let contents = send(&self.cart, &request, |channel, request| async move {
            CartClient::new(channel).get_cart(request).await
        })
        .await?;
        Ok(contents
            .items
            .into_iter()
            .map(|i| (i.product_id, i.quantity))
            .collect())
    }

    /// Removes `lines` (what an order took) from `user`'s cart.
    pub(crate) async fn clear_cart(&self, user: Uuid, lines: &Lines) -> Result<(), CallError> {
        let only_items = lines
            .iter()
            .map(|(p, q)| cart::Item {
                product_id: p.to_string(),
                quantity: q.get(),
            })
            .collect();
        let request = cart::ClearCartRequest {
            user_id: user.to_string(),
            only_items,
        };
        send(&self.cart, &request, |channel, request| async move {
            CartClient::new(channel).clear_cart(request).await
        })
        .await
        .map(drop)
    }
}

/// Whether a failed Authorize attempt may have held money: payments'
/// ABORTED did not (its processor failed; by contract nothing is recorded),
/// a connection that was never made did not; anything else is unknown.
fn may_have_held(status: &tonic::Status) -> bool {
    if status.code() == Code::Aborted {
        return false;
    }
    // A status with a source was made here from a transport error; one
    // from payments' trailers has none.
    let Some(mut source) = status.source() else {
        return true;
    };
    loop {
        if source.is::<tonic::ConnectError>() {
            return false;
        }
        match source.source() {
            Some(next) => source = next,
            None => return true,
        }
    }
}

/// What inventory and payments answer when an order's reservation or
/// payment is not in a state the call can change: a definite answer.
const REFUSED: &[Code] = &[Code::FailedPrecondition, Code::NotFound];

/// The message naming `order`.
fn order_ref(order: Uuid) -> payments::OrderRef {
    payments::OrderRef {
        order_id: order.to_string(),
    }
}

/// One idempotent unary call: `rpc` with `message` (sent again as it is on
/// each attempt), its reply's message.
async fn send<M, T, Fut>(
    client: &GrpcClient,
    message: &M,
    rpc: impl Fn(Channel, tonic::Request<M>) -> Fut,
) -> Result<T, CallError>
where
    M: Clone,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    client
        .call(Idempotency::Idempotent, |channel, left| {
            let reply = rpc(channel, GrpcClient::request(message.clone(), left));
            async move { reply.await.map(tonic::Response::into_inner) }
        })
        .await
}

/// [`send`], with the statuses in `answers` returned as the upstream's
/// definite answer (see [`answer`]).
async fn ask<M, T, Fut>(
    client: &GrpcClient,
    message: &M,
    answers: &[Code],
    rpc: impl Fn(Channel, tonic::Request<M>) -> Fut,
) -> Result<Result<T, tonic::Status>, CallError>
where
    M: Clone,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    client
        .call(Idempotency::Idempotent, |channel, left| {
            let reply = rpc(channel, GrpcClient::request(message.clone(), left));
            async move { answer(reply.await, answers) }
        })
        .await
}

/// A reply, with the statuses in `answers` turned into a successful call
/// whose value is that status: the upstream's definite answer, which must
/// neither be retried nor count against its breaker.
fn answer<T>(
    reply: Result<tonic::Response<T>, tonic::Status>,
    answers: &[Code],
) -> Result<Result<T, tonic::Status>, tonic::Status> {
    match reply {
        Ok(response) => Ok(Ok(response.into_inner())),
        Err(status) if answers.contains(&status.code()) => Ok(Err(status)),
        Err(status) => Err(status),
    }
}
