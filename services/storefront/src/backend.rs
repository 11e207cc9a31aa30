//! Calls to the other services' public REST APIs, straight to their
//! instances (not through the gateway): one resilient client per service
//! (the platform's stack: deadline, retries of idempotent calls, a breaker
//! per instance, client-side balancing), the caller's access token passed
//! on as `Authorization: Bearer`.
//!
//! A page fans out to the services it needs concurrently (`tokio::join!`),
//! so rendering it costs one round trip per backend service. What a page
//! can do without (the bell's count, a stock badge) is asked
//! [`Call::optional`]: it gets [`OPTIONAL_BUDGET`], and a page whose optional
//! part is slow renders without it instead of waiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bazaar_platform::client::{
    ByClass, CallError, Deadlines, Endpoints, HttpClient, Idempotency, Policy,
};
use bazaar_platform::problem::{FieldError, Problem};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

/// How long a part of a page that the page can do without may take.
pub const OPTIONAL_BUDGET: Duration = Duration::from_millis(200);

/// The clients of every backend service, by name.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Per service, one client for reads (short deadline, each attempt
    /// bounded, retried on another instance) and one for writes, over the
    /// same instances.
    clients: Arc<BTreeMap<String, ByClass<HttpClient>>>,
}

/// Why a backend call did not give what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// The service answered with a problem (a 4xx, or a 5xx as its last word).
    #[error("{service} answered {}: {}", .problem.status, .problem.detail)]
    Refused {
        /// Which service.
        service: String,
        /// What it said.
        problem: Problem,
    },
    /// The service could not be reached in time, or is not deployed.
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        /// Which service.
        service: String,
        /// Why, for the log.
        detail: String,
    },
    /// The service answered something this storefront does not understand.
    #[error("{service} answered something unexpected: {detail}")]
    Garbled {
        /// Which service.
        service: String,
        /// What did not parse.
        detail: String,
    },
}

impl Failure {
    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { problem, .. } => StatusCode::from_u16(problem.status).ok(),
            _ => None,
        }
    }

    /// Whether the service said there is no such thing (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The problem the service answered, if it answered one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Refused { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Per-field messages of a validation problem (empty otherwise).
    pub fn field_errors(&self) -> &[FieldError] {
        self.problem().map_or(&[], |p| p.errors.as_slice())
    }
}

/// A call about to be sent: method, path, token, body, headers.
#[derive(Debug)]
pub struct Call<'a> {
    service: &'a str,
    method: Method,
    path: String,
    token: Option<&'a str>,
    body: Option<Bytes>,
    headers: HeaderMap,
    budget: Option<Duration>,
}

impl<'a> Call<'a> {
    /// Marks the call as a part the page can do without: it ends as
    /// [`Failure::Unavailable`] after [`OPTIONAL_BUDGET`] instead of
    /// holding the page for the service's whole deadline.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.budget = Some(OPTIONAL_BUDGET);
        self
    }

    /// Passes the caller's access token on.
    #[must_use]
    pub fn token(mut self, token: Option<&'a str>) -> Self {
        self.token = token;
        self
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, body: &impl Serialize) -> Self {
        // Serializing our own request types cannot fail.
        self.body = Some(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self
    }

    /// One more request header; a value that is not a valid header is dropped.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }
}

impl Backend {
    /// Clients for every service in `upstreams`; a person is waiting for
    /// the page, so calls have the platform's deadlines for waiting clients.
    pub fn new(upstreams: &BTreeMap<String, Vec<Url>>, deadlines: &Deadlines) -> Self {
        let clients = upstreams
            .iter()
            .map(|(name, urls)| {
                let endpoints = Endpoints::new(name, urls.clone());
                let clients = ByClass {
                    reads: HttpClient::new(endpoints.clone(), Policy::read(deadlines)),
                    writes: HttpClient::new(endpoints, Policy::write(deadlines)),
                };
                (name.clone(), clients)
            })
            .collect();
        Self {
            clients: Arc::new(clients),
        }
    }

    /// Base URLs of every instance of `service`, as configured.
    pub fn instances(&self, service: &str) -> Vec<Url> {
        self.clients
            .get(service)
            .map(|c| c.reads.stack().endpoints().urls())
            .unwrap_or_default()
    }

