//! `GET /api/v1/openapi.json`: the public API's description, assembled from
//! the code that serves it — the gateway's own (generated with utoipa) and
//! every service's `/openapi.json`, fetched through the same call stack as
//! proxied requests and cached briefly. No description is kept by hand.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use bazaar_platform::client::{CallError, Failure, Idempotency, Stack, UpstreamStatus};
use bazaar_platform::problem::Problem;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full, Limited};
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi as _};

use crate::State;

/// How long a complete description is reused.
const FRESH: Duration = Duration::from_secs(30);
/// How long one missing a service that failed to answer is reused, so it
/// fills in soon after the service is back.
const FRESH_INCOMPLETE: Duration = Duration::from_secs(5);
/// How long fetching all descriptions may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest description read from a service.
const MAX_SPEC_BYTES: usize = 4 * 1024 * 1024;

/// The gateway's own endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bazaar API",
        description = "The public REST API of Bazaar, a marketplace: everything a client uses, through the gateway. Errors are RFC 9457 `application/problem+json`. Any endpoint may answer 429 with `Retry-After` when a client exceeds its rate limit, and 401 when it sends an invalid access token."
    ),
    paths(crate::status::handler, handler),
    modifiers(&Bearer),
    tags((name = "gateway", description = "The front door: the fleet's health and this description."))
)]
struct GatewayApi;

/// Declares how clients authenticate: `Authorization: Bearer <JWT>`.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An access token from POST /api/v1/auth/login (EdDSA-signed JWT).",
                        ))
                        .build(),
                ),
            );
    }
}

/// The gateway's own description (also served at its `/openapi.json`).
pub fn own() -> OpenApi {
    GatewayApi::openapi()
}

/// The assembled description, kept for a short while.
#[derive(Clone)]
pub struct Specs {
    own: Arc<OpenApi>,
    cached: Arc<Mutex<Option<(Instant, Bytes)>>>,
}

impl std::fmt::Debug for Specs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Specs").finish_non_exhaustive()
    }
}

impl Specs {
    /// Starts from the gateway's own description.
    pub fn new(own: OpenApi) -> Self {
        Self {
            own: Arc::new(own),
            cached: Arc::default(),
        }
    }

    fn fresh(&self) -> Option<Bytes> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, body)| body.clone())
    }

    fn keep(&self, body: Bytes, complete: bool) {
        let ttl = if complete { FRESH } else { FRESH_INCOMPLETE };
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now() + ttl, body));
    }
}

/// The OpenAPI 3.1 description of the whole public API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "gateway",
    responses((
        status = 200,
        description = "The OpenAPI 3.1 description of every public endpoint: the gateway's and each service's.",
        content_type = "application/json",
        body = serde_json::Value
    ))
)]
pub async fn handler(AxumState(state): AxumState<State>) -> Response {
    // Several requests may rebuild at once when it expires; that is cheaper
    // than making them wait on each other, and rare.
    let body = match state.specs.fresh() {
        Some(body) => body,
        None => {
            let (spec, complete) = assemble(&state).await;
            match serde_json::to_vec(&spec) {
                Ok(bytes) => {
                    let body = Bytes::from(bytes);
                    state.specs.keep(body.clone(), complete);
                    body
                }
                Err(error) => return Problem::internal(&error).into_response(),
            }
        }
    };
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The gateway's description merged with every service's; `false` when a
/// service that may have one did not answer.
async fn assemble(state: &State) -> (OpenApi, bool) {
    let fetches = state
        .upstreams
        .iter()
        .filter(|(name, _)| name.as_str() != <crate::Gateway as bazaar_platform::Service>::NAME)
        .map(
            |(name, upstream)| async move { (name.as_str(), fetch(state, &upstream.reads).await) },
        );
    let fetched = futures_util::future::join_all(fetches).await;
    let mut spec = (*state.specs.own).clone();
    let mut complete = true;
    for (service, result) in fetched {
        match result {
            Ok(Some(theirs)) => merge(&mut spec, service, theirs),
            Ok(None) => {}
            Err(error) => {
                complete = false;
                tracing::warn!(service, error = %error, "cannot read the service's OpenAPI description; leaving it out for now");
            }
        }
    }
    (spec, complete)
}

/// A service's description; `None` when it serves none.
async fn fetch(state: &State, stack: &Stack) -> Result<Option<OpenApi>, String> {
    let call = stack.call(Idempotency::Idempotent, |target| {
        let client = state.http.clone();
        async move {
            let uri = format!("{}/openapi.json", target.url.as_str().trim_end_matches('/'));
            let mut request = http::Request::new(Full::new(Bytes::new()));
            *request.uri_mut() = uri.parse().map_err(|e: http::uri::InvalidUri| {
                Failure::permanent(CallError::InvalidRequest {
                    service: target.service.clone(),
                    detail: e.to_string(),
                })
            })?;
            bazaar_platform::telemetry::inject_http(request.headers_mut());
            let response = client
                .request(request)
                .await
                .map_err(|e| crate::proxy::send_failure(&target, &e))?;
            let status = response.status();
            if status.is_server_error() {
                return Err(Failure::transient(CallError::Status {
                    service: target.service.clone(),
                    status: UpstreamStatus::Http(status),
                    message: String::new(),
                }));
            }
            let body = Limited::new(response.into_body(), MAX_SPEC_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    Failure::transient(CallError::Unavailable {
                        service: target.service.clone(),
                        detail: e.to_string(),
                    })
                })?
                .to_bytes();
            Ok((status, body))
        }
    });
    let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, call)
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    match status {
        StatusCode::OK => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("not an OpenAPI document: {e}")),
        StatusCode::NOT_FOUND => Ok(None),
        other => Err(format!("/openapi.json answered {other}")),
    }
}

