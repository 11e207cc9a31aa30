//! Passing a public request on to the service that owns it.
//!
//! The request body (bounded by the body limit) is read once so an attempt
//! can be repeated when that is safe; the response body streams back as it
//! arrives, so Server-Sent Events pass through unbuffered.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::response::{IntoResponse, Response};
use bazaar_platform::client::{CallError, Failure, Idempotency, Target, UpstreamStatus};
use bazaar_platform::problem::Problem;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{StatusCode, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::State;

/// The pooled client the gateway proxies with.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A keep-alive client: proxied calls reuse upstream connections.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// Headers that belong to one hop, never passed on (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::CONTENT_LENGTH,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Every `/api/v1/...` request except the gateway's own.
pub async fn handler(AxumState(state): AxumState<State>, req: Request) -> Response {
    let path = req.uri().path();
    let Some(service) = crate::route(path) else {
        return Problem::not_found(format!("There is no API at {path}.")).into_response();
    };
    let Some(upstream) = state.upstreams.get(service) else {
        return Problem::service_unavailable(format!(
            "The {service} service is not running in this deployment."
        ))
        .into_response();
    };

    let forwarded_for = crate::edge::forwarded_for(&req, &state.trusted);
    let client = crate::edge::client_ip(&req, &state.trusted);
    let (parts, body) = req.into_parts();
    let too_large = || {
        Problem::payload_too_large(format!(
            "The request body is larger than {} bytes.",
            state.body_limit
        ))
        .into_response()
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.body_limit) {
        return too_large();
    }
    let body = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(e) if is_length_limit(&e) => return too_large(),
        Err(_) => {
            return Problem::bad_request("The request body could not be read.").into_response();
        }
    };

    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    if let Some(host) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    // Services see who called, and never an address a client made up.
    headers.remove("x-forwarded-for");
    if let Some(chain) = forwarded_for {
        headers.insert("x-forwarded-for", chain);
    }
    headers.insert("x-forwarded-proto", http::HeaderValue::from_static("http"));
    if let Ok(client) = http::HeaderValue::from_str(&client.to_string()) {
        headers.insert(bazaar_platform::server::CLIENT_ADDRESS, client);
    }
    // The gateway's own span becomes the upstream's parent.
    bazaar_platform::telemetry::inject_http(&mut headers);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());

    // A 5xx answer is a failed attempt for the stack (breaker, retry), but
    // if it is the last word the client should see it as the service said it.
    let last_answer: Arc<Mutex<Option<Response>>> = Arc::default();
    let result = upstream
        .for_method(&parts.method)
        .call(Idempotency::of_method(&parts.method), |target| {
            let uri: Result<Uri, _> = format!(
                "{}{}",
                target.url.as_str().trim_end_matches('/'),
                path_and_query
            )
            .parse();
            let mut request = http::Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.headers_mut() = headers.clone();
            let client = state.http.clone();
            let last_answer = last_answer.clone();
            async move {
                *request.uri_mut() = uri.map_err(|e| {
                    Failure::permanent(CallError::InvalidRequest {
                        service: target.service.clone(),
                        detail: e.to_string(),
                    })
                })?;
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| send_failure(&target, &e))?;
                let status = response.status();
                if !status.is_server_error() {
                    return Ok(response);
                }
                let error = CallError::Status {
                    service: target.service.clone(),
                    status: UpstreamStatus::Http(status),
                    message: String::new(),
                };
                *last_answer.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(response.map(Body::new));
                Err(match status {
                    StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT => Failure::transient(error),
                    _ => Failure::permanent(error).counting(true),
                })
            }
        })
        .await;

    match result {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error @ CallError::Status { .. }) => {
            let answer = last_answer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            answer.unwrap_or_else(|| Problem::from(error).into_response())
        }
        Err(error) => {
            tracing::warn!(service, error = %error, "upstream call failed");
            Problem::from(error).into_response()
        }
    }
}

/// Classifies a failure to get an answer: a connection that was never made
/// may be retried for any call, anything later only for idempotent ones.
pub fn send_failure(target: &Target, error: &hyper_util::client::legacy::Error) -> Failure {
    let failure = CallError::Unavailable {
        service: target.service.clone(),
        detail: error.to_string(),
    };
    if error.is_connect() {
        Failure::not_sent(failure)
    } else {
        Failure::transient(failure)
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}
