//! What can go wrong with an outbound call, and whose fault it was.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::problem::Problem;

/// Which side of the call caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Decided here, without reaching the upstream (breaker open, overloaded, bad request).
    Local,
    /// The upstream failed, answered with an error or did not answer in time.
    Upstream,
}

/// A final error status from the upstream, HTTP or gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStatus {
    /// An HTTP status (only 5xx become errors; 4xx are returned as responses).
    Http(StatusCode),
    /// A non-OK gRPC status code.
    Grpc(tonic::Code),
}

impl fmt::Display for UpstreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(status) => write!(f, "HTTP {}", status.as_u16()),
            Self::Grpc(code) => write!(f, "gRPC {code:?}"),
        }
    }
}

/// Why an outbound call failed. Every variant names the upstream service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The deadline passed before the upstream answered.
    #[error("{service}: no answer within the deadline")]
    Timeout {
        /// The upstream service.
        service: Arc<str>,
    },
    /// Every endpoint's circuit breaker is open, so the call was not attempted.
    #[error("{service}: circuit open on every endpoint")]
    CircuitOpen {
        /// The upstream service.
        service: Arc<str>,
    },
    /// The concurrency limit stayed exhausted until the deadline.
    #[error("{service}: too many calls in flight")]
    Overloaded {
        /// The upstream service.
        service: Arc<str>,
    },
    /// The endpoint list is empty.
    #[error("{service}: no endpoints")]
    NoEndpoints {
        /// The upstream service.
        service: Arc<str>,
    },
    /// The connection could not be made or broke before an answer came.
    #[error("{service}: unreachable: {detail}")]
    Unavailable {
        /// The upstream service.
        service: Arc<str>,
        /// The transport error, for logs.
        detail: String,
    },
    /// The upstream answered with an error status.
    #[error("{service} answered {status}: {message}")]
    Status {
        /// The upstream service.
        service: Arc<str>,
        /// The status it answered with.
        status: UpstreamStatus,
        /// The start of the HTTP body or the gRPC message, for logs.
        message: String,
    },
    /// The request could not be built (bad path, bad endpoint URL).
    #[error("{service}: invalid request: {detail}")]
    InvalidRequest {
        /// The upstream service.
        service: Arc<str>,
        /// What was wrong.
        detail: String,
    },
}

impl CallError {
    /// The upstream service the call was for.
    pub fn service(&self) -> &str {
        match self {
            Self::Timeout { service }
            | Self::CircuitOpen { service }
            | Self::Overloaded { service }
            | Self::NoEndpoints { service }
            | Self::Unavailable { service, .. }
            | Self::Status { service, .. }
            | Self::InvalidRequest { service, .. } => service,
        }
    }

    /// Whether the same call may succeed if made again later. The stack has
    /// already retried what it safely could; this is for the caller's caller
    /// (e.g. a saga step that is re-run, or a 503 with `Retry-After`).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::CircuitOpen { .. }
            | Self::Overloaded { .. }
            | Self::Unavailable { .. } => true,
            Self::NoEndpoints { .. } | Self::InvalidRequest { .. } => false,
            Self::Status {
                status: UpstreamStatus::Http(status),
                ..
            } => matches!(
                *status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Self::Status {
                status: UpstreamStatus::Grpc(code),
                ..
            } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
            ),
        }
    }

    /// Which side caused the failure.
    pub fn side(&self) -> Side {
        match self {
            Self::CircuitOpen { .. }
            | Self::Overloaded { .. }
            | Self::NoEndpoints { .. }
            | Self::InvalidRequest { .. } => Side::Local,
            Self::Timeout { .. } | Self::Unavailable { .. } | Self::Status { .. } => Side::Upstream,
        }
    }

    /// The gRPC code the upstream answered with, if that is what happened;
    /// lets a caller tell e.g. `NotFound` or `FailedPrecondition` apart.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Self::Status {
                status: UpstreamStatus::Grpc(code),
                ..
            } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status the upstream answered with, if that is what happened.
    pub fn http_status(&self) -> Option<StatusCode> {
        match self {
            Self::Status {
                status: UpstreamStatus::Http(status),
                ..
            } => Some(*status),
            _ => None,
        }
    }
}

