//! HTTP/1.1 calls to another service over a pooled hyper client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::{CallError, Endpoints, Failure, Idempotency, Policy, Stack, Target, UpstreamStatus};

/// How much of an error body is kept in [`CallError::Status`] for logs.
const ERROR_SNIPPET: usize = 256;

/// A resilient HTTP client for one upstream service (plain `http://` endpoints).
///
/// Answers with 2xx, 3xx and 4xx come back as responses: they are the
/// upstream's verdict. 502, 503 and 504 are retried for idempotent calls;
/// every 5xx counts against the endpoint's breaker and, if it is the last
/// word, becomes [`CallError::Status`].
#[derive(Clone, Debug)]
pub struct HttpClient {
    stack: Stack,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    /// A client over `endpoints` that behaves as `policy` says.
    pub fn new(endpoints: Endpoints, policy: Policy) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(policy.deadline));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            stack: Stack::new(endpoints, policy),
            client,
        }
    }

    /// The stack underneath, for its endpoints and policy.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Sends `request`, whose URI is a path (and query) resolved against the
    /// chosen endpoint, e.g. `/api/v1/products?page=2`. Any scheme or
    /// authority in it is ignored. The current trace context is added.
    pub async fn send(
        &self,
        request: Request<Bytes>,
        idempotency: Idempotency,
    ) -> Result<Response<Bytes>, CallError> {
        let (mut parts, body) = request.into_parts();
        let Some(path) = parts.uri.path_and_query().cloned() else {
            return Err(CallError::InvalidRequest {
                service: Arc::from(self.stack.endpoints().service()),
                detail: format!("no path in {}", parts.uri),
            });
        };
        crate::telemetry::inject_http(&mut parts.headers);
        let parts = &parts;
        let path = &path;
        let body = &body;
        self.stack
            .call(idempotency, |target| {
                let client = self.client.clone();
                async move {
                    let uri = resolve(&target.url, path).map_err(|error| {
                        Failure::permanent(CallError::InvalidRequest {
                            service: target.service.clone(),
                            detail: error.to_string(),
                        })
                    })?;
                    let mut request = Request::new(Full::new(body.clone()));
                    *request.method_mut() = parts.method.clone();
                    *request.uri_mut() = uri;
                    *request.headers_mut() = parts.headers.clone();
                    *request.extensions_mut() = parts.extensions.clone();
                    attempt(&client, request, &target).await
                }
            })
            .await
    }

    /// `GET path`, idempotent.
    pub async fn get(&self, path: &str) -> Result<Response<Bytes>, CallError> {
        let uri: Uri =
            path.parse()
                .map_err(|error: http::uri::InvalidUri| CallError::InvalidRequest {
                    service: Arc::from(self.stack.endpoints().service()),
                    detail: error.to_string(),
                })?;
        let mut request = Request::new(Bytes::new());
        *request.uri_mut() = uri;
        self.send(request, Idempotency::Idempotent).await
    }
}

async fn attempt(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    target: &Target,
) -> Result<Response<Bytes>, Failure> {
    let unavailable = |detail: String| CallError::Unavailable {
        service: target.service.clone(),
        detail,
    };
    let response = client.request(request).await.map_err(|error| {
        if error.is_connect() {
            Failure::not_sent(unavailable(error_chain(&error)))
        } else {
            Failure::transient(unavailable(error_chain(&error)))
        }
    })?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|error| Failure::transient(unavailable(error_chain(&error))))?
        .to_bytes();
    if !parts.status.is_server_error() {
        return Ok(Response::from_parts(parts, body));
    }
    let error = CallError::Status {
        service: target.service.clone(),
        status: UpstreamStatus::Http(parts.status),
        message: snippet(&body),
    };
    Err(match parts.status {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Failure::transient(error)
        }
        _ => Failure::permanent(error).counting(true),
    })
}

