//! `bazaar.payments.v1.Payments`: the ledger over gRPC, for orders. The
//! requests are checked here, turned into domain values, and never logged:
//! spans carry the order id only (the generated `Card` message's `Debug`
//! would print the number).

use bazaar_platform::problem::FieldError;
use bazaar_proto::payments::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{Amount, Card, Currency, DeclineReason, State};
use crate::error::Error;
use crate::ledger::{Answer, Authorization, Ledger, Step};
use crate::metrics::Outcome;
use crate::store::Payment;

/// The gRPC service.
pub(crate) struct Grpc {
    pub(crate) ledger: Ledger,
}

impl From<Payment> for pb::Payment {
    fn from(p: Payment) -> Self {
        let state = match p.state {
            State::Authorized => pb::PaymentState::Authorized,
            State::Captured => pb::PaymentState::Captured,
            State::Voided => pb::PaymentState::Voided,
            State::Refunded => pb::PaymentState::Refunded,
            State::Declined => pb::PaymentState::Declined,
        };
        let reason = match p.decline_reason {
            None => pb::DeclineReason::Unspecified,
            Some(DeclineReason::CardDeclined) => pb::DeclineReason::CardDeclined,
            Some(DeclineReason::InsufficientFunds) => pb::DeclineReason::InsufficientFunds,
            Some(DeclineReason::InvalidCard) => pb::DeclineReason::InvalidCard,
        };
        Self {
            id: p.id.to_string(),
            order_id: p.order_id.to_string(),
            state: state.into(),
            amount: p.amount.get(),
            currency: p.currency.as_str().to_owned(),
            decline_reason: reason.into(),
            card_last4: p.card_last4,
        }
    }
}

/// Collects the malformed fields of one request.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    /// `value`, or `None` after noting that `field` `message`.
    fn take<T>(&mut self, value: Option<T>, field: &str, message: &str) -> Option<T> {
        if value.is_none() {
            self.0.push(FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
            });
        }
        value
    }
}

/// The request as domain values, or every malformed field.
fn authorization(request: &pb::AuthorizeRequest) -> Result<Authorization, Error> {
    let mut fields = Fields::default();
    let order_id = fields.take(
        Uuid::parse_str(&request.order_id).ok(),
        "order_id",
        "must be a UUID",
    );
    let user_id = fields.take(
        Uuid::parse_str(&request.user_id).ok(),
        "user_id",
        "must be a UUID",
    );
    let amount = fields.take(
        Amount::new(request.amount),
        "amount",
        "must be 1 or more (minor units)",
    );
    let currency = fields.take(
        Currency::parse(&request.currency),
        "currency",
        "must be an ISO 4217 code in upper case, like EUR",
    );
    let card = match &request.card {
        None => fields.take(None, "card", "is required"),
        Some(card) => match Card::from_wire(card) {
            Ok(card) => Some(card),
            Err(malformed) => {
                for e in malformed {
                    fields.take(None::<()>, e.field(), e.message());
                }
                None
            }
        },
    };
    match (order_id, user_id, amount, currency, card) {
        (Some(order_id), Some(user_id), Some(amount), Some(currency), Some(card)) => {
            Ok(Authorization {
                order_id,
                user_id,
                amount,
                currency,
                card,
            })
        }
        _ => Err(Error::Invalid(fields.0)),
    }
}

fn order_id(request: &pb::OrderRef) -> Result<Uuid, Error> {
    Uuid::parse_str(&request.order_id).map_err(|_| Error::invalid("order_id", "must be a UUID"))
}

impl Grpc {
    /// Counts what `op` came to and answers it.
    fn answer(
        &self,
        op: &'static str,
        result: Result<Answer, Error>,
    ) -> Result<Response<pb::Payment>, Status> {
        match result {
            Ok(answer) => {
                let outcome = if answer.repeated {
                    Outcome::Repeated
                } else if answer.payment.state == State::Declined {
                    Outcome::Declined
                } else {
                    Outcome::Ok
                };
                self.ledger.metrics.operation(op, outcome);
                Ok(Response::new(answer.payment.into()))
            }
            Err(e) => {
                self.ledger.metrics.operation(op, e.outcome());
                Err(e.into())
            }
        }
    }

    async fn step(
        &self,
        request: &pb::OrderRef,
        step: Step,
    ) -> Result<Response<pb::Payment>, Status> {
        let result = match order_id(request) {
            Ok(order) => self.ledger.step(order, step).await,
            Err(e) => Err(e),
        };
        self.answer(step.name(), result)
    }
}

#[tonic::async_trait]
impl pb::payments_server::Payments for Grpc {
    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let result = match authorization(request.get_ref()) {
            Ok(ask) => self.ledger.authorize(ask).await,
            Err(e) => Err(e),
        };
        self.answer("authorize", result)
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn capture(
        &self,
        request: Request<pb::OrderRef>,
    ) -> Result<Response<pb::Payment>, Status> {
        self.step(request.get_ref(), Step::Capture).await
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn void(&self, request: Request<pb::OrderRef>) -> Result<Response<pb::Payment>, Status> {
        self.step(request.get_ref(), Step::Void).await
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn refund(
        &self,
        request: Request<pb::OrderRef>,
    ) -> Result<Response<pb::Payment>, Status> {
        self.step(request.get_ref(), Step::Refund).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::AuthorizeRequest {
        pb::AuthorizeRequest {
            order_id: Uuid::now_v7().to_string(),
            user_id: Uuid::now_v7().to_string(),
            amount: 2500,
            currency: "EUR".into(),
            card: Some(pb::Card {
                number: "4242424242424242".into(),
                exp_month: 12,
                exp_year: 2030,
                cvc: "123".into(),
            }),
        }
    }

    fn fields(request: &pb::AuthorizeRequest) -> Vec<String> {
        match authorization(request) {
            Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("{other}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn a_good_request_is_an_authorization() {
        let ask = authorization(&request()).unwrap();
        assert_eq!(ask.amount.get(), 2500);
        assert_eq!(ask.card.number.last4(), "4242");
        assert!(!format!("{ask:?}").contains("4242424242424242"));
    }

    #[test]
    fn every_malformed_field_is_named() {
        let mut r = request();
        r.order_id = "nope".into();
        r.user_id = String::new();
        r.amount = 0;
        r.currency = "eur".into();
        r.card = Some(pb::Card {
            number: "4242x".into(),
            exp_month: 13,
            exp_year: 2030,
            cvc: "12".into(),
        });
        assert_eq!(
            fields(&r),
            [
                "order_id",
                "user_id",
                "amount",
                "currency",
                "card.number",
                "card.exp_month",
                "card.cvc"
            ]
        );
        r.card = None;
        assert!(fields(&r).contains(&"card".to_owned()));
    }
}
