//! A reader of the Prometheus text exposition format, and of the
//! OpenMetrics text the platform's `/metrics` writes: just enough to read
//! samples (name, labels, value). Comments, `# EOF`, timestamps and
//! exemplars are skipped; a line that cannot be read is dropped, not fatal,
//! so one odd metric never hides an instance's others.

/// One sample: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name, with its suffix (`http_requests_total`).
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every readable sample of `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

/// One line as a sample; `None` for comments, blank and unreadable lines.
fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(after)?;
        labels = parsed;
        rest = after.trim_start();
    }
    // The value, then an optional timestamp and (OpenMetrics) an exemplar.
    let value = value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `name="value",...}` (the opening brace already consumed): the
/// labels and what follows the closing brace.
fn label_set(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let (value, after) = quoted(s[eq + 1..].trim_start())?;
        labels.push((name.to_owned(), value));
        s = after.trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

/// Reads a double-quoted label value with `\\`, `\"` and `\n` escapes: the
/// value and what follows the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn value(token: &str) -> Option<f64> {
    match token {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => token.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_platform_writes() {
        let text = r#"# HELP http_requests Requests answered, by route, method and status class.
# TYPE http_requests counter
http_requests_total{service="orders",instance="orders-0",method="GET",route="/readyz",status="2xx"} 2
http_request_duration_seconds_bucket{service="orders",instance="orders-0",le="+Inf",method="GET",route="/readyz"} 2
http_request_duration_seconds_sum{service="orders",instance="orders-0",method="GET",route="/readyz"} 0.013103080999999999
events_consumer_lag{service="inventory",instance="inventory-0",group="inventory"} 0
# EOF
"#;
        let samples = parse(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "http_requests_total");
        assert_eq!(samples[0].label("route"), Some("/readyz"));
        assert_eq!(samples[0].label("status"), Some("2xx"));
        assert!((samples[0].value - 2.0).abs() < f64::EPSILON);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert!((samples[2].value - 0.013_103_081).abs() < 1e-9);
        assert_eq!(samples[3].label("group"), Some("inventory"));
        assert_eq!(samples[3].label("missing"), None);
    }

    #[test]
    fn label_values_may_hold_escapes_commas_and_braces() {
        let samples = parse(r#"m{a="x,y}",b="say \"hi\"",c="back\\slash",d="two\nlines"} 1"#);
        let s = &samples[0];
        assert_eq!(s.label("a"), Some("x,y}"));
        assert_eq!(s.label("b"), Some(r#"say "hi""#));
        assert_eq!(s.label("c"), Some(r"back\slash"));
        assert_eq!(s.label("d"), Some("two\nlines"));
    }

    #[test]
    fn special_values_timestamps_and_exemplars() {
        let samples = parse(
            "a +Inf\nb -Inf\nc NaN\nd 1.5e3 1712345678000\ne{le=\"0.1\"} 7 # {trace_id=\"abc\"} 0.05 123\nf{} 3\n  g  4  \n",
        );
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f", "g"]);
        assert!(samples[0].value.is_infinite() && samples[0].value > 0.0);
        assert!(samples[1].value.is_infinite() && samples[1].value < 0.0);
        assert!(samples[2].value.is_nan());
        assert!((samples[3].value - 1500.0).abs() < f64::EPSILON);
        assert!((samples[4].value - 7.0).abs() < f64::EPSILON);
        assert!(samples[5].labels.is_empty());
        assert!((samples[6].value - 4.0).abs() < f64::EPSILON);
    }

    #[test]
    fn unreadable_lines_are_dropped_not_fatal() {
        let text = "ok 1\n{no_name=\"x\"} 1\nunterminated{a=\"x} 1\nno_value{a=\"x\"}\nbad_value words\n9starts_with_digit 1\nmissing_comma{a=\"1\" b=\"2\"} 1\nstill_ok{a=\"1\",} 2\n";
        let samples = parse(text);
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ok", "still_ok"]);
    }

    #[test]
    fn empty_text_has_no_samples() {
        assert!(parse("").is_empty());
        assert!(parse("# EOF\n").is_empty());
    }
}