/// `http://host:port/base/` + `/path?q` → `http://host:port/base/path?q`.
fn resolve(base: &Url, path: &PathAndQuery) -> Result<Uri, http::Error> {
    let authority = &base[url::Position::BeforeHost..url::Position::AfterPort];
    let prefix = base.path().trim_end_matches('/');
    let path = path.as_str();
    let slash = if path.starts_with('/') { "" } else { "/" };
    Ok(Uri::try_from(format!(
        "{}://{authority}{prefix}{slash}{path}",
        base.scheme()
    ))?)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn snippet(body: &Bytes) -> String {
    let end = body.len().min(ERROR_SNIPPET);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::Router;
    use axum::routing::{get, post};
    use tokio::net::TcpListener;

    use super::super::{BreakerPolicy, BreakerState};
    use super::*;

    #[test]
    fn resolves_paths_against_the_endpoint() {
        let path = |s: &str| PathAndQuery::try_from(s).unwrap();
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            resolve(&base, &path("/a/b?c=1")).unwrap(),
            "http://127.0.0.1:8080/a/b?c=1"
        );
        let prefixed = Url::parse("http://svc.local:81/inner/").unwrap();
        assert_eq!(
            resolve(&prefixed, &path("/x")).unwrap(),
            "http://svc.local:81/inner/x"
        );
    }

    async fn serve(router: Router) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    fn fast_policy() -> Policy {
        Policy {
            deadline: Duration::from_secs(5),
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            ..Policy::default()
        }
    }

    /// Answers 503 to the first two requests, then 200; counts requests.
    fn flaky(hits: Arc<AtomicU32>) -> Router {
        let handler = move || {
            let hits = hits.clone();
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, "busy")
                } else {
                    (StatusCode::OK, "fine")
                }
            }
        };
        Router::new().route("/flaky", get(handler.clone()).post(handler))
    }

    #[tokio::test]
    async fn idempotent_get_succeeds_after_retries() {
        let hits = Arc::new(AtomicU32::new(0));
        let url = serve(flaky(hits.clone())).await;
        let client = HttpClient::new(Endpoints::new("catalog", vec![url]), fast_policy());
        let response = client.get("/flaky").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"fine");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn post_gets_the_503_without_a_retry() {
        let hits = Arc::new(AtomicU32::new(0));
        let url = serve(flaky(hits.clone())).await;
        let client = HttpClient::new(Endpoints::new("catalog", vec![url]), fast_policy());
        let request = Request::builder()
            .method("POST")
            .uri("/flaky")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let error = client
            .send(request, Idempotency::NonIdempotent)
            .await
            .unwrap_err();
        assert_eq!(
            error.http_status(),
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{error}"
        );
        assert!(error.retryable());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn client_errors_are_responses_not_failures() {
        let router = Router::new()
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such product") }),
            )
            .route("/echo", post(|body: Bytes| async move { body }));
        let url = serve(router).await;
        let client = HttpClient::new(
            Endpoints::new("catalog", vec![url]),
            Policy {
                breaker: BreakerPolicy {
                    failures: 1,
                    ..BreakerPolicy::default()
                },
                ..fast_policy()
            },
        );
        for _ in 0..3 {
            let response = client.get("/missing").await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        assert_eq!(
            client.stack().endpoints().breaker_states()[0].1,
            BreakerState::Closed
        );
        let request = Request::builder()
            .method("POST")
            .uri("/echo")
            .body(Bytes::from("hi"))
            .unwrap();
        let response = client
            .send(request, Idempotency::NonIdempotent)
            .await
            .unwrap();
        assert_eq!(response.body().as_ref(), b"hi");
    }

    #[tokio::test]
    async fn hanging_upstream_times_out_within_the_deadline() {
        let router = Router::new().route("/hang", get(std::future::pending::<&'static str>));
        let url = serve(router).await;
        let deadline = Duration::from_millis(300);
        let client = HttpClient::new(
            Endpoints::new("catalog", vec![url]),
            Policy {
                deadline,
                ..fast_policy()
            },
        );
        let start = std::time::Instant::now();
        let error = client.get("/hang").await.unwrap_err();
        assert!(matches!(error, CallError::Timeout { .. }), "{error:?}");
        assert!(start.elapsed() >= deadline);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn dead_port_is_unavailable_and_opens_the_breaker() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}")).unwrap();
        let client = HttpClient::new(
            Endpoints::new("catalog", vec![url]),
            Policy {
                max_retries: 2,
                breaker: BreakerPolicy {
                    failures: 3,
                    open_for: Duration::from_secs(60),
                    open_max: Duration::from_secs(60),
                },
                ..fast_policy()
            },
        );
        let request = Request::builder()
            .method("POST")
            .uri("/orders")
            .body(Bytes::new())
            .unwrap();
        let error = client
            .send(request, Idempotency::NonIdempotent)
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
        assert_eq!(error.side(), super::super::Side::Upstream);
        // Connection refused is retried even for a POST: 3 attempts open the breaker.
        assert_eq!(
            client.stack().endpoints().breaker_states()[0].1,
            BreakerState::Open
        );
        let error = client.get("/orders").await.unwrap_err();
        assert!(matches!(error, CallError::CircuitOpen { .. }), "{error:?}");
        assert_eq!(error.side(), super::super::Side::Local);
    }

    #[tokio::test]
    async fn traceparent_is_sent_when_the_span_has_a_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing::Instrument;
        use tracing_subscriber::layer::SubscriberExt;

        let seen = Arc::new(std::sync::Mutex::new(None::<String>));
        let router = Router::new().route(
            "/trace",
            get({
                let seen = seen.clone();
                move |headers: http::HeaderMap| async move {
                    *seen.lock().unwrap() = headers
                        .get("traceparent")
                        .map(|value| value.to_str().unwrap().to_owned());
                    "ok"
                }
            }),
        );
        let url = serve(router).await;
        let client = HttpClient::new(Endpoints::new("catalog", vec![url]), fast_policy());

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let span = tracing::info_span!("checkout");
        client.get("/trace").instrument(span).await.unwrap();

        let traceparent = seen.lock().unwrap().clone().expect("traceparent header");
        assert!(traceparent.starts_with("00-"), "{traceparent}");
        assert_eq!(traceparent.len(), 55, "{traceparent}");
    }
}