/// Adds `service`'s public part to `spec`.
fn merge(spec: &mut OpenApi, service: &str, mut theirs: OpenApi) {
    // What is public is what the gateway routes to this service, whatever
    // else it describes.
    theirs
        .paths
        .paths
        .retain(|path, _| crate::route(path) == Some(service));
    // A service's default security is for its own operations, not for
    // everyone's once merged.
    if let Some(default) = theirs.security.take() {
        for item in theirs.paths.paths.values_mut() {
            for operation in operations(item) {
                operation.security.get_or_insert_with(|| default.clone());
            }
        }
    }
    // Its servers are internal addresses; clients reach it through here.
    theirs.servers = None;
    for item in theirs.paths.paths.values_mut() {
        item.servers = None;
    }
    if let (Some(ours), Some(new)) = (&spec.components, &theirs.components) {
        for (name, schema) in &new.schemas {
            if ours
                .schemas
                .get(name)
                .is_some_and(|existing| existing != schema)
            {
                tracing::warn!(
                    service,
                    schema = %name,
                    "two services describe different schemas under one name; keeping the first"
                );
            }
        }
    }
    spec.merge(theirs);
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_gateway_describes_itself_with_bearer_auth() {
        let spec = serde_json::to_value(own()).unwrap();
        assert!(
            spec["openapi"].as_str().unwrap().starts_with("3.1"),
            "{spec}"
        );
        assert!(spec["paths"]["/api/v1/status"]["get"].is_object(), "{spec}");
        assert!(
            spec["paths"]["/api/v1/openapi.json"]["get"].is_object(),
            "{spec}"
        );
        assert_eq!(
            spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
            "{spec}"
        );
        assert!(
            spec["components"]["schemas"]["Status"].is_object(),
            "{spec}"
        );
    }

    #[test]
    fn merging_keeps_only_routed_paths_and_scopes_security() {
        let theirs: OpenApi = serde_json::from_value(json!({
            "openapi": "3.1.0",
            "info": {"title": "catalog", "version": "1"},
            "servers": [{"url": "http://10.0.0.7:7102"}],
            "security": [{"bearer": []}],
            "paths": {
                "/api/v1/products": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/api/v1/products/{id}": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
                "/api/v1/orders": {"get": {"responses": {"200": {"description": "not catalog's"}}}},
                "/internal/reindex": {"post": {"responses": {"204": {"description": "private"}}}}
            },
            "components": {"schemas": {"Product": {"type": "object"}}}
        }))
        .unwrap();
        let mut spec = own();
        merge(&mut spec, "catalog", theirs);
        let spec = serde_json::to_value(spec).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/products"));
        assert!(paths.contains_key("/api/v1/status"));
        assert!(
            !paths.contains_key("/api/v1/orders"),
            "routed to orders, not catalog"
        );
        assert!(!paths.contains_key("/internal/reindex"));
        assert_eq!(
            spec["paths"]["/api/v1/products"]["get"]["security"],
            json!([{"bearer": []}])
        );
        assert_eq!(
            spec["paths"]["/api/v1/products/{id}"]["get"]["security"],
            json!([])
        );
        assert!(spec.get("security").is_none(), "{spec}");
        assert!(spec.get("servers").is_none(), "{spec}");
        assert!(spec["components"]["schemas"]["Product"].is_object());
        assert_eq!(spec["info"]["title"], "Bazaar API");
    }
}
