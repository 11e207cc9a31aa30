//! Prometheus metrics: the platform's own request metrics, plus whatever a
//! service registers, served as text at `GET /metrics`.
//!
//! Labels stay low-cardinality: the route template (never the raw path),
//! the method and the status class. No user or order id is ever a label.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// Labels of one route's request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// Labels of the request counter: the route plus the status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    method: String,
    route: String,
    status: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The metrics of one service process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<StatusLabels, Counter>,
    errors: Family<RouteLabels, Counter>,
    latency: Histograms,
    in_flight: Family<RouteLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry with the platform's request metrics, labelled with the
    /// service and instance names.
    pub fn new(service: &str, instance: &str) -> Self {
        let mut registry = Registry::with_labels(
            [
                ("service".into(), service.to_owned().into()),
                ("instance".into(), instance.to_owned().into()),
            ]
            .into_iter(),
        );
        let requests = Family::<StatusLabels, Counter>::default();
        let errors = Family::<RouteLabels, Counter>::default();
        let latency: Histograms = Family::new_with_constructor(latency_histogram);
        let in_flight = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route, method and status class",
            requests.clone(),
        );
        registry.register(
            "http_request_errors",
            "Requests answered with a 5xx status",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            errors,
            latency,
            in_flight,
        }
    }

    /// Registers a service's own metric.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Registers several metrics at once (e.g. a library's families).
    pub fn register_with(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// `GET /metrics`.
pub async fn handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// Route label for a request: the matched template, or the gRPC method path
/// (bounded by the services registered), or `unmatched`.
fn route_of(req: &Request) -> Route {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    match req.extensions().get::<MatchedPath>() {
        // A gRPC path names a method of a registered service; whether the
        // service has it is known only from its answer.
        Some(p) if grpc && p.as_str().ends_with("/{*rest}") => Route::Grpc {
            template: p.as_str().to_owned(),
            method: req.uri().path().to_owned(),
        },
        Some(p) => Route::Known(p.as_str().to_owned()),
        None => Route::Known("unmatched".to_owned()),
    }
}

/// What a request is labelled by: a route template, never a raw path a
/// client chose (that would let anyone grow `/metrics` without bound).
enum Route {
    /// A route template (or `unmatched`).
    Known(String),
    /// A gRPC call: the method's path once the service answered it as its
    /// own, else the service's template.
    Grpc { template: String, method: String },
}

impl Route {
    /// The label while the request runs.
    fn pending(&self) -> &str {
        match self {
            Self::Known(route)
            | Self::Grpc {
                template: route, ..
            } => route,
        }
    }

    /// The label once `response` is known: a gRPC method the service does
    /// not have (UNIMPLEMENTED, code 12) keeps the template.
    fn answered(self, response: &Response) -> String {
        match self {
            Self::Known(route) => route,
            Self::Grpc { template, method } => {
                let unimplemented = response
                    .headers()
                    .get("grpc-status")
                    .is_some_and(|code| code.as_bytes() == b"12");
                if unimplemented { template } else { method }
            }
        }
    }
}

/// Middleware recording count, errors, latency and in-flight per route.
pub async fn record(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let method = req.method().as_str().to_owned();
    let gauge = metrics
        .in_flight
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.pending().to_owned(),
        })
        .clone();
    gauge.inc();
    let started = Instant::now();
    let response = next.run(req).await;
    gauge.dec();
    let labels = RouteLabels {
        method,
        route: route.answered(&response),
    };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    let status = response.status();
    if status.is_server_error() {
        metrics.errors.get_or_create(&labels).inc();
    }
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .requests
        .get_or_create(&StatusLabels {
            method: labels.method,
            route: labels.route,
            status: class,
        })
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn counts_by_route_template_not_raw_path() {
        let metrics = Metrics::new("catalog", "catalog-0");
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .route(
                "/boom",
                get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                record,
            ));
        for path in ["/items/1", "/items/2", "/boom", "/nowhere"] {
            app.clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
        }
        let text = metrics.encode();
        assert!(
            text.contains(r#"http_requests_total{service="catalog",instance="catalog-0",method="GET",route="/items/{id}",status="2xx"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"route="/boom",status="5xx"} 1"#), "{text}");
        assert!(
            text.contains(r#"http_request_errors_total{service="catalog",instance="catalog-0",method="GET",route="/boom"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            !text.contains("/items/1"),
            "raw paths must not become labels"
        );
    }
}
