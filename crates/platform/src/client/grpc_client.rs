//! gRPC calls to another service: one lazily connected channel per endpoint.

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use url::Url;

use super::{CallError, Endpoints, Failure, Idempotency, Policy, Stack, UpstreamStatus, lock};

/// A resilient gRPC client for one upstream service.
///
/// The stack picks the endpoint; `call` hands its channel to generated client
/// code. `Unavailable`, `ResourceExhausted`, `DeadlineExceeded` and `Unknown`
/// are retried for idempotent calls, a refused connection for any call;
/// `Unavailable`, `DeadlineExceeded`, `Internal` and `Unknown` count against
/// the endpoint's breaker. Other codes (`NotFound`, `FailedPrecondition`, ...)
/// are the upstream's answer and come back as [`CallError::Status`].
#[derive(Clone, Debug)]
pub struct GrpcClient {
    stack: Stack,
    channels: Arc<Mutex<Channels>>,
}

#[derive(Debug, Default)]
struct Channels {
    version: u64,
    by_url: HashMap<Url, Channel>,
}

impl GrpcClient {
    /// A client over `endpoints` that behaves as `policy` says. Nothing
    /// connects until the first call to an endpoint.
    pub fn new(endpoints: Endpoints, policy: Policy) -> Self {
        let version = endpoints.version();
        Self {
            stack: Stack::new(endpoints, policy),
            channels: Arc::new(Mutex::new(Channels {
                version,
                by_url: HashMap::new(),
            })),
        }
    }

    /// The stack underneath, for its endpoints and policy.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Makes one call. `attempt` gets the chosen endpoint's channel and the
    /// time left, builds its request with [`GrpcClient::request`] and calls
    /// the generated client:
    ///
    /// ```no_run
    /// # async fn demo(client: bazaar_platform::client::GrpcClient) -> Result<(), bazaar_platform::client::CallError> {
    /// use bazaar_platform::client::{GrpcClient, Idempotency};
    /// use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    /// let reply = client
    ///     .call(Idempotency::Idempotent, |channel, left| async move {
    ///         let request = GrpcClient::request(HealthCheckRequest { service: String::new() }, left);
    ///         HealthClient::new(channel).check(request).await.map(|r| r.into_inner())
    ///     })
    ///     .await?;
    /// # let _ = reply; Ok(()) }
    /// ```
    pub async fn call<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        self.stack
            .call(idempotency, |target| {
                let call = self
                    .channel(&target.url)
                    .map(|channel| attempt(channel, target.remaining()));
                async move {
                    match call {
                        Ok(call) => call
                            .await
                            .map_err(|status| classify(status, target.service)),
                        Err(detail) => Err(Failure::permanent(CallError::InvalidRequest {
                            service: target.service,
                            detail,
                        })
                        .counting(true)),
                    }
                }
            })
            .await
    }

    /// A request for `message` that carries the deadline (`grpc-timeout`, so
    /// the upstream can give up too) and the current trace context.
    pub fn request<M>(message: M, deadline_left: Duration) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline_left);
        crate::telemetry::inject_grpc(request.metadata_mut());
        request
    }

    /// The cached channel of `url`; channels of endpoints that left the list are dropped.
    fn channel(&self, url: &Url) -> Result<Channel, String> {
        let mut channels = lock(&self.channels);
        let version = self.stack.endpoints().version();
        if channels.version != version {
            let current = self.stack.endpoints().urls();
            channels.by_url.retain(|url, _| current.contains(url));
            channels.version = version;
        }
        if let Some(channel) = channels.by_url.get(url) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(url.as_str().trim_end_matches('/').to_owned())
            .map_err(|error| format!("bad endpoint {url}: {error}"))?
            .connect_timeout(self.stack.policy().deadline)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.by_url.insert(url.clone(), channel.clone());
        Ok(channel)
    }
}

fn classify(status: tonic::Status, service: Arc<str>) -> Failure {
    // A status with a source was made on this side from a transport error;
    // one from the upstream's trailers has none.
    if status.source().is_some() {
        let detail = format!("{}: {}", status.code(), status.message());
        let error = CallError::Unavailable { service, detail };
        return if never_sent(&status) {
            Failure::not_sent(error)
        } else {
            Failure::transient(error)
        };
    }
    let code = status.code();
    let error = CallError::Status {
        service,
        status: UpstreamStatus::Grpc(code),
        message: status.message().to_owned(),
    };
    let counts = matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown
    );
    match code {
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Unknown => {
            Failure::transient(error).counting(counts)
        }
        _ => Failure::permanent(error).counting(counts),
    }
}

