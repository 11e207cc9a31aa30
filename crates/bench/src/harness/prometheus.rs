//! The Prometheus text services expose on `/metrics`, read by the one
//! reader the tests use too (`bazaar_testkit::metrics`).

use std::collections::BTreeMap;

pub use bazaar_testkit::metrics::Sample;

/// The samples of a metrics text; comments and lines it cannot read are
/// skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    bazaar_testkit::metrics::Metrics::parse(text).samples
}

/// Count and total seconds of `http_request_duration_seconds` per route
/// of `GET` requests, from a service's `/metrics` text.
pub fn durations(metrics: &str) -> BTreeMap<String, (u64, f64)> {
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for sample in samples(metrics) {
        let is_count = match sample.name.as_str() {
            "http_request_duration_seconds_count" => true,
            "http_request_duration_seconds_sum" => false,
            _ => continue,
        };
        if sample.labels.get("method").map(String::as_str) != Some("GET") {
            continue;
        }
        let Some(route) = sample.labels.get("route") else {
            continue;
        };
        let entry = out.entry(route.clone()).or_default();
        if is_count {
            entry.0 += sample.value as u64;
        } else {
            entry.1 += sample.value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP http_request_duration_seconds Time from request to response headers.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 0.5
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 1000
http_request_duration_seconds_bucket{le="0.0001",service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 10
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="GET",route="/readyz"} 0.01
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="GET",route="/readyz"} 20
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="POST",route="/api/v1/products"} 9.0
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="POST",route="/api/v1/products"} 50000
# EOF
"#;

    #[test]
    fn request_durations_per_get_route() {
        let durations = durations(METRICS);
        assert_eq!(durations.len(), 2, "{durations:?}");
        assert_eq!(durations["/api/v1/products/{id}"], (1000, 0.5));
        assert_eq!(durations["/readyz"], (20, 0.01));
    }
}