/// 504 for a timeout, 503 otherwise; the detail names the upstream service but
/// never repeats what it or the transport said.
impl From<CallError> for Problem {
    fn from(error: CallError) -> Self {
        let service = error.service();
        match &error {
            CallError::Timeout { .. } => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("The {service} service did not answer in time."),
            ),
            CallError::Overloaded { .. } => Problem::service_unavailable(format!(
                "The {service} service is handling too many requests; try again shortly."
            )),
            CallError::Status { .. } | CallError::InvalidRequest { .. } if !error.retryable() => {
                Problem::service_unavailable(format!(
                    "The {service} service could not handle the request."
                ))
            }
            _ => Problem::service_unavailable(format!(
                "The {service} service is unavailable; try again shortly."
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Arc<str> {
        Arc::from("inventory")
    }

    #[test]
    fn local_failures_are_local_and_upstream_ones_upstream() {
        let service = svc();
        let local = [
            CallError::CircuitOpen {
                service: service.clone(),
            },
            CallError::Overloaded {
                service: service.clone(),
            },
            CallError::NoEndpoints {
                service: service.clone(),
            },
            CallError::InvalidRequest {
                service: service.clone(),
                detail: "x".into(),
            },
        ];
        for error in &local {
            assert_eq!(error.side(), Side::Local, "{error}");
        }
        let upstream = [
            CallError::Timeout {
                service: service.clone(),
            },
            CallError::Unavailable {
                service: service.clone(),
                detail: "refused".into(),
            },
            CallError::Status {
                service: service.clone(),
                status: UpstreamStatus::Http(StatusCode::INTERNAL_SERVER_ERROR),
                message: String::new(),
            },
        ];
        for error in &upstream {
            assert_eq!(error.side(), Side::Upstream, "{error}");
        }
    }

    #[test]
    fn retryable_follows_the_status() {
        let status = |status| CallError::Status {
            service: svc(),
            status,
            message: String::new(),
        };
        assert!(status(UpstreamStatus::Http(StatusCode::SERVICE_UNAVAILABLE)).retryable());
        assert!(status(UpstreamStatus::Http(StatusCode::GATEWAY_TIMEOUT)).retryable());
        assert!(!status(UpstreamStatus::Http(StatusCode::INTERNAL_SERVER_ERROR)).retryable());
        assert!(status(UpstreamStatus::Grpc(tonic::Code::Unavailable)).retryable());
        assert!(!status(UpstreamStatus::Grpc(tonic::Code::NotFound)).retryable());
        assert!(CallError::Timeout { service: svc() }.retryable());
        assert!(CallError::CircuitOpen { service: svc() }.retryable());
        assert!(!CallError::NoEndpoints { service: svc() }.retryable());
        assert_eq!(
            status(UpstreamStatus::Grpc(tonic::Code::NotFound)).grpc_code(),
            Some(tonic::Code::NotFound)
        );
    }

    #[test]
    fn problems_name_the_service_but_not_the_internals() {
        let timeout = Problem::from(CallError::Timeout { service: svc() });
        assert_eq!(timeout.status, 504);
        assert!(timeout.detail.contains("inventory"), "{}", timeout.detail);

        let down = Problem::from(CallError::Unavailable {
            service: svc(),
            detail: "tcp connect error 10.0.0.7:50051".into(),
        });
        assert_eq!(down.status, 503);
        assert!(down.detail.contains("inventory"));
        assert!(!down.detail.contains("10.0.0.7"), "{}", down.detail);

        let failed = Problem::from(CallError::Status {
            service: svc(),
            status: UpstreamStatus::Grpc(tonic::Code::Internal),
            message: "panicked at src/stock.rs:42".into(),
        });
        assert_eq!(failed.status, 503);
        assert!(!failed.detail.contains("stock.rs"), "{}", failed.detail);
    }
}