    /// The names of every service this storefront was told about.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// `GET path` on `service`.
    pub fn get<'a>(&self, service: &'a str, path: impl Into<String>) -> Call<'a> {
        self.call(service, Method::GET, path)
    }

    /// Any call on `service`; send it with [`Backend::json`] or [`Backend::empty`].
    pub fn call<'a>(&self, service: &'a str, method: Method, path: impl Into<String>) -> Call<'a> {
        Call {
            service,
            method,
            path: path.into(),
            token: None,
            body: None,
            headers: HeaderMap::new(),
            budget: None,
        }
    }

    /// Sends `call` and reads a 2xx answer's JSON body as `T`.
    ///
    /// # Errors
    /// [`Failure`]: refused, unavailable, or an answer that is not a `T`.
    pub async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Failure> {
        let service = call.service;
        let (_, body) = self.send(call).await?;
        serde_json::from_slice(&body).map_err(|e| Failure::Garbled {
            service: service.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Sends `call`, expecting a 2xx answer whose body does not matter.
    ///
    /// # Errors
    /// [`Failure`]: refused or unavailable.
    pub async fn empty(&self, call: Call<'_>) -> Result<StatusCode, Failure> {
        self.send(call).await.map(|(status, _)| status)
    }

    /// Sends `call`: the status and body of a 2xx answer.
    ///
    /// # Errors
    /// [`Failure`]: refused or unavailable.
    pub async fn send(&self, call: Call<'_>) -> Result<(StatusCode, Bytes), Failure> {
        let service = call.service;
        let Some(clients) = self.clients.get(service) else {
            return Err(Failure::Unavailable {
                service: service.to_owned(),
                detail: "not deployed alongside the storefront".to_owned(),
            });
        };
        // A POST with an idempotency key may be repeated like a PUT.
        let idempotency = if call.headers.contains_key("idempotency-key") {
            Idempotency::Idempotent
        } else {
            Idempotency::of_method(&call.method)
        };
        let client = clients.for_method(&call.method);
        let budget = call.budget;
        let mut request = Request::new(call.body.unwrap_or_default());
        *request.method_mut() = call.method;
        *request.uri_mut() =
            call.path
                .parse()
                .map_err(|e: http::uri::InvalidUri| Failure::Garbled {
                    service: service.to_owned(),
                    detail: format!("bad path {}: {e}", call.path),
                })?;
        *request.headers_mut() = call.headers;
        request
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = call.token
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let sent = client.send(request, idempotency);
        let response = match budget {
            None => sent.await,
            Some(budget) => {
                tokio::time::timeout(budget, sent)
                    .await
                    .map_err(|_| Failure::Unavailable {
                        service: service.to_owned(),
                        detail: format!("no answer within the page's {budget:?} for it"),
                    })?
            }
        }
        .map_err(|e| unavailable(service, &e))?;
        let status = response.status();
        let body = response.into_body();
        if status.is_success() {
            return Ok((status, body));
        }
        let problem = serde_json::from_slice::<Problem>(&body).unwrap_or_else(|_| {
            Problem::new(status, format!("The {service} service answered {status}."))
        });
        Err(Failure::Refused {
            service: service.to_owned(),
            problem,
        })
    }
}

fn unavailable(service: &str, error: &CallError) -> Failure {
    match error.http_status() {
        // A 5xx as the last word: the service's own problem, if it sent one.
        Some(status) => Failure::Refused {
            service: service.to_owned(),
            problem: Problem::new(status, format!("The {service} service failed ({status}).")),
        },
        None => Failure::Unavailable {
            service: service.to_owned(),
            detail: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;

    use super::*;

    /// A service whose `/slow` answers after `delay`, and `/quick` at once.
    async fn service(delay: Duration) -> Backend {
        let router = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    tokio::time::sleep(delay).await;
                    axum::Json(serde_json::json!({"ok": true}))
                }),
            )
            .route(
                "/quick",
                get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
            );
        let url = bazaar_testkit::serve(router).await;
        let upstreams = BTreeMap::from([("notifications".to_owned(), vec![url])]);
        Backend::new(&upstreams, &Deadlines::default())
    }

    #[tokio::test]
    async fn an_optional_part_gives_up_after_its_budget_and_a_needed_one_waits() {
        let backend = service(OPTIONAL_BUDGET * 4).await;
        let optional = backend
            .json::<serde_json::Value>(backend.get("notifications", "/slow").optional())
            .await;
        assert!(
            matches!(optional, Err(Failure::Unavailable { .. })),
            "{optional:?}"
        );
        // The page's own parts have the read deadline (3 s), not the budget.
        let needed = backend
            .json::<serde_json::Value>(backend.get("notifications", "/slow"))
            .await;
        assert_eq!(needed.unwrap()["ok"], true);
        // A quick optional part is simply there.
        let quick = backend
            .json::<serde_json::Value>(backend.get("notifications", "/quick").optional())
            .await;
        assert_eq!(quick.unwrap()["ok"], true);
    }
}
