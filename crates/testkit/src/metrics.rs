//! The Prometheus text a service serves at `/metrics`, read back into
//! samples, so a test asks for a counter by name and labels instead of
//! matching lines by hand.
//!
//! A reader of its own rather than `prometheus-parse`: that crate groups
//! samples under their `# TYPE` families (and pulls in `chrono` and
//! `regex`), while a test only ever wants "the samples named N whose labels
//! say L"; the exposition's sample lines are simple enough to read in a
//! page.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as exposed (`orders_sagas_total`).
    pub name: String,
    /// The labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether every `(name, value)` of `labels` is among the sample's.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Every sample of one `/metrics` reading.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// In the order they were exposed.
    pub samples: Vec<Sample>,
    /// The text read, for assertion messages.
    pub text: String,
}

impl Metrics {
    /// Reads the Prometheus (or OpenMetrics) text `text`; comment lines and
    /// lines that are not samples are passed over.
    pub fn parse(text: &str) -> Self {
        Self {
            samples: text.lines().filter_map(sample).collect(),
            text: text.to_owned(),
        }
    }

    /// The samples named `name`.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The sum of the samples named `name` whose labels include every one
    /// of `labels` (all of them when `labels` is empty); 0 when there are
    /// none, as a counter that has not counted yet.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .filter(|s| s.has(labels))
            .map(|s| s.value)
            .sum()
    }
}

/// `GET base/metrics`, read.
///
/// # Panics
/// When the endpoint does not answer.
pub async fn scrape(http: &reqwest::Client, base: &str) -> Metrics {
    let text = http
        .get(format!("{}/metrics", base.trim_end_matches('/')))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    Metrics::parse(&text)
}

/// One sample line, or `None` for comments, blank lines and anything else.
fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
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
    // After the value may come a timestamp or an exemplar (`# {...}`).
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A label value up to its closing quote (unescaped), and what follows it.
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

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP http_requests_total Requests.\n\
        # TYPE http_requests_total counter\n\
        http_requests_total{service=\"gateway\",method=\"GET\",route=\"/healthz\",status=\"2xx\"} 41\n\
        http_requests_total{service=\"gateway\",method=\"GET\",route=\"/readyz\",status=\"2xx\"} 7\n\
        http_requests_total{service=\"gateway\",method=\"HEAD\",route=\"/healthz\",status=\"4xx\"} 1\n\
        http_requests_in_flight 3\n\
        odd{path=\"a \\\"quoted\\\", and\\\\ a comma\"} 2.5 1700000000\n\
        # EOF\n";

    #[test]
    fn samples_are_summed_by_name_and_labels() {
        let metrics = Metrics::parse(TEXT);
        assert_eq!(metrics.samples.len(), 5);
        assert_eq!(metrics.sum("http_requests_total", &[]), 49.0);
        assert_eq!(
            metrics.sum("http_requests_total", &[("route", "/healthz")]),
            42.0
        );
        assert_eq!(
            metrics.sum(
                "http_requests_total",
                &[("route", "/healthz"), ("status", "4xx")]
            ),
            1.0
        );
        assert_eq!(
            metrics.sum("http_requests_total", &[("route", "/metrics")]),
            0.0
        );
        assert_eq!(metrics.sum("http_requests_in_flight", &[]), 3.0);
        assert_eq!(metrics.sum("http_requests", &[]), 0.0, "names match whole");
    }

    #[test]
    fn label_values_are_unescaped_and_timestamps_ignored() {
        let metrics = Metrics::parse(TEXT);
        let odd = metrics.samples("odd").next().expect("the odd sample");
        assert_eq!(odd.label("path"), Some("a \"quoted\", and\\ a comma"));
        assert_eq!(odd.value, 2.5);
    }
}
