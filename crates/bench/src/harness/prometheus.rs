//! The Prometheus text services expose on `/metrics`: the one metrics
//! reader of the benchmarks. Small and hand-written because the
//! `prometheus-parse` crate cuts label values at a `}`, and route templates
//! (`/api/v1/products/{id}`) are full of them.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name, with its `_count`/`_sum`/`_bucket` suffix.
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of a metrics text; comments and lines it cannot read are
/// skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

/// One line, if it is a sample.
fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let (value, after) = quoted(after)?;
            labels.insert(key.trim().to_owned(), value);
            rest = after;
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped, and what follows.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
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

    #[test]
    fn labels_are_unescaped() {
        let s = sample(r#"m_total{a="x\"}y",b="\\n"} 3 1700000000"#).unwrap();
        assert_eq!(s.name, "m_total");
        assert_eq!(s.labels["a"], "x\"}y");
        assert_eq!(s.labels["b"], "\\n");
        assert_eq!(s.value, 3.0);
        assert_eq!(sample("# TYPE m counter"), None);
        assert_eq!(sample("plain 1.5").unwrap().value, 1.5);
        assert_eq!(sample("broken{a=\"x} 1"), None);
    }
}