/// Whether the status comes from failing to connect, so the request never left.
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

    use super::super::{BreakerPolicy, BreakerState, Retry};
    use super::*;

    async fn health_server() -> Url {
        let (_reporter, service) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    async fn check(client: &GrpcClient, name: &str) -> Result<HealthCheckResponse, CallError> {
        client
            .call(Idempotency::Idempotent, |channel, left| {
                let request = GrpcClient::request(
                    HealthCheckRequest {
                        service: name.to_owned(),
                    },
                    left,
                );
                async move {
                    HealthClient::new(channel)
                        .check(request)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await
    }

    fn policy() -> Policy {
        Policy {
            deadline: Duration::from_secs(5),
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            breaker: BreakerPolicy {
                failures: 3,
                open_for: Duration::from_secs(60),
                open_max: Duration::from_secs(60),
            },
            ..Policy::default()
        }
    }

    #[tokio::test]
    async fn calls_a_real_grpc_server() {
        let url = health_server().await;
        let client = GrpcClient::new(Endpoints::new("inventory", vec![url]), policy());
        for _ in 0..3 {
            let reply = check(&client, "").await.unwrap();
            assert_eq!(reply.status(), ServingStatus::Serving);
        }
        assert_eq!(
            lock(&client.channels).by_url.len(),
            1,
            "one cached channel per endpoint"
        );
    }

    #[tokio::test]
    async fn upstream_answers_are_statuses_not_breaker_failures() {
        let url = health_server().await;
        let client = GrpcClient::new(Endpoints::new("inventory", vec![url]), policy());
        for _ in 0..4 {
            let error = check(&client, "no.such.Service").await.unwrap_err();
            assert_eq!(error.grpc_code(), Some(Code::NotFound), "{error}");
            assert!(!error.retryable());
        }
        assert_eq!(
            client.stack().endpoints().breaker_states()[0].1,
            BreakerState::Closed
        );
    }

    #[tokio::test]
    async fn dead_endpoint_is_unavailable_and_opens_the_breaker() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let dead = Url::parse(&format!("http://{addr}")).unwrap();
        let client = GrpcClient::new(Endpoints::new("inventory", vec![dead]), policy());
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let error = client
            .call(Idempotency::NonIdempotent, |channel, left| {
                attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let request = GrpcClient::request(HealthCheckRequest::default(), left);
                async move {
                    HealthClient::new(channel)
                        .check(request)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
        // Refused connections never carried the request, so even this one was retried.
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(
            client.stack().endpoints().breaker_states()[0].1,
            BreakerState::Open
        );
        assert!(matches!(
            check(&client, "").await,
            Err(CallError::CircuitOpen { .. })
        ));
    }

    #[tokio::test]
    async fn changed_endpoints_get_new_channels() {
        let first = health_server().await;
        let second = health_server().await;
        let endpoints = Endpoints::new("inventory", vec![first.clone()]);
        let client = GrpcClient::new(endpoints.clone(), policy());
        check(&client, "").await.unwrap();
        endpoints.set(vec![second.clone()]);
        check(&client, "").await.unwrap();
        let cached: Vec<Url> = lock(&client.channels).by_url.keys().cloned().collect();
        assert_eq!(cached, vec![second]);
    }

    #[test]
    fn codes_are_classified() {
        let svc = || Arc::<str>::from("inventory");
        let of = |code| classify(tonic::Status::new(code, "x"), svc());
        assert_eq!(of(Code::Unavailable).retry, Retry::IfIdempotent);
        assert!(of(Code::Unavailable).breaker);
        assert_eq!(of(Code::ResourceExhausted).retry, Retry::IfIdempotent);
        assert!(!of(Code::ResourceExhausted).breaker);
        assert_eq!(of(Code::DeadlineExceeded).retry, Retry::IfIdempotent);
        assert_eq!(of(Code::Internal).retry, Retry::Never);
        assert!(of(Code::Internal).breaker);
        assert_eq!(of(Code::FailedPrecondition).retry, Retry::Never);
        assert!(!of(Code::FailedPrecondition).breaker);
    }

    #[test]
    fn request_carries_the_deadline() {
        let request = GrpcClient::request((), Duration::from_millis(1500));
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .expect("grpc-timeout");
        assert!(!timeout.is_empty());
    }
}
