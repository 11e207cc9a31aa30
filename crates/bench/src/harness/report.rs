//! How a benchmark ends: its report as tables or JSON, and the number
//! formats the reports share.

use serde_json::Value;

/// Ends a bench command: its report as JSON (`--json`) or as tables on
/// standard output, or its error on standard error.
pub fn finish<R>(
    result: anyhow::Result<R>,
    json: bool,
    to_json: fn(&R) -> Value,
    to_table: fn(&R) -> String,
) -> std::process::ExitCode {
    match result {
        Ok(report) => {
            if json {
                println!("{}", to_json(&report));
            } else {
                print!("{}", to_table(&report));
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Nanoseconds in µs.
pub fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// `12345.6` → `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
