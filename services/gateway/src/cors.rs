//! CORS for the storefront's origins, and the security headers every
//! gateway response carries.
//!
//! The gateway is the one place that answers browsers' cross-origin
//! questions: services behind it never see a preflight, and any
//! `Access-Control-*` header they set is replaced, so the policy lives here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bazaar_platform::problem::Problem;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// Methods the public API uses.
const METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE");
/// Request headers a page may send.
const HEADERS: HeaderValue =
    HeaderValue::from_static("Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
/// Response headers a page may read besides the basic ones.
const EXPOSED: HeaderValue = HeaderValue::from_static("Location, Retry-After, X-Request-Id");
/// How long a browser may reuse a preflight answer, in seconds.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
/// The answer depends on these request headers, for caches.
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

/// The origins allowed to call from a browser.
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Arc<[HeaderValue]>,
}

impl Cors {
    /// Allows exactly `origins` (as browsers send them in `Origin`).
    pub fn new(origins: &[String]) -> anyhow::Result<Self> {
        let origins = origins
            .iter()
            .map(|o| HeaderValue::from_str(o))
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins.iter().any(|allowed| allowed == origin)
    }
}

/// Answers preflights; marks other answers readable by allowed origins.
pub async fn layer(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = origin.filter(|o| cors.allows(o));
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return answer_preflight(allowed);
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    remove_cors(headers);
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
    }
    // Whether the page may read this depends on who asked.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

fn answer_preflight(allowed: Option<HeaderValue>) -> Response {
    let Some(origin) = allowed else {
        let mut response = Problem::new(
            StatusCode::FORBIDDEN,
            "This origin may not call the API from a browser.",
        )
        .into_response();
        response.headers_mut().insert(header::VARY, VARY_PREFLIGHT);
        return response;
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS);
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HEADERS);
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    headers.insert(header::VARY, VARY_PREFLIGHT);
    response
}

fn remove_cors(headers: &mut HeaderMap) {
    const SET_UPSTREAM: [HeaderName; 6] = [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ];
    for name in SET_UPSTREAM {
        headers.remove(name);
    }
}

/// Security headers on every answer: nothing is sniffed, framed, leaks a
/// referrer or is embedded by another site; API answers also forbid any
/// active content and are not stored unless the service said otherwise.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages may choose their own: with `no-referrer` a browser sends
    // `Origin: null` on a page's own form posts, which hides that they are
    // same-origin.
    if api || !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if api {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    response
}
